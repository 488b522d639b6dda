"""Utilities shared across mmpsp."""
from .checkpoint import (
                         allow_mmengine_checkpoint_globals,
                         checkpoint_safe_globals,
)
from .mmseg_reference import build_pspnet_pair

__all__ = ['allow_mmengine_checkpoint_globals', 'checkpoint_safe_globals',
           'build_pspnet_pair']
