"""Small helpers shared by several of mmpsp's folders, each written once.

Rule: pure functions and base classes with no knowledge of a Runner or a
config layout beyond mmengine's; nothing here imports from other mmpsp
folders. Names are imported on first use (:mod:`.lazy`).
"""
from .lazy import lazy_exports

_EXPORTS = {
    'LOADER_KEYS': '.config_tree',
    'dataset_tree': '.config_tree',
    'leaf_datasets': '.config_tree',
    'walk_dicts': '.config_tree',
    'ConfigKeyError': '.errors',
    'MMPSPError': '.errors',
    'unwrap_model': '.model',
    'allow_mmengine_checkpoint_globals': '.safe_load',
    'checkpoint_safe_globals': '.safe_load',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
