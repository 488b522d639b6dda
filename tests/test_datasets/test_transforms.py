"""RandomGaussianBlur (the paper's blur augmentation), and the fast twins
of mmseg's PhotoMetricDistortion and RandomCrop: equal outputs and equal
random draws."""
import copy

import cv2
import numpy as np
import pytest
from mmcv.transforms.utils import cache_random_params
from mmengine.registry import init_default_scope
from mmseg.datasets.transforms import PhotoMetricDistortion, RandomCrop

from mmpsp.datasets import (
    CamVidDataset,
    FastPhotoMetricDistortion,
    FastRandomCrop,
    RandomGaussianBlur,
    mmseg_transform_type,
    to_mmseg_pipeline,
)
from mmpsp.registry import TRANSFORMS

SEEDS = range(50)


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


def _run_seeded(transform, results: dict, seed: int):
    """``transform`` on a copy of ``results`` after ``np.random.seed``;
    returns the output and the generator state after the call."""
    np.random.seed(seed)
    out = transform(copy.deepcopy(results))
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return out, (keys.tobytes(), pos, has_gauss, gauss)


def _assert_same(ref, fast, results: dict, seed: int, keys) -> dict:
    want, want_state = _run_seeded(ref, results, seed)
    got, got_state = _run_seeded(fast, results, seed)
    for key in keys:
        assert got[key].dtype == want[key].dtype, (key, seed)
        assert np.array_equal(got[key], want[key]), (key, seed)
    # Same number and kind of draws: the next transform sees the same
    # random stream.
    assert got_state == want_state, seed
    return got


@pytest.fixture
def randint_calls(monkeypatch) -> list:
    """``(args, value)`` of every ``np.random.randint`` call, in order
    (mmseg's transforms call it through the module, so the spy sees theirs
    too)."""
    calls = []
    randint = np.random.randint

    def spy(*args, **kwargs):
        value = randint(*args, **kwargs)
        calls.append((args, value))
        return value

    monkeypatch.setattr(np.random, 'randint', spy)
    return calls


def _images():
    rng = np.random.default_rng(0)
    levels = np.arange(256, dtype=np.uint8)
    big = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    return {
        'random': rng.integers(0, 256, (23, 31, 3), dtype=np.uint8),
        'zeros': np.zeros((17, 19, 3), np.uint8),
        'full': np.full((17, 19, 3), 255, np.uint8),
        # every level in every channel, including the extremes
        'all-levels': np.stack(
            [levels.reshape(16, 16),
             levels[::-1].reshape(16, 16),
             np.roll(levels, 77).reshape(16, 16)], axis=-1),
        # views as RandomCrop and RandomFlip hand them on
        'flipped-view': rng.integers(0, 256, (21, 29, 3),
                                     dtype=np.uint8)[:, ::-1],
        'flipped-crop-view': big[3:24, 5:34][:, ::-1],
        'vertical-flip-view': rng.integers(0, 256, (21, 29, 3),
                                           dtype=np.uint8)[::-1],
    }


@pytest.mark.parametrize('name', list(_images()))
def test_fast_photometric_equals_mmseg(name, randint_calls):
    img = _images()[name]
    ref, fast = PhotoMetricDistortion(), FastPhotoMetricDistortion()
    coins = set()
    for seed in range(300):
        randint_calls.clear()
        _assert_same(ref, fast, dict(img=img), seed, ['img'])
        half = len(randint_calls) // 2
        assert randint_calls[:half] == randint_calls[half:], seed
        coins.add(tuple(v for args, v in randint_calls[:half]
                        if args == (2, )))
    # Each run tosses 5 coins (brightness, contrast position, contrast,
    # saturation, hue); the seeds reach every combination of them.
    assert {len(c) for c in coins} == {5}
    assert len(coins) == 32


def test_fast_photometric_keeps_mmseg_path_for_float_images():
    img = np.random.default_rng(1).uniform(0, 255, (9, 11, 3))
    img = img.astype(np.float32)
    for seed in SEEDS:
        _assert_same(PhotoMetricDistortion(), FastPhotoMetricDistortion(),
                     dict(img=img), seed, ['img'])


@pytest.fixture(scope='module')
def camvid_samples(camvid_root):
    init_default_scope('mmpsp')
    dataset = CamVidDataset(
        data_root=str(camvid_root),
        data_prefix=dict(img_path='images/train',
                         seg_map_path='annotations/train'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            # the crop's input in the CamVid recipe: mostly larger than it
            dict(type='RandomResize', scale=(480, 360),
                 ratio_range=(0.5, 2.0), keep_ratio=True),
        ])
    np.random.seed(0)
    return [dataset[i] for i in range(0, len(dataset), len(dataset) // 5)]


def test_fast_photometric_equals_mmseg_on_camvid(camvid_samples):
    ref, fast = PhotoMetricDistortion(), FastPhotoMetricDistortion()
    for sample in camvid_samples:
        for seed in SEEDS:
            _assert_same(ref, fast, sample, seed, ['img'])


def test_fast_crop_equals_mmseg_on_camvid(camvid_samples, monkeypatch):
    ref = RandomCrop(crop_size=(360, 480), cat_max_ratio=0.75)
    fast = FastRandomCrop(crop_size=(360, 480), cat_max_ratio=0.75)
    for sample in camvid_samples:
        assert 255 in sample['gt_seg_map']  # void pixels to drop
        for seed in SEEDS:
            out = _assert_same(ref, fast, sample, seed,
                               ['img', 'gt_seg_map'])
            assert out['img_shape'] == out['img'].shape[:2]


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.int32])
@pytest.mark.parametrize('crop_size,ignore_index', [((16, 24), 255),
                                                    ((40, 40), 255),
                                                    ((16, 24), 3)])
def test_fast_crop_equals_mmseg_on_random_maps(dtype, crop_size,
                                               ignore_index):
    rng = np.random.default_rng(2)
    for seed in SEEDS:
        seg = rng.integers(0, 4, (33, 45))
        # blocks of one class make some crops fail the ratio test
        seg[:20, :30] = rng.integers(0, 4)
        seg[rng.random(seg.shape) < 0.1] = 255
        results = dict(img=rng.integers(0, 256, (33, 45, 3), dtype=np.uint8),
                       gt_seg_map=seg.astype(dtype),
                       seg_fields=['gt_seg_map'])
        _assert_same(
            RandomCrop(crop_size, cat_max_ratio=0.75,
                       ignore_index=ignore_index),
            FastRandomCrop(crop_size, cat_max_ratio=0.75,
                           ignore_index=ignore_index),
            results, seed, ['img', 'gt_seg_map'])


def test_fast_crop_redraws_as_mmseg(randint_calls):
    """A map where most crops fail the ratio test: both redraw the same
    boxes the same number of times."""
    seg = np.zeros((64, 64), np.uint8)
    seg[:, :20] = 255  # ignored: a crop of 0 and 255 has one category
    seg[52:, 52:] = 1  # 144 px; a 16x16 crop needs > 64 px of it
    results = dict(img=np.zeros((64, 64, 3), np.uint8), gt_seg_map=seg,
                   seg_fields=['gt_seg_map'])
    boxes_per_seed = []
    for seed in range(100):
        counts = []
        for transform in (RandomCrop(16, cat_max_ratio=0.75),
                          FastRandomCrop(16, cat_max_ratio=0.75)):
            randint_calls.clear()
            _run_seeded(transform, results, seed)
            counts.append(len(randint_calls) // 2)  # 2 calls per box
        assert counts[0] == counts[1], seed
        boxes_per_seed.append(counts[0])
        _assert_same(RandomCrop(16, cat_max_ratio=0.75),
                     FastRandomCrop(16, cat_max_ratio=0.75), results, seed,
                     ['img', 'gt_seg_map'])
    # Some crops pass after one or more redraws, others use up all 10.
    assert any(1 < n < 11 for n in boxes_per_seed)
    assert 11 in boxes_per_seed


def test_fast_crop_ratio_on_the_boundary_fails_as_in_mmseg(randint_calls):
    # One possible box (crop = image) holding 48 px of class 0 and 16 of
    # class 1: 48 / 64 = 0.75 is not < 0.75, so both draw all 11 boxes.
    seg = np.zeros((8, 8), np.uint8)
    seg[:2] = 1
    results = dict(img=np.zeros((8, 8, 3), np.uint8), gt_seg_map=seg,
                   seg_fields=['gt_seg_map'])
    for transform in (RandomCrop(8, cat_max_ratio=0.75),
                      FastRandomCrop(8, cat_max_ratio=0.75)):
        randint_calls.clear()
        transform(copy.deepcopy(results))
        assert len(randint_calls) == 22, type(transform).__name__


def test_fast_crop_shares_its_box_under_cache_random_params():
    # Keeping RandomCrop's list intact: the override is listed once.
    assert RandomCrop._methods_with_randomness == ['crop_bbox']
    assert FastRandomCrop._methods_with_randomness == ['crop_bbox']
    rng = np.random.default_rng(3)
    results = dict(img=rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
                   gt_seg_map=rng.integers(0, 5, (30, 40), dtype=np.uint8),
                   seg_fields=['gt_seg_map'])
    crop = FastRandomCrop(10, cat_max_ratio=0.75)
    with cache_random_params(crop):
        first = crop(copy.deepcopy(results))['img']
        second = crop(copy.deepcopy(results))['img']
    assert np.array_equal(first, second)


@pytest.mark.parametrize('scope,prefix', [('mmpsp', ''), ('mmseg', 'mmpsp.')])
def test_fast_transforms_build_from_config(scope, prefix):
    init_default_scope(scope)
    crop = TRANSFORMS.build(dict(type=f'{prefix}FastRandomCrop',
                                 crop_size=(8, 8), cat_max_ratio=0.75))
    photo = TRANSFORMS.build(dict(type=f'{prefix}FastPhotoMetricDistortion',
                                  hue_delta=9))
    assert isinstance(crop, FastRandomCrop) and crop.cat_max_ratio == 0.75
    assert isinstance(photo, FastPhotoMetricDistortion)
    assert photo.hue_delta == 9
    assert repr(crop) == 'FastRandomCrop(crop_size=(8, 8))'


def test_mmseg_mapping_names_the_originals():
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='mmpsp.FastRandomCrop', crop_size=(8, 8)),
                dict(type='FastPhotoMetricDistortion'),
                dict(type='RandomGaussianBlur')]
    mapped = to_mmseg_pipeline(pipeline)
    assert [t['type'] for t in mapped] == [
        'LoadImageFromFile', 'RandomCrop', 'PhotoMetricDistortion',
        'RandomGaussianBlur']
    assert mapped[1]['crop_size'] == (8, 8)
    assert pipeline[1]['type'] == 'mmpsp.FastRandomCrop'  # input untouched
    assert mmseg_transform_type('mmpsp.RandomGaussianBlur') == \
        'mmpsp.RandomGaussianBlur'
