"""What the Runner builds from mmpsp's registries, and the checks before it.

Rule: ``hooks/`` and ``optim_wrappers/`` hold registered classes that a
config names by ``type``; ``checks/`` holds the checks that run before a
Runner exists. Nothing here edits a config: entry points in ``apis/`` do.
Names are imported on first use (:mod:`mmpsp.utils.lazy`).
"""
from mmpsp.utils.lazy import lazy_exports

_EXPORTS = {
    'AtomicCheckpointHook': '.hooks',
    'AtomicLocalBackend': '.hooks',
    'BF16AutocastOptimWrapper': '.optim_wrappers',
    'CheckpointCheckHook': '.hooks',
    'CheckpointMismatchError': '.checks',
    'ConfigCheckError': '.checks',
    'DataCheckError': '.checks',
    'DataReport': '.checks',
    'Issue': '.checks',
    'IterationSeedHook': '.hooks',
    'LabelRangeHook': '.hooks',
    'LabelValueError': '.hooks',
    'NonFiniteLossError': '.hooks',
    'NonFiniteLossHook': '.hooks',
    'PretrainedWeightsError': '.checks',
    'SpeedLeversHook': '.hooks',
    'apply_speed_levers': '.hooks',
    'check_before_run': '.checks',
    'check_dataset': '.checks',
    'check_pretrained': '.checks',
    'load_checkpoint_checked': '.checks',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
