"""Small helpers shared by several of mmpsp's folders, each written once.

Rule: pure functions and base classes with no knowledge of a Runner or a
config layout beyond mmengine's; nothing here imports from other mmpsp
folders.
"""
from .config_tree import LOADER_KEYS, dataset_tree, leaf_datasets, walk_dicts
from .errors import ConfigKeyError, MMPSPError
from .model import unwrap_model
from .safe_load import (
    allow_mmengine_checkpoint_globals,
    checkpoint_safe_globals,
)

__all__ = [
    'LOADER_KEYS', 'ConfigKeyError', 'MMPSPError',
    'allow_mmengine_checkpoint_globals', 'checkpoint_safe_globals',
    'dataset_tree', 'leaf_datasets', 'unwrap_model', 'walk_dicts'
]
