"""PSPHead (with PPM) and FCNHead: shapes, options, parity of names and
outputs with mmseg's heads, bad arguments, and the batch-size-1 guard."""
import pytest
import torch
import torch.nn.functional as F
from helpers import randomize_norms
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.decode_heads import FCNHead as MMSegFCNHead
from mmseg.models.decode_heads import PSPHead as MMSegPSPHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.structures import SegDataSample
from torch.nn.modules.batchnorm import _BatchNorm

import mmpsp.models.decode_heads.psp_head as psp_head_module
from mmpsp.models import PPM, FCNHead, PSPHead

BN = dict(type='BN', requires_grad=True)
TINY_HEAD = dict(in_channels=4, channels=2, num_classes=19)


def feats(n=2, c=4, size=23, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(n, c, size, size, generator=gen)]


def assert_same_names_and_outputs(theirs, ours, inputs):
    assert {k: v.shape for k, v in theirs.state_dict().items()} == \
        {k: v.shape for k, v in ours.state_dict().items()}
    randomize_norms(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        expected, got = theirs(inputs), ours(inputs)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize('pool_scales', [(1, 2, 3), (1, 2, 3, 6), (2, ),
                                         [1, 3, 30]])
@pytest.mark.parametrize('pool_type', ['avg', 'max'])
@pytest.mark.parametrize('dim_reduction', [True, False])
def test_psp_head_shapes_and_options(pool_scales, pool_type, dim_reduction):
    head = PSPHead(
        pool_scales=pool_scales,
        pool_type=pool_type,
        dim_reduction=dim_reduction,
        norm_cfg=BN,
        **TINY_HEAD)
    assert len(head.psp_modules) == len(pool_scales)
    branch_channels = 2 if dim_reduction else 4
    assert head.bottleneck.conv.in_channels == \
        4 + len(pool_scales) * branch_channels
    has_convs = [len(branch) == 2 for branch in head.psp_modules]
    assert has_convs == [dim_reduction] * len(pool_scales)
    pool_cls = torch.nn.AdaptiveAvgPool2d if pool_type == 'avg' else \
        torch.nn.AdaptiveMaxPool2d
    assert all(isinstance(branch[0], pool_cls) for branch in head.psp_modules)
    out = head(feats())
    assert out.shape == (2, 19, 23, 23)
    out.sum().backward()
    assert head.conv_seg.weight.grad is not None


@pytest.mark.parametrize('pool_type,reduce', [('avg', torch.mean),
                                              ('max', torch.amax)])
def test_ppm_pools_globally_at_scale_1(pool_type, reduce):
    ppm = PPM((1, ), 4, 2, None, None, None, False, pool_type=pool_type,
              dim_reduction=False)
    x = feats()[0]
    (out, ) = ppm(x)
    expected = reduce(x, dim=(2, 3), keepdim=True).expand_as(x)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('align_corners', [False, True])
def test_ppm_align_corners(align_corners):
    ppm = PPM((2, ), 4, 2, None, None, None, align_corners,
              dim_reduction=False)
    x = feats()[0]
    (out, ) = ppm(x)
    expected = F.interpolate(
        F.adaptive_avg_pool2d(x, 2),
        size=(23, 23),
        mode='bilinear',
        align_corners=align_corners)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize('dropout_ratio', [0.0, 0.1])
def test_psp_head_dropout(dropout_ratio):
    head = PSPHead(dropout_ratio=dropout_ratio, **TINY_HEAD)
    assert (head.dropout is None) is (dropout_ratio == 0.0)
    head.train()
    torch.manual_seed(0)
    first = head(feats())
    torch.manual_seed(1)
    second = head(feats())
    assert torch.equal(first, second) is (dropout_ratio == 0.0)


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(pool_scales=(1, 2, 3), align_corners=True, dropout_ratio=0.0),
    dict(norm_cfg=None, act_cfg=dict(type='ReLU6')),
])
def test_psp_head_matches_mmseg(kwargs):
    options = dict(norm_cfg=BN, **TINY_HEAD)
    options.update(kwargs)
    assert_same_names_and_outputs(
        MMSegPSPHead(**options), PSPHead(**options), feats(size=17))


@pytest.mark.parametrize('num_convs', [0, 1, 2])
@pytest.mark.parametrize('kernel_size,dilation', [(1, 1), (3, 1), (3, 2)])
@pytest.mark.parametrize('concat_input', [True, False])
def test_fcn_head_matches_mmseg(num_convs, kernel_size, dilation,
                                concat_input):
    channels = 4 if num_convs == 0 else 2
    options = dict(
        in_channels=4,
        channels=channels,
        num_classes=19,
        num_convs=num_convs,
        kernel_size=kernel_size,
        dilation=dilation,
        concat_input=concat_input,
        norm_cfg=BN)
    ours = FCNHead(**options)
    assert ours(feats()).shape == (2, 19, 23, 23)
    assert isinstance(ours.convs, torch.nn.Identity) is (num_convs == 0)
    assert hasattr(ours, 'conv_cat') is concat_input
    assert_same_names_and_outputs(MMSegFCNHead(**options), ours, feats())


def test_fcn_head_as_pspnet_auxiliary_head():
    head = FCNHead(
        in_channels=8,
        in_index=2,
        channels=4,
        num_convs=1,
        concat_input=False,
        num_classes=19,
        norm_cfg=BN,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
    inputs = [torch.rand(2, 1, 5, 5), torch.rand(2, 1, 5, 5),
              torch.rand(2, 8, 9, 9), torch.rand(2, 16, 9, 9)]
    assert head(inputs).shape == (2, 19, 9, 9)
    assert head.loss_decode.loss_weight == 0.4


@pytest.mark.parametrize('kwargs,match', [
    (dict(pool_scales=()), 'pool_scales=()'),
    (dict(pool_scales=(0, 1)), 'positive ints'),
    (dict(pool_scales=3), 'list or tuple'),
    (dict(pool_type='median'), "pool_type='median'"),
    (dict(norm_cfg=dict(type='IN')), 'use BN, SyncBN or GN'),
    (dict(in_channels=[4, 4], in_index=[0, 1],
          input_transform='multiple_select'), 'takes one feature map'),
])
def test_psp_head_bad_arguments(kwargs, match):
    options = dict(TINY_HEAD, **kwargs)
    with pytest.raises(ValueError, match=match.replace('(', r'\(').replace(
            ')', r'\)')):
        PSPHead(**options)


@pytest.mark.parametrize('kwargs,match', [
    (dict(num_convs=-1), 'num_convs=-1'),
    (dict(kernel_size=2), 'positive odd int'),
    (dict(dilation=0), 'dilation=0'),
    (dict(num_convs=0), 'in_channels=4 must equal channels=2'),
])
def test_fcn_head_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FCNHead(**TINY_HEAD, **kwargs)


def test_batch_1_training_with_bn_fails_up_front():
    head = PSPHead(norm_cfg=BN, **TINY_HEAD)
    head.train()
    norms = [m for m in head.modules() if isinstance(m, _BatchNorm)]
    counts = [m.num_batches_tracked.item() for m in norms]
    with pytest.raises(ValueError) as info:
        head(feats(n=1))
    message = str(info.value)
    for hint in ('psp_modules.0.1.bn', 'one value per channel',
                 'at least 2 per process', 'SyncBN over 2 or more',
                 "type='GN'"):
        assert hint in message
    # Raised before any norm of the head ran.
    assert [m.num_batches_tracked.item() for m in norms] == counts


@pytest.mark.parametrize('case', [
    'eval', 'batch2', 'gn', 'no_scale_1', 'no_dim_reduction', 'norm_eval'
])
def test_batch_1_cases_that_work(case):
    options = dict(norm_cfg=BN, **TINY_HEAD)
    n = 1
    if case == 'batch2':
        n = 2
    elif case == 'gn':
        options['norm_cfg'] = dict(type='GN', num_groups=1)
    elif case == 'no_scale_1':
        options['pool_scales'] = (2, 3, 6)
    elif case == 'no_dim_reduction':
        options['dim_reduction'] = False
    head = PSPHead(**options)
    head.train(case != 'eval')
    if case == 'norm_eval':
        for m in head.modules():
            if isinstance(m, _BatchNorm):
                m.eval()
    assert head(feats(n=n)).shape == (n, 19, 23, 23)


@pytest.mark.parametrize('world_size,fails', [(1, True), (2, False)])
def test_batch_1_with_syncbn_depends_on_world_size(monkeypatch, world_size,
                                                   fails):
    head = PSPHead(norm_cfg=dict(type='SyncBN'), **TINY_HEAD)
    head.train()
    dist = psp_head_module.dist
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda group=None: world_size)
    monkeypatch.setattr(dist, 'group', type('Group', (), {'WORLD': None}))
    found = head._one_value_norms(feats(n=1)[0])
    assert bool(found) is fails
    if fails:
        with pytest.raises(ValueError, match='one value per channel'):
            head._check_batch(feats(n=1)[0])


def test_batch_1_error_from_the_whole_segmentor():
    segmentor = EncoderDecoder(
        backbone=ConfigDict(
            type='mmpsp.ResNetV1c',
            depth=18,
            stem_channels=8,
            base_channels=4),
        decode_head=dict(
            type='mmpsp.PSPHead',
            in_channels=32,
            channels=4,
            num_classes=3,
            norm_cfg=BN))
    segmentor.train()
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=torch.zeros(1, 33, 33, dtype=torch.long)))
    sample.set_metainfo(dict(img_shape=(33, 33), pad_shape=(33, 33)))
    with pytest.raises(ValueError, match='at least 2 per process'):
        segmentor.loss(torch.rand(1, 3, 33, 33), [sample])
    segmentor.eval()
    with torch.no_grad():
        logits = segmentor.encode_decode(torch.rand(1, 3, 33, 33),
                                         [sample.metainfo])
    assert logits.shape == (1, 3, 33, 33)


@pytest.mark.parametrize('make', [
    lambda: PSPHead(in_channels=4, channels=2, num_classes=3, pool_scales=1),
    lambda: FCNHead(in_channels=4, channels=2, num_classes=3, num_convs=-1),
], ids=['psp-pool_scales', 'fcn-num_convs'])
def test_bad_arguments_are_also_what_mmseg_asserts(make):
    """mmseg's heads assert on these; code catching AssertionError (mmseg's
    own tests do) still catches mmpsp's error, which names the fix."""
    with pytest.raises(AssertionError, match='must be'):
        make()
