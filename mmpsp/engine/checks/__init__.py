"""Checks that run before a Runner exists: config keys, data, weights.

Each raises an error that names the key or file and the fix. The modules
import one way only: ``config_check`` <- ``data_check``, ``key_check`` <-
``before_run``; ``checkpoint_check`` and ``pretrained_check`` stand alone.
Names are imported on first use (:mod:`mmpsp.utils.lazy`).
"""
from mmpsp.utils.lazy import lazy_exports

_EXPORTS = {
    'DATA_CHECK_DEFAULTS': '.before_run',
    'CheckpointMismatchError': '.checkpoint_check',
    'CheckpointReport': '.checkpoint_check',
    'ConfigCheckError': '.config_check',
    'DataCheckError': '.data_check',
    'DataReport': '.data_check',
    'Issue': '.data_check',
    'PretrainedWeightsError': '.pretrained_check',
    'check_before_run': '.before_run',
    'check_class_counts': '.config_check',
    'check_config_keys': '.key_check',
    'check_data': '.before_run',
    'check_data_roots': '.config_check',
    'check_dataset': '.data_check',
    'check_ignore_index': '.config_check',
    'check_pretrained': '.pretrained_check',
    'compare_state_dict': '.checkpoint_check',
    'dataset_meta_from_checkpoint': '.checkpoint_check',
    'load_checkpoint_checked': '.checkpoint_check',
    'mismatch_message': '.checkpoint_check',
    'missing_declared_hooks': '.config_check',
    'read_checkpoint': '.checkpoint_check',
    'warn_missing_hooks': '.config_check',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
