"""Fixed-size ONNX and TorchScript export of PSPNet, checked with
onnxruntime against PyTorch, and the exporter's refusals."""
import copy
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import randomize_norms
from mmseg.models import SegTTAModel
from torch import nn

from mmpsp.deploy import (
    ExportError,
    FixedAdaptivePool2d,
    adaptive_bins,
    build_segmentor,
    check_exportable,
    compare_outputs,
    export_onnx,
    export_torchscript,
    fix_adaptive_pooling,
    verify_onnx,
)
from mmpsp.models.decode_heads.psp_head import PSPHead

R18_CONFIG = 'configs/pspnet/pspnet_r18-d8_camvid-360x480.py'
R50_CONFIG = 'configs/pspnet/pspnet_r50-d8_ade20k.py'
# Max |logit diff| and share of pixels with the same class, ONNX vs PyTorch.
ATOL, MIN_AGREEMENT = 1e-4, 0.999


@pytest.mark.parametrize('in_size', [(23, 17), (64, 64), (45, 60)])
@pytest.mark.parametrize('out_size', [1, 2, 3, 6, (4, None)])
@pytest.mark.parametrize('mode', ['avg', 'max'])
def test_fixed_pool_equals_adaptive_pool(in_size, out_size, mode):
    x = torch.randn(2, 3, *in_size)
    reference = (nn.AdaptiveAvgPool2d(out_size) if mode == 'avg' else
                 nn.AdaptiveMaxPool2d(out_size))(x)
    fixed = FixedAdaptivePool2d(out_size, in_size, mode)(x)
    assert fixed.shape == reference.shape
    torch.testing.assert_close(fixed, reference, rtol=0, atol=1e-6)


def test_bins_overlap_like_pytorch():
    # 64 -> 6 cells: PyTorch's bins overlap (floor/ceil), 11 or 12 wide.
    assert adaptive_bins(64, 6) == [(0, 11), (10, 22), (21, 32), (32, 43),
                                    (42, 54), (53, 64)]
    with pytest.raises(ValueError, match='positive sizes'):
        adaptive_bins(0, 3)


def test_fixed_pool_rejects_other_size():
    pool = FixedAdaptivePool2d(3, (23, 17))
    with pytest.raises(ValueError, match=r'fixed for inputs of size '
                       r'\(23, 17\), got \(24, 17\); export the model again'):
        pool(torch.zeros(1, 1, 24, 17))


@pytest.mark.parametrize('pool_type', ['avg', 'max'])
def test_fix_adaptive_pooling_in_psp_head(pool_type):
    head = PSPHead(in_channels=4, channels=2, num_classes=19,
                   pool_scales=(1, 2, 3, 6), pool_type=pool_type).eval()
    x = [torch.randn(1, 4, 23, 29)]
    with torch.no_grad():
        reference = head(x)
        assert fix_adaptive_pooling(head, lambda: head(x)) == 4
        fixed = head(x)
    assert all(
        isinstance(branch[0], FixedAdaptivePool2d)
        for branch in head.psp_modules)
    torch.testing.assert_close(fixed, reference, rtol=0, atol=1e-5)


def _image(shape, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, *shape, generator=generator) * 255


def test_onnx_r50_d8_matches_pytorch(repo_root, tmp_path):
    # 256x256 instead of 512x512: R50-D8 runs 4 times here (pooling probe,
    # trace, reference, onnxruntime) and the CI machine has 2 cores.
    model = randomize_norms(
        build_segmentor(
            str(repo_root / R50_CONFIG),
            cfg_options={'model.backbone.init_cfg': None}))
    path = tmp_path / 'r50.onnx'
    wrapper, _ = export_onnx(model, (256, 256), path)
    result = verify_onnx(path, wrapper, _image((256, 256)), ATOL,
                         MIN_AGREEMENT)
    assert result['max_abs_diff'] <= ATOL
    assert result['argmax_agreement'] >= MIN_AGREEMENT


SMALL = (97, 131)


@pytest.fixture(scope='module')
def small_model(repo_root):
    return randomize_norms(build_segmentor(str(repo_root / R18_CONFIG)))


@pytest.fixture(scope='module')
def small_export(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp('export') / 'r18_small.onnx'
    wrapper, _ = export_onnx(small_model, SMALL, path)
    return path, wrapper


def test_small_onnx_matches_and_includes_preprocessing(small_model,
                                                       small_export):
    path, wrapper = small_export
    image = _image(SMALL)
    result = verify_onnx(path, wrapper, image, ATOL, MIN_AGREEMENT)
    assert result['max_abs_diff'] <= ATOL
    # The graph takes raw 0-255 BGR pixels: same logits as mmseg's own
    # data_preprocessor followed by encode_decode.
    data = small_model.data_preprocessor(dict(inputs=[image[0]]), False)
    with torch.no_grad():
        direct = small_model.encode_decode(data['inputs'],
                                           [dict(img_shape=SMALL)])
        torch.testing.assert_close(wrapper(image), direct, rtol=0,
                                   atol=1e-4)


def test_torchscript_matches(small_model, tmp_path):
    path = tmp_path / 'r18.pt'
    wrapper, _ = export_torchscript(small_model, SMALL, path)
    image = _image(SMALL, seed=4)
    with torch.no_grad():
        result = compare_outputs(wrapper(image).numpy(),
                                 torch.jit.load(str(path))(image).numpy())
    assert result['max_abs_diff'] <= ATOL
    assert result['argmax_agreement'] >= MIN_AGREEMENT


def test_verify_reports_disagreement(small_export):
    path, wrapper = small_export
    changed = copy.deepcopy(wrapper)
    # A different model behind the same wrapper: the check must fail.
    with torch.no_grad():
        changed.segmentor.decode_head.conv_seg.bias.add_(
            torch.arange(11.) * 0.5)
    with pytest.raises(ExportError, match='disagrees with PyTorch'):
        verify_onnx(path, changed)


def test_onnx_mask_output(small_model, tmp_path):
    path = tmp_path / 'mask.onnx'
    wrapper, _ = export_onnx(small_model, SMALL, path, output='mask')
    image = _image(SMALL)
    result = verify_onnx(path, wrapper, image, ATOL, MIN_AGREEMENT)
    assert result['argmax_agreement'] >= MIN_AGREEMENT
    session = ort.InferenceSession(str(path),
                                   providers=['CPUExecutionProvider'])
    mask = session.run(None, {'image': image.numpy()})[0]
    assert mask.shape == (1, *SMALL) and mask.dtype == np.int64
    assert mask.max() < 11


@pytest.mark.slow
def test_tool_exports_r18_d8_at_512(repo_root, small_model, tmp_path):
    checkpoint = tmp_path / 'r18.pth'
    torch.save(
        dict(meta=dict(CLASSES=[str(i) for i in range(11)]),
             state_dict=small_model.state_dict()), checkpoint)
    onnx_file = tmp_path / 'r18.onnx'
    run = subprocess.run(
        [sys.executable, 'tools/deployment/pytorch2onnx.py',
         str(repo_root / R18_CONFIG), str(checkpoint),
         '--shape', '512', '512', '--out', str(onnx_file), '--verify'],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    found = re.search(
        r'max \|logit diff\| (\S+) \(max \|logit\| \S+\), same class on '
        r'(\S+)%', run.stdout)
    assert found, run.stdout
    assert float(found.group(1)) <= ATOL
    assert float(found.group(2)) >= MIN_AGREEMENT * 100
    proto = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta['shape'] == '512x512' and meta['output'] == 'logits'
    assert meta['classes'].split(',') == [str(i) for i in range(11)]
    dims = [d.dim_value for d in
            proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 512, 512]
    ops = {node.op_type for node in proto.graph.node}
    assert not ops & {'AdaptiveAveragePool', 'GlobalAveragePool'}


@pytest.mark.slow
def test_tool_rejects_dynamic_shapes(repo_root, small_model, tmp_path):
    checkpoint = tmp_path / 'r18.pth'
    torch.save(dict(state_dict=small_model.state_dict()), checkpoint)
    run = subprocess.run(
        [sys.executable, 'tools/deployment/pytorch2onnx.py',
         str(repo_root / R18_CONFIG), str(checkpoint),
         '--shape', '64', '64', '--out', str(tmp_path / 'x.onnx'),
         '--dynamic-export'],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert 'error: dynamic input shapes are not supported' in run.stderr
    assert 'export once per size with --shape H W' in run.stderr
    assert not (tmp_path / 'x.onnx').exists()


def export_at_64(repo_root, checkpoint, out) -> subprocess.CompletedProcess:
    """Run the export tool on the R18 config at 64x64."""
    return subprocess.run(
        [sys.executable, 'tools/deployment/pytorch2onnx.py',
         str(repo_root / R18_CONFIG), str(checkpoint),
         '--shape', '64', '64', '--out', str(out)],
        cwd=repo_root, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_tool_rejects_checkpoint_for_other_classes(repo_root, small_model,
                                                   tmp_path):
    state_dict = dict(small_model.state_dict())
    for key in ('decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'):
        state_dict[key] = state_dict[key][:5].clone()
    checkpoint = tmp_path / 'r18_5_classes.pth'
    torch.save(dict(state_dict=state_dict), checkpoint)
    run = export_at_64(repo_root, checkpoint, tmp_path / 'x.onnx')
    assert run.returncode == 2, run.stderr[-3000:]
    assert 'does not fit the model' in run.stderr
    assert 'model.decode_head.num_classes=5' in run.stderr
    assert 'Traceback' not in run.stderr
    assert not (tmp_path / 'x.onnx').exists()


@pytest.mark.slow
def test_tool_names_a_truncated_checkpoint(repo_root, small_model,
                                           tmp_path):
    whole = tmp_path / 'whole.pth'
    torch.save(dict(state_dict=small_model.state_dict()), whole)
    checkpoint = tmp_path / 'truncated.pth'
    checkpoint.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    run = export_at_64(repo_root, checkpoint, tmp_path / 'x.onnx')
    assert run.returncode == 2, run.stderr[-3000:]
    assert str(checkpoint) in run.stderr
    assert 'truncated' in run.stderr
    assert 'Traceback' not in run.stderr
    assert not (tmp_path / 'x.onnx').exists()


def test_rejects_slide_inference(small_model):
    small_model.test_cfg = dict(mode='slide', crop_size=(64, 64),
                                stride=(32, 32))
    try:
        with pytest.raises(ExportError,
                           match=r"test_cfg.mode='slide' is not supported.*"
                           r"--cfg-options model.test_cfg.mode=whole"):
            check_exportable(small_model, (64, 64))
    finally:
        small_model.test_cfg = dict(mode='whole')


def test_rejects_non_encoder_decoder(small_model):
    with pytest.raises(ExportError,
                       match='cannot export a SegTTAModel: mmpsp exports '
                       'mmseg EncoderDecoder'):
        check_exportable(SegTTAModel(module=small_model), (64, 64))


@pytest.mark.parametrize('shape', [(64, ), (0, 64), (64, -1)])
def test_rejects_bad_shape(small_model, shape):
    with pytest.raises(ExportError, match='--shape needs two positive'):
        check_exportable(small_model, shape)
