"""RandomGaussianBlur: the paper's blur augmentation."""
import cv2
import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mmpsp.datasets import RandomGaussianBlur
from mmpsp.registry import TRANSFORMS


def _results(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    img = np.zeros((17, 23, 3), dtype=np.uint8)
    img[::2, ::2] = 255  # high-frequency checkerboard
    seg = rng.integers(0, 5, (17, 23), dtype=np.uint8)
    return dict(img=img, gt_seg_map=seg.copy(), seg_fields=['gt_seg_map'],
                _seg=seg)


def test_blur_smooths_image_only():
    results = _results()
    seg = results.pop('_seg')
    before = results['img'].copy()
    out = RandomGaussianBlur(prob=1.0)(results)
    assert out['img'].shape == before.shape
    assert out['img'].dtype == np.uint8
    # Blurring removes high-frequency energy.
    assert np.abs(np.diff(out['img'].astype(float), axis=1)).mean() < \
        0.5 * np.abs(np.diff(before.astype(float), axis=1)).mean()
    np.testing.assert_array_equal(out['gt_seg_map'], seg)


def test_impulse_response_is_gaussian_kernel():
    img = np.zeros((11, 11), dtype=np.float32)
    img[5, 5] = 1.0
    out = RandomGaussianBlur(prob=1.0, kernel_size=5)(dict(img=img))['img']
    k = cv2.getGaussianKernel(5, 0)
    np.testing.assert_allclose(out[3:8, 3:8], k @ k.T, rtol=1e-5)
    assert out.sum() == pytest.approx(1.0, rel=1e-5)
    assert out[5, 5] > out[5, 6] > out[5, 7] > 0
    assert out[5, 8] == 0  # support is the 5x5 kernel only


def test_prob_zero_keeps_image_and_prob_half_is_random():
    results = _results()
    before = results['img'].copy()
    out = RandomGaussianBlur(prob=0.0)(results)
    np.testing.assert_array_equal(out['img'], before)
    np.random.seed(0)
    blur = RandomGaussianBlur(prob=0.5)
    blurred = sum(
        not np.array_equal(blur(_results())['img'], before)
        for _ in range(200))
    assert 70 < blurred < 130


@pytest.mark.parametrize('kwargs,word', [
    (dict(prob=1.5), 'prob'),
    (dict(kernel_size=4), 'kernel_size'),
    (dict(kernel_size=0), 'kernel_size'),
    (dict(sigma=-1.0), 'sigma'),
])
def test_bad_arguments_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        RandomGaussianBlur(**kwargs)


def test_built_from_config_in_mmpsp_scope():
    init_default_scope('mmpsp')
    t = TRANSFORMS.build(dict(type='RandomGaussianBlur', prob=1.0,
                              kernel_size=3, sigma=2.0))
    assert isinstance(t, RandomGaussianBlur)
    assert 'kernel_size=3' in repr(t)
