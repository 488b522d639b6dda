"""Hooks that mmpsp's configs declare; the Runner builds them by type."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .checkpoint_check_hook import CheckpointCheckHook
from .guard_hooks import (
    LabelRangeHook,
    LabelValueError,
    NonFiniteLossError,
    NonFiniteLossHook,
    NonFiniteWeightsError,
    RankZeroBuffersHook,
)
from .iteration_seed_hook import IterationSeedHook, iteration_seed
from .speed_levers_hook import SpeedLeversHook, apply_speed_levers

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'CheckpointCheckHook',
    'IterationSeedHook', 'LabelRangeHook', 'LabelValueError',
    'NonFiniteLossError', 'NonFiniteLossHook', 'NonFiniteWeightsError',
    'RankZeroBuffersHook', 'SpeedLeversHook', 'apply_speed_levers',
    'iteration_seed'
]
