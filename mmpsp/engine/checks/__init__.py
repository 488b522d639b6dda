"""Checks that run before a Runner exists: config keys, data, weights.

Each raises an error that names the key or file and the fix. The modules
import one way only: ``config_check`` <- ``data_check``, ``key_check`` <-
``before_run``; ``checkpoint_check`` and ``pretrained_check`` stand alone.
"""
from .before_run import DATA_CHECK_DEFAULTS, check_before_run, check_data
from .checkpoint_check import (
    CheckpointMismatchError,
    CheckpointReport,
    compare_state_dict,
    dataset_meta_from_checkpoint,
    load_checkpoint_checked,
    mismatch_message,
    read_checkpoint,
)
from .config_check import (
    ConfigCheckError,
    check_class_counts,
    check_data_roots,
    check_ignore_index,
    missing_declared_hooks,
    warn_missing_hooks,
)
from .data_check import DataCheckError, DataReport, Issue, check_dataset
from .key_check import check_config_keys
from .pretrained_check import PretrainedWeightsError, check_pretrained

__all__ = [
    'DATA_CHECK_DEFAULTS', 'CheckpointMismatchError', 'CheckpointReport',
    'ConfigCheckError', 'DataCheckError', 'DataReport', 'Issue',
    'PretrainedWeightsError', 'check_before_run', 'check_class_counts',
    'check_config_keys', 'check_data', 'check_data_roots', 'check_dataset',
    'check_ignore_index', 'check_pretrained', 'compare_state_dict',
    'dataset_meta_from_checkpoint', 'load_checkpoint_checked',
    'mismatch_message', 'missing_declared_hooks', 'read_checkpoint',
    'warn_missing_hooks'
]
