"""Training-engine pieces: checks, hooks and launch helpers."""
from .checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .data_check import DataCheckError, DataReport, Issue, check_dataset
from .dist_guard import install_fail_fast
from .guard_hooks import (
    LabelRangeHook,
    LabelValueError,
    NonFiniteLossError,
    NonFiniteLossHook,
)
from .iter_seed import IterationSeedHook
from .preflight import ConfigCheckError, preflight
from .speed import (
    SpeedLeversHook,
    add_speed_levers,
    apply_speed_levers,
    pin_memory_on_cuda,
)

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'ConfigCheckError',
    'IterationSeedHook',
    'DataCheckError', 'DataReport', 'Issue', 'LabelRangeHook',
    'LabelValueError', 'NonFiniteLossError', 'NonFiniteLossHook',
    'SpeedLeversHook', 'add_speed_levers', 'apply_speed_levers',
    'pin_memory_on_cuda',
    'check_dataset', 'install_fail_fast', 'preflight'
]
