"""mmcv-lite compatibility: mmseg imports on mmcv without compiled ops."""
import subprocess
import sys

import pytest
import torch

from mmpsp import mmcv_lite


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_mmseg_models_import_after_mmpsp():
    proc = run_python(
        'import mmpsp, mmcv.ops\n'
        'import mmseg.models\n'
        'from mmseg.models.decode_heads import PSPHead\n'
        'print("fallback", getattr(mmcv.ops, "MMPSP_FALLBACK", False))\n')
    assert proc.returncode == 0, proc.stderr
    expected = not mmcv_lite.has_compiled_mmcv_ops()
    assert f'fallback {expected}' in proc.stdout


@pytest.mark.skipif(mmcv_lite.has_compiled_mmcv_ops(),
                    reason='full mmcv installed: no stand-in is used')
def test_missing_op_error_names_op_and_fix():
    import mmcv.ops
    with pytest.raises(mmcv_lite.MissingOpError) as err:
        mmcv.ops.nms  # noqa: B018
    assert 'mmcv.ops.nms' in str(err.value)
    assert 'pip install "mmcv' in str(err.value)
    # mmseg's optional heads guard these imports with ModuleNotFoundError.
    with pytest.raises(ModuleNotFoundError):
        from mmcv.ops import CrissCrossAttention  # noqa: F401


@pytest.mark.skipif(mmcv_lite.has_compiled_mmcv_ops(),
                    reason='full mmcv installed: no stand-in is used')
def test_point_sample_is_mmcv_own_pure_python():
    import mmcv.ops
    feats = torch.arange(16.).view(1, 1, 4, 4)
    # Centre of pixel (row 1, col 2) in [0, 1] coordinates.
    points = torch.tensor([[[2.5 / 4, 1.5 / 4]]])
    out = mmcv.ops.point_sample(feats, points, align_corners=False)
    assert out.shape == (1, 1, 1)
    assert out.item() == pytest.approx(6.0)
    assert mmcv.ops.point_sample.__module__ == 'mmcv.ops.point_sample'


@pytest.mark.slow
def test_full_mmcv_left_unchanged():
    # Simulate an install with compiled ops: the stand-in must not appear.
    proc = run_python(
        'import sys\n'
        'import mmpsp.mmcv_lite as c\n'
        'c.has_compiled_mmcv_ops = lambda: True\n'
        'sys.modules.pop("mmcv.ops", None)\n'
        'print(c.install_mmcv_ops_fallback(), "mmcv.ops" in sys.modules)\n')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ['False', 'False']


@pytest.mark.parametrize('reduction', ['none', 'mean', 'sum'])
@pytest.mark.parametrize('class_weighted', [False, True])
def test_sigmoid_focal_loss_matches_mmseg_python_version(
        reduction, class_weighted):
    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    torch.manual_seed(0)
    logits = torch.randn(7, 5)
    if class_weighted:
        # mmcv's kernel scales sample n by weight[target[n]].
        target = torch.tensor([0, 4, 2, 3, 1, 3, 0])
        weight = torch.rand(5)
        sample_weight = weight[target]
    else:
        target = torch.tensor([0, 4, 2, 5, 1, 3, 5])  # 5 = background
        weight = sample_weight = None
    ours = mmcv_lite.sigmoid_focal_loss(logits, target, 2.0, 0.25, weight,
                                     reduction)
    one_hot = torch.nn.functional.one_hot(target, 6)[:, :5].float()
    ref = py_sigmoid_focal_loss(logits, one_hot, weight=sample_weight,
                                gamma=2.0, alpha=0.25, reduction='none')
    if reduction == 'mean':
        ref = ref.sum() / logits.size(0)
    elif reduction == 'sum':
        ref = ref.sum()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


def test_sigmoid_focal_loss_rejects_weights_mmcv_cannot_index():
    logits = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r'one weight per class, shape'):
        mmcv_lite.sigmoid_focal_loss(logits, torch.tensor([0, 1, 2]),
                                  weight=torch.ones(3))
    with pytest.raises(ValueError, match=r'targets must lie in \[0, 4\)'):
        mmcv_lite.sigmoid_focal_loss(logits, torch.tensor([0, 4, 2]),
                                  weight=torch.ones(4))


def test_sigmoid_focal_loss_rejects_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be"):
        mmcv_lite.sigmoid_focal_loss(torch.zeros(1, 2), torch.zeros(1),
                                  reduction='avg')
