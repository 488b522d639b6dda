"""Utilities shared across mmpsp."""
from .checkpoint import (
                         allow_mmengine_checkpoint_globals,
                         checkpoint_safe_globals,
)

__all__ = ['allow_mmengine_checkpoint_globals', 'checkpoint_safe_globals']
