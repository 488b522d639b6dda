"""Whole-PSPNet parity with mmseg: mmseg's EncoderDecoder with mmseg's
ResNetV1c/PSPHead/FCNHead against the same with mmpsp's components, built
from mmseg's own config file and holding the same weights."""
import mmseg_reference as reference
import pytest
import torch
from helpers import randomize_norms
from mmengine.structures import PixelData
from mmseg.models.backbones import ResNetV1c as MMSegResNetV1c
from mmseg.structures import SegDataSample
from mmseg_reference import build_pspnet_pair

from mmpsp.models import FCNHead, PSPHead, ResNetV1c

SIZE = 33
# Every depth x output stride x class count (a few seconds on 2 cores at
# this input size).
CASES = [(depth, stride, classes) for depth in (18, 50, 101)
         for stride in (8, 16) for classes in (19, 150)]
EVAL_ATOL = 1e-5
# The same operations run in the same order, so gradients come out equal;
# the margin (relative to each parameter's largest gradient) only covers
# summation-order differences that other CPU kernels could introduce.
GRAD_TOL = 1e-5


def batch(num_classes: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, SIZE, SIZE, generator=gen)
    samples = []
    for _ in range(2):
        labels = torch.randint(
            0, num_classes, (1, SIZE, SIZE), generator=gen)
        labels[:, :5] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=labels))
        sample.set_metainfo(
            dict(img_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE),
                 ori_shape=(SIZE, SIZE)))
        samples.append(sample)
    return images, samples


@pytest.fixture(scope='module', params=CASES,
                ids=[f'r{d}-d{s}-{c}cls' for d, s, c in CASES])
def pair(request):
    depth, output_stride, num_classes = request.param
    theirs, ours = build_pspnet_pair(depth, num_classes, output_stride)
    randomize_norms(theirs, seed=depth + output_stride + num_classes)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return request.param, theirs, ours


def test_components_and_state_dict(pair):
    (depth, _, num_classes), theirs, ours = pair
    assert type(theirs.backbone) is MMSegResNetV1c
    assert type(ours.backbone) is ResNetV1c
    assert type(ours.decode_head) is PSPHead
    assert type(ours.auxiliary_head) is FCNHead
    assert ours.backbone.depth == depth
    assert ours.decode_head.num_classes == num_classes
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}


def test_eval_outputs(pair):
    (_, output_stride, num_classes), theirs, ours = pair
    images, samples = batch(num_classes, seed=0)
    theirs.eval()
    ours.eval()
    metas = [s.metainfo for s in samples]
    with torch.no_grad():
        expected_feats = theirs.extract_feat(images)
        got_feats = ours.extract_feat(images)
        expected = theirs.encode_decode(images, metas)
        got = ours.encode_decode(images, metas)
    feat_size = -(-SIZE // 4) // (output_stride // 4)
    assert got_feats[-1].shape[-1] in (feat_size, feat_size + 1)
    for e, g in zip(expected_feats, got_feats):
        assert (g - e).abs().max().item() <= EVAL_ATOL
    assert got.shape == (2, num_classes, SIZE, SIZE)
    assert (got - expected).abs().max().item() <= EVAL_ATOL


def test_training_losses_and_gradients(pair):
    (_, _, num_classes), theirs, ours = pair
    images, samples = batch(num_classes, seed=1)
    losses = {}
    for name, model in (('theirs', theirs), ('ours', ours)):
        model.train()
        model.zero_grad()
        torch.manual_seed(0)  # same dropout masks in both models
        loss = model.loss(images, samples)
        sum(v for k, v in loss.items() if 'loss' in k).backward()
        losses[name] = loss
    assert set(losses['ours']) == set(losses['theirs']) == {
        'decode.loss_ce', 'decode.acc_seg', 'aux.loss_ce', 'aux.acc_seg'
    }
    for key, value in losses['theirs'].items():
        torch.testing.assert_close(
            losses['ours'][key], value, rtol=1e-6, atol=1e-6, msg=key)
    expected = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None, name
        reference_grad = expected[name].grad
        scale = reference_grad.abs().max().item()
        diff = (param.grad - reference_grad).abs().max().item()
        assert diff <= GRAD_TOL * scale + 1e-12, (name, diff, scale)
    theirs_buffers = dict(theirs.named_buffers())
    for name, value in ours.named_buffers():
        torch.testing.assert_close(value, theirs_buffers[name], msg=name)


def test_reference_config_follows_mmseg_settings():
    cfg = reference.mmseg_pspnet_config(18, 150, 16)
    assert cfg.pretrained is None
    assert cfg.backbone.type == 'ResNetV1c'
    assert cfg.backbone.strides == (1, 2, 2, 1)
    assert cfg.backbone.dilations == (1, 1, 1, 2)
    assert (cfg.decode_head.in_channels, cfg.decode_head.channels,
            cfg.auxiliary_head.in_channels,
            cfg.auxiliary_head.channels) == (512, 128, 256, 64)
    assert cfg.auxiliary_head.loss_decode.loss_weight == 0.4
    assert all(cfg[p].norm_cfg.type == 'BN'
               for p in ('backbone', 'decode_head', 'auxiliary_head'))
    ours = reference.mmpsp_pspnet_config(18, 150, 16)
    assert (ours.backbone.type, ours.decode_head.type,
            ours.auxiliary_head.type) == ('mmpsp.ResNetV1c', 'mmpsp.PSPHead',
                                          'mmpsp.FCNHead')


def test_reference_errors(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match='depth=34 has no mmseg PSPNet'):
        reference.mmseg_pspnet_config(depth=34)
    with pytest.raises(ValueError, match='output_stride=4'):
        reference.mmseg_pspnet_config(output_stride=4)
    monkeypatch.setattr(reference, 'mmseg_config_root', lambda: tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        reference.mmseg_pspnet_config()
    assert str(tmp_path / '_base_' / 'models' /
               'pspnet_r50-d8.py') in str(info.value)
    assert 'pip install' in str(info.value)
