"""Utilities shared across mmpsp."""
from .checkpoint import (
    allow_mmengine_checkpoint_globals,
    checkpoint_safe_globals,
)
from .mmseg_reference import build_pspnet_pair
from .pretrained import PretrainedWeightsError, check_pretrained

__all__ = [
    'PretrainedWeightsError', 'allow_mmengine_checkpoint_globals',
    'build_pspnet_pair', 'check_pretrained', 'checkpoint_safe_globals'
]
