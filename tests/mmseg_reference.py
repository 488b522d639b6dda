"""mmseg's own PSPNet and the same network built from mmpsp's components.

Parity tests and benchmarks compare the two. Both are built from the model
config that mmseg ships (``configs/_base_/models/pspnet_r50-d8.py``, found
through the installed package), with SyncBN replaced by BN so that they run
in one process, the segmentor-level ``pretrained`` cleared (no download),
and the depth, output stride and class count chosen by the caller.
"""
import copy
import importlib.util
from pathlib import Path
from typing import Dict, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from torch import nn

# Strides and dilations per output stride (mmseg's "-d8", "-d16" and
# "-d32" configs), as ResNetV1c's output_stride argument sets them.
from mmpsp.models.backbones.resnet import OUTPUT_STRIDES

PSPNET_BASE_CONFIG = Path('_base_', 'models', 'pspnet_r50-d8.py')


# (decode in_channels, decode channels, auxiliary in_channels, auxiliary
# channels) per depth, as in mmseg's pspnet_r18/r50/r101 configs.
HEAD_CHANNELS: Dict[int, Tuple[int, int, int, int]] = {
    18: (512, 128, 256, 64),
    50: (2048, 512, 1024, 256),
    101: (2048, 512, 1024, 256),
}

MMPSP_TYPES = {
    'backbone': 'mmpsp.ResNetV1c',
    'decode_head': 'mmpsp.PSPHead',
    'auxiliary_head': 'mmpsp.FCNHead',
}


def mmseg_config_root() -> Path:
    """Folder of the configs installed with mmseg (``mmseg/.mim/configs``).

    Returns:
        Path: The folder.
    """
    spec = importlib.util.find_spec('mmseg')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'mmseg is not installed; pip install "mmsegmentation==1.2.2"')
    return Path(list(spec.submodule_search_locations)[0], '.mim', 'configs')


def mmseg_pspnet_config(depth: int = 50,
                        num_classes: int = 19,
                        output_stride: int = 8) -> ConfigDict:
    """mmseg's PSPNet model config with BN, for one depth and output stride.

    Args:
        depth (int): Backbone depth: 18, 50 or 101. Defaults to 50.
        num_classes (int): Number of classes of both heads. Defaults to 19.
        output_stride (int): 8, 16 or 32. Defaults to 8.

    Returns:
        ConfigDict: The ``model`` config, with mmseg's type names.
    """
    if depth not in HEAD_CHANNELS:
        raise ValueError(f'depth={depth!r} has no mmseg PSPNet config; use '
                         f'one of {sorted(HEAD_CHANNELS)}')
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f'output_stride={output_stride!r} must be one of '
                         f'{sorted(OUTPUT_STRIDES)}')
    path = mmseg_config_root() / PSPNET_BASE_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"mmseg's PSPNet config {path} is missing; reinstall mmseg with "
            'its configs: pip install --force-reinstall --no-deps '
            '"mmsegmentation==1.2.2"')
    model = copy.deepcopy(Config.fromfile(str(path)).model)
    model.pretrained = None
    strides, dilations = OUTPUT_STRIDES[output_stride]
    model.backbone.update(depth=depth, strides=strides, dilations=dilations)
    dec_in, dec_ch, aux_in, aux_ch = HEAD_CHANNELS[depth]
    model.decode_head.update(
        in_channels=dec_in, channels=dec_ch, num_classes=num_classes)
    model.auxiliary_head.update(
        in_channels=aux_in, channels=aux_ch, num_classes=num_classes)
    for part in ('backbone', 'decode_head', 'auxiliary_head'):
        model[part].norm_cfg = dict(type='BN', requires_grad=True)
    return model


def mmpsp_pspnet_config(depth: int = 50,
                        num_classes: int = 19,
                        output_stride: int = 8) -> ConfigDict:
    """The config of :func:`mmseg_pspnet_config` with mmpsp's components.

    Only the ``type`` of the backbone and both heads changes (to
    ``mmpsp.ResNetV1c``, ``mmpsp.PSPHead`` and ``mmpsp.FCNHead``); every
    other key is mmseg's.

    Args:
        depth (int): Backbone depth: 18, 50 or 101. Defaults to 50.
        num_classes (int): Number of classes. Defaults to 19.
        output_stride (int): 8, 16 or 32. Defaults to 8.

    Returns:
        ConfigDict: The ``model`` config.
    """
    model = mmseg_pspnet_config(depth, num_classes, output_stride)
    for part, type_name in MMPSP_TYPES.items():
        model[part].type = type_name
    return model


def build_in_mmseg_scope(model_cfg: Dict) -> nn.Module:
    """Build a segmentor config in the mmseg scope.

    Plain names resolve to mmseg's modules even when the current default
    scope is ``mmpsp`` (where they would resolve to mmpsp's); ``mmpsp.``
    names resolve to mmpsp's.

    Args:
        model_cfg (dict): A segmentor config.

    Returns:
        nn.Module: The segmentor, with PyTorch's default initialization.
    """
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(copy.deepcopy(model_cfg))


def build_pspnet_pair(depth: int = 50,
                      num_classes: int = 19,
                      output_stride: int = 8) -> Tuple[nn.Module, nn.Module]:
    """mmseg's PSPNet and mmpsp's, holding the same weights.

    Args:
        depth (int): Backbone depth: 18, 50 or 101. Defaults to 50.
        num_classes (int): Number of classes. Defaults to 19.
        output_stride (int): 8, 16 or 32. Defaults to 8.

    Returns:
        tuple[nn.Module, nn.Module]: ``(mmseg_model, mmpsp_model)``, the
        second loaded from the first's state dict with ``strict=True``.
    """
    reference = build_in_mmseg_scope(
        mmseg_pspnet_config(depth, num_classes, output_stride))
    model = build_in_mmseg_scope(
        mmpsp_pspnet_config(depth, num_classes, output_stride))
    model.load_state_dict(reference.state_dict(), strict=True)
    return reference, model
