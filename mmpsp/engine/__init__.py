"""What the Runner builds from mmpsp's registries, and the checks before it.

Rule: ``hooks/`` and ``optim_wrappers/`` hold registered classes that a
config names by ``type``; ``checks/`` holds the checks that run before a
Runner exists. Nothing here edits a config: entry points in ``apis/`` do.
"""
from .checks import (
    CheckpointMismatchError,
    ConfigCheckError,
    DataCheckError,
    DataReport,
    Issue,
    PretrainedWeightsError,
    check_before_run,
    check_dataset,
    check_pretrained,
    load_checkpoint_checked,
)
from .hooks import (
    AtomicCheckpointHook,
    AtomicLocalBackend,
    CheckpointCheckHook,
    IterationSeedHook,
    LabelRangeHook,
    LabelValueError,
    NonFiniteLossError,
    NonFiniteLossHook,
    SpeedLeversHook,
    apply_speed_levers,
)
from .optim_wrappers import BF16AutocastOptimWrapper

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'BF16AutocastOptimWrapper',
    'CheckpointCheckHook', 'CheckpointMismatchError', 'ConfigCheckError',
    'DataCheckError', 'DataReport', 'Issue', 'IterationSeedHook',
    'LabelRangeHook', 'LabelValueError', 'NonFiniteLossError',
    'NonFiniteLossHook', 'PretrainedWeightsError', 'SpeedLeversHook',
    'apply_speed_levers', 'check_before_run', 'check_dataset',
    'check_pretrained', 'load_checkpoint_checked'
]
