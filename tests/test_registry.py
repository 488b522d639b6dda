"""mmpsp's models in mmengine's registries: ``mmpsp.`` names from the mmseg
scope, plain names from the mmpsp scope, mmseg's own names untouched."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope
from mmseg.models.backbones import ResNetV1c as MMSegResNetV1c
from mmseg.models.decode_heads import FCNHead as MMSegFCNHead
from mmseg.models.decode_heads import PSPHead as MMSegPSPHead
from mmseg.models.losses import CrossEntropyLoss
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS as MMSEG_MODELS

from mmpsp.models import FCNHead, PSPHead, ResNetV1c
from mmpsp.registry import MODELS as MMPSP_MODELS

COMPONENTS = {
    'ResNetV1c': (dict(depth=18, stem_channels=8, base_channels=4),
                  ResNetV1c, MMSegResNetV1c),
    'PSPHead': (dict(in_channels=4, channels=2, num_classes=19,
                     pool_scales=(1, 2, 3)), PSPHead, MMSegPSPHead),
    'FCNHead': (dict(in_channels=4, channels=2, num_classes=19,
                     num_convs=1), FCNHead, MMSegFCNHead),
}


def segmentor_cfg(prefix: str) -> dict:
    return dict(
        type='EncoderDecoder',
        backbone=dict(
            type=f'{prefix}ResNetV1c',
            depth=18,
            stem_channels=8,
            base_channels=4,
            strides=(1, 2, 1, 1),
            dilations=(1, 1, 2, 4)),
        decode_head=dict(
            type=f'{prefix}PSPHead',
            in_channels=32,
            in_index=3,
            channels=4,
            num_classes=5,
            norm_cfg=dict(type='BN')),
        auxiliary_head=dict(
            type=f'{prefix}FCNHead',
            in_channels=16,
            in_index=2,
            channels=4,
            num_convs=1,
            concat_input=False,
            num_classes=5,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
        test_cfg=dict(mode='whole'))


@pytest.mark.parametrize('name', sorted(COMPONENTS))
def test_registered_in_mmpsp_scope_only(name):
    _, ours, theirs = COMPONENTS[name]
    assert MMPSP_MODELS.scope == 'mmpsp'
    assert MMPSP_MODELS.module_dict[name] is ours
    assert MMSEG_MODELS.get(name) is theirs


@pytest.mark.parametrize('name', sorted(COMPONENTS))
def test_scoped_name_from_mmseg_scope(name):
    kwargs, ours, theirs = COMPONENTS[name]
    with DefaultScope.overwrite_default_scope('mmseg'):
        built = MMSEG_MODELS.build(dict(type=f'mmpsp.{name}', **kwargs))
        plain = MMSEG_MODELS.build(dict(type=name, **kwargs))
    assert type(built) is ours
    assert type(plain) is theirs


@pytest.mark.parametrize('name', sorted(COMPONENTS))
def test_plain_name_from_mmpsp_scope(name):
    kwargs, ours, _ = COMPONENTS[name]
    with DefaultScope.overwrite_default_scope('mmpsp'):
        built = MMPSP_MODELS.build(dict(type=name, **kwargs))
    assert type(built) is ours


def _check_segmentor(model):
    assert type(model) is EncoderDecoder
    assert type(model.backbone) is ResNetV1c
    assert type(model.decode_head) is PSPHead
    assert type(model.auxiliary_head) is FCNHead
    assert isinstance(model.decode_head.loss_decode, CrossEntropyLoss)
    model.eval()
    with torch.no_grad():
        logits = model.encode_decode(
            torch.rand(1, 3, 33, 33), [dict(img_shape=(33, 33))])
    assert logits.shape == (1, 5, 33, 33)


def test_segmentor_config_with_mmpsp_default_scope():
    cfg = Config(dict(default_scope='mmpsp', model=segmentor_cfg('')))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MMENGINE_MODELS.build(cfg.model)
    _check_segmentor(model)


def test_segmentor_config_with_mmseg_default_scope():
    cfg = Config(dict(default_scope='mmseg', model=segmentor_cfg('mmpsp.')))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MMENGINE_MODELS.build(cfg.model)
    _check_segmentor(model)
