"""mmpsp: PSPNet (pyramid scene parsing network) for MMSegmentation."""
from .mmcv_lite import install_mmcv_ops_fallback
from .utils.config_scope import register_config_scope
from .utils.safe_load import install_safe_checkpoint_loaders

# Both must run before mmseg is imported anywhere below; the second makes
# every mmengine checkpoint load pass weights_only=True.
install_mmcv_ops_fallback()
install_safe_checkpoint_loaders()
# `_base_ = 'mmpsp::...'` in any config parsed after `import mmpsp`.
register_config_scope()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .registry import MODELS  # noqa: E402

__version__ = '0.1.0'

__all__ = ['MODELS', '__version__']
