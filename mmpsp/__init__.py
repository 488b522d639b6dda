"""mmpsp: PSPNet (pyramid scene parsing network) for MMSegmentation."""
import warnings

from .mmcv_lite import install_mmcv_ops_fallback
from .utils.config_scope import register_config_scope
from .utils.safe_load import install_safe_checkpoint_loaders

# Both must run before mmseg is imported anywhere below; the second makes
# every mmengine checkpoint load pass weights_only=True.
install_mmcv_ops_fallback()
install_safe_checkpoint_loaders()
# `_base_ = 'mmpsp::...'` in any config parsed after `import mmpsp`.
register_config_scope()

with warnings.catch_warnings():
    # mmcv warns at import that mmcv-lite lacks the compiled
    # MultiScaleDeformableAttention (an alias kept for old import paths).
    # PSPNet does not use it; a model that does gets it from mmcv.ops,
    # where mmpsp.mmcv_lite's MissingOpError names the fix.
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .registry import MODELS  # noqa: E402

__version__ = '0.1.0'

__all__ = ['MODELS', '__version__']
