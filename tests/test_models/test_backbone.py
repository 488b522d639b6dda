"""ResNetV1c: shapes, options, bad arguments, freezing, checkpointing and
pretrained loading, on tiny channels and odd input sizes."""
import math

import pytest
import torch
from helpers import randomize_norms
from mmengine.config import ConfigDict
from mmseg.models.backbones import ResNetV1c as MMSegResNetV1c
from mmseg.models.segmentors import EncoderDecoder
from torch.nn.modules.batchnorm import _BatchNorm

from mmpsp.models import ResNetV1c
from mmpsp.models.backbones import BasicBlock, Bottleneck

TINY = dict(stem_channels=8, base_channels=4)
OUTPUT_STRIDES = {
    8: dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)),
    16: dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)),
    32: dict(strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)),
}


def stage_sizes(size: int, strides) -> list:
    """Spatial size after the stem, max pool and each stage's stride."""
    size = math.ceil(math.ceil(size / 2) / 2)
    sizes = []
    for stride in strides:
        size = math.ceil(size / stride)
        sizes.append(size)
    return sizes


@pytest.mark.parametrize('depth,expansion', [(18, 1), (34, 1), (50, 4),
                                             (101, 4)])
@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_output_shapes(depth, expansion, output_stride):
    strides = OUTPUT_STRIDES[output_stride]['strides']
    net = ResNetV1c(depth=depth, **TINY, **OUTPUT_STRIDES[output_stride])
    net.eval()
    with torch.no_grad():
        outs = net(torch.rand(2, 3, 33, 33))
    expected = [(2, 4 * 2**i * expansion, s, s)
                for i, s in enumerate(stage_sizes(33, strides))]
    assert [tuple(o.shape) for o in outs] == expected
    assert net.feat_dim == expected[-1][1]


@pytest.mark.parametrize('depth,blocks', [(152, (3, 8, 36, 3)),
                                          (200, (3, 24, 36, 3)),
                                          (269, (3, 30, 48, 8))])
def test_deep_variants(depth, blocks):
    net = ResNetV1c(depth=depth, stem_channels=4, base_channels=1)
    assert tuple(len(getattr(net, f'layer{i}')) for i in range(1, 5)) == \
        blocks
    assert all(isinstance(b, Bottleneck) for b in net.layer4)
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 17, 17))[-1]
    assert out.shape == (1, 32, 1, 1)


def test_basic_block_for_shallow_depths():
    net = ResNetV1c(depth=18, **TINY)
    assert all(isinstance(b, BasicBlock) for b in net.layer1)
    assert [m.conv2.dilation for m in net.layer1] == [(1, 1), (1, 1)]


@pytest.mark.parametrize('contract,expected', [
    (True, [(1, 1), (2, 2)]),
    (False, [(2, 2), (2, 2)]),
])
def test_contract_dilation(contract, expected):
    net = ResNetV1c(
        depth=50, contract_dilation=contract, **TINY, **OUTPUT_STRIDES[8])
    assert [b.conv2.dilation for b in list(net.layer3)[:2]] == expected
    assert net.layer4[0].conv2.dilation == ((2, 2) if contract else (4, 4))


def test_multi_grid_sets_last_stage_dilations():
    net = ResNetV1c(
        depth=50, multi_grid=(1, 2, 4), **TINY, **OUTPUT_STRIDES[16])
    assert [b.conv2.dilation for b in net.layer4] == [(1, 1), (2, 2),
                                                      (4, 4)]
    assert [b.conv2.dilation for b in list(net.layer3)[:2]] == [(1, 1), (1, 1)]


@pytest.mark.parametrize('options', [
    dict(depth=50, **OUTPUT_STRIDES[8], contract_dilation=True),
    dict(depth=50, **OUTPUT_STRIDES[16], multi_grid=(1, 2, 4)),
    dict(depth=50, style='caffe', out_indices=(1, 3)),
    dict(depth=18, **OUTPUT_STRIDES[8], contract_dilation=True),
    dict(depth=34, num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
         out_indices=(0, 2), in_channels=4),
], ids=['d8-contract', 'd16-multigrid', 'caffe', 'r18-d8', 'three-stages'])
def test_matches_mmseg_resnetv1c(options):
    """Same names, shapes and eval outputs as mmseg's ResNetV1c."""
    theirs = MMSegResNetV1c(**TINY, **options)
    ours = ResNetV1c(**TINY, **options)
    randomize_norms(theirs)
    assert {k: v.shape for k, v in theirs.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.eval()
    ours.eval()
    x = torch.rand(2, options.get('in_channels', 3), 35, 35)
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert len(got) == len(expected) == len(options.get('out_indices',
                                                        range(4)))
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        assert (g - e).abs().max().item() <= 1e-5


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(depth=42), ValueError, 'depth=42 is not supported'),
    (dict(depth=50, strides=(1, 2, 1)), ValueError,
     'one entry per stage'),
    (dict(depth=50, dilations=(1, 1, 0, 4), strides=(1, 2, 1, 1)),
     ValueError, 'positive ints'),
    (dict(depth=50, out_indices=(0, 4)), ValueError, 'out_indices'),
    (dict(depth=50, num_stages=5), ValueError, 'num_stages=5'),
    (dict(depth=50, style='tf'), ValueError, "'pytorch' or 'caffe'"),
    (dict(depth=50, frozen_stages=5), ValueError, 'frozen_stages=5'),
    (dict(depth=50, multi_grid=(1, 2)), ValueError, '3 blocks'),
    (dict(depth=50, deep_stem=False), TypeError, 'always uses the deep'),
    (dict(depth=50, avg_down=True), TypeError, "['avg_down']"),
    (dict(depth=50, widen_factor=2), TypeError,
     "unknown arguments ['widen_factor']"),
    (dict(depth=50, dilation=(1, 1, 2, 4)), TypeError,
     "did you mean 'dilations'"),
    (dict(depth=50, output_stride=4), ValueError, 'output_stride=4'),
    (dict(depth=50, output_stride=8, strides=(1, 2, 2, 2)), ValueError,
     'set either output_stride'),
    (dict(depth=50, output_stride=8, num_stages=3, strides=(1, 2, 1),
          dilations=(1, 1, 2)), ValueError, 'sets four stages'),
    # mmseg's ResNet handles pretrained=; these are its errors.
    (dict(depth=50, pretrained=3), TypeError, 'must be a str or None'),
    (dict(depth=50, pretrained='a.pth',
          init_cfg=dict(type='Pretrained', checkpoint='b.pth')),
     AssertionError, 'cannot be setting at the same time'),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match.replace('[', r'\[')):
        ResNetV1c(**TINY, **kwargs)


@pytest.mark.parametrize('kwargs', [
    dict(depth=42),
    dict(depth=50, num_stages=5),
    dict(depth=50, strides=(1, 2, 1)),
    dict(depth=50, out_indices=(0, 4)),
    dict(depth=50, style='tf'),
])
def test_bad_arguments_raise_what_mmseg_code_catches(kwargs):
    """mmseg asserts on these arguments (and raises KeyError for a depth);
    its callers catch that, mmpsp's callers ValueError or MMPSPError: the
    error is all of them, with mmpsp's message."""
    from mmpsp.utils.errors import MMPSPError
    errors = (AssertionError, ValueError, MMPSPError)
    if kwargs['depth'] == 42:
        errors = (KeyError, ValueError, MMPSPError)  # mmseg: KeyError
    for error in errors:
        with pytest.raises(error):
            ResNetV1c(**TINY, **kwargs)


@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_output_stride_is_strides_and_dilations(output_stride):
    by_stride = ResNetV1c(depth=18, output_stride=output_stride, **TINY)
    explicit = ResNetV1c(depth=18, **TINY, **OUTPUT_STRIDES[output_stride])
    assert by_stride.strides == OUTPUT_STRIDES[output_stride]['strides']
    assert by_stride.dilations == OUTPUT_STRIDES[output_stride]['dilations']
    explicit.load_state_dict(by_stride.state_dict())
    x = torch.rand(1, 3, 33, 33)
    by_stride.eval()
    explicit.eval()
    with torch.no_grad():
        for a, b in zip(by_stride(x), explicit(x)):
            assert torch.equal(a, b)


def test_plugins_work_as_in_mmseg():
    """Plugins from mmcv.cnn (pure Python, so also on mmcv-lite) go through
    mmseg's ResNet: a context block after conv3 in stages 2 and 3."""
    plugins = [
        dict(cfg=dict(type='ContextBlock', ratio=1. / 4),
             stages=(False, True, True, False), position='after_conv3')
    ]
    net = ResNetV1c(depth=50, plugins=plugins, **TINY)
    assert not hasattr(net.layer1[0], 'context_block')
    assert net.layer2[0].context_block.in_channels == 32
    assert net.layer3[0].context_block.in_channels == 64
    assert not hasattr(net.layer4[0], 'context_block')
    outs = _train_step(net, torch.rand(2, 3, 33, 33))
    assert outs[-1].shape == (2, 128, 2, 2)
    assert net.layer2[0].context_block.conv_mask.weight.grad is not None


def test_default_init_equals_mmseg_at_the_same_seed():
    """Built on mmseg's ResNet, the default initialization (Kaiming, ones,
    zeroed residual branches) draws the same numbers as mmseg's."""
    torch.manual_seed(7)
    theirs = MMSegResNetV1c(depth=50, **TINY)
    theirs.init_weights()
    torch.manual_seed(7)
    ours = ResNetV1c(depth=50, **TINY)
    ours.init_weights()
    expected = theirs.state_dict()
    for name, value in ours.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert torch.all(ours.layer1[0].norm3.weight == 0)


def _train_step(net, x):
    net.zero_grad()
    outs = net(x)
    sum((o * torch.linspace(-1, 1, o.shape[1]).view(1, -1, 1, 1)).sum()
        for o in outs).backward()
    return outs


def _checkpoint_calls_and_same_training(plain, ckpt) -> int:
    """Train both a step; assert equal outputs, grads and running stats.

    Returns:
        int: How many times ``ckpt``'s step called torch's checkpoint.
    """
    randomize_norms(plain)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 33, 33)
    calls = []
    original = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    torch.utils.checkpoint.checkpoint = counting
    try:
        expected, got = _train_step(plain, x), _train_step(ckpt, x)
    finally:
        torch.utils.checkpoint.checkpoint = original
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=1e-6)
    grads = dict(plain.named_parameters())
    for name, p in ckpt.named_parameters():
        torch.testing.assert_close(
            p.grad, grads[name].grad, rtol=1e-5, atol=1e-6, msg=name)
    buffers = dict(plain.named_buffers())
    for name, b in ckpt.named_buffers():
        torch.testing.assert_close(b, buffers[name], msg=name)
    return len(calls)


@pytest.mark.parametrize('depth', [18, 50])
def test_with_cp_same_outputs_grads_and_running_stats(depth):
    plain = ResNetV1c(depth=depth, **TINY, **OUTPUT_STRIDES[8])
    ckpt = ResNetV1c(depth=depth, with_cp=True, **TINY, **OUTPUT_STRIDES[8])
    calls = _checkpoint_calls_and_same_training(plain, ckpt)
    assert calls == sum(plain.stage_blocks)


@pytest.mark.parametrize('frozen_stages', [0, 2])
def test_frozen_stages(frozen_stages):
    net = ResNetV1c(depth=18, frozen_stages=frozen_stages, **TINY)
    net.train()
    frozen = ['stem'] + [f'layer{i}' for i in range(1, frozen_stages + 1)]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    _train_step(net, torch.rand(2, 3, 33, 33))
    for name, p in net.named_parameters():
        is_frozen = name.split('.')[0] in frozen
        assert p.requires_grad is not is_frozen, name
        assert (p.grad is None) is is_frozen, name
    for name, m in net.named_modules():
        if isinstance(m, _BatchNorm):
            assert m.training is not (name.split('.')[0] in frozen), name
    after = net.state_dict()
    for name in before:
        if name.endswith('running_mean'):
            unchanged = torch.equal(before[name], after[name])
            assert unchanged is (name.split('.')[0] in frozen), name


def test_norm_eval_keeps_batch_norms_in_eval():
    net = ResNetV1c(depth=18, norm_eval=True, **TINY)
    net.train()
    assert net.training
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    before = [m.running_mean.clone() for m in norms]
    _train_step(net, torch.rand(2, 3, 33, 33))
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    assert all(p.grad is not None for p in net.parameters())


def test_norm_cfg_syncbn_and_gn():
    bn = ResNetV1c(depth=18, **TINY)
    sync = ResNetV1c(depth=18, norm_cfg=dict(type='SyncBN'), **TINY)
    assert isinstance(sync.layer1[0].bn1, torch.nn.SyncBatchNorm)
    assert list(sync.state_dict()) == list(bn.state_dict())
    sync.eval()
    with torch.no_grad():
        assert sync(torch.rand(1, 3, 33, 33))[-1].shape == (1, 32, 2, 2)
    gn = ResNetV1c(depth=18, norm_cfg=dict(type='GN', num_groups=2), **TINY)
    assert isinstance(gn.layer1[0].gn1, torch.nn.GroupNorm)
    outs = _train_step(gn, torch.rand(1, 3, 33, 33))
    assert outs[-1].shape == (1, 32, 2, 2)


@pytest.mark.parametrize('zero_init,expected', [(True, 0.0), (False, 1.0)])
def test_zero_init_residual(zero_init, expected):
    net = ResNetV1c(depth=50, zero_init_residual=zero_init, **TINY)
    net.init_weights()
    last_norms = [b.norm3.weight for layer in (net.layer1, net.layer4)
                  for b in layer]
    assert all(torch.all(w == expected) for w in last_norms)
    assert torch.all(net.layer1[0].norm1.weight == 1.0)


def _saved_weights(tmp_path):
    source = ResNetV1c(depth=18, **TINY)
    randomize_norms(source, seed=3)
    path = tmp_path / 'r18_tiny.pth'
    torch.save(source.state_dict(), path)
    return source.state_dict(), str(path)


@pytest.mark.parametrize('how', ['init_cfg', 'pretrained'])
def test_pretrained_loading(tmp_path, how):
    expected, path = _saved_weights(tmp_path)
    if how == 'init_cfg':
        net = ResNetV1c(
            depth=18,
            init_cfg=dict(type='Pretrained', checkpoint=path),
            **TINY)
    else:
        net = ResNetV1c(depth=18, pretrained=path, **TINY)
    assert net.init_cfg == dict(type='Pretrained', checkpoint=path)
    net.init_weights()
    got = net.state_dict()
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    # Zero-init of the residual branches must not overwrite loaded values.
    assert torch.equal(net.layer1[0].norm2.weight,
                       expected['layer1.0.bn2.weight'])


def test_segmentor_level_pretrained_reaches_backbone(tmp_path):
    expected, path = _saved_weights(tmp_path)
    segmentor = EncoderDecoder(
        pretrained=path,
        backbone=ConfigDict(type='mmpsp.ResNetV1c', depth=18, **TINY),
        decode_head=dict(
            type='mmpsp.PSPHead', in_channels=32, channels=4,
            num_classes=3))
    assert isinstance(segmentor.backbone, ResNetV1c)
    segmentor.init_weights()
    got = segmentor.backbone.state_dict()
    assert all(torch.equal(got[k], v) for k, v in expected.items())


def test_dcn_goes_to_mmcv_and_is_named_on_mmcv_lite():
    """DCN stages are built by mmseg's blocks through mmcv's conv registry:
    with full mmcv they work as in mmseg; on mmcv-lite the error names the
    op and the install that provides it."""
    import importlib.util
    if importlib.util.find_spec('mmcv._ext') is not None:
        pytest.skip('full mmcv installed')
    from mmpsp.mmcv_lite import MissingOpError
    dcn = dict(type='DCN', deform_groups=1, fallback_on_stride=False)
    with pytest.raises(MissingOpError, match="type='DCN'.*full mmcv"):
        ResNetV1c(depth=50, dcn=dcn, stage_with_dcn=(False, True, True, True),
                  **TINY)


def test_with_cp_per_stage_checkpoints_only_those_stages():
    plain = ResNetV1c(depth=18, **TINY, **OUTPUT_STRIDES[8])
    last = ResNetV1c(depth=18, with_cp=(False, False, False, True), **TINY,
                     **OUTPUT_STRIDES[8])
    assert [b.with_cp for n in last.res_layers for b in getattr(last, n)] \
        == [False] * 6 + [True] * 2
    assert _checkpoint_calls_and_same_training(plain, last) == 2
    with pytest.raises(ValueError, match='one bool per stage'):
        ResNetV1c(depth=18, with_cp=(True, False), **TINY)
