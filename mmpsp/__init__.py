"""mmpsp: PSPNet (pyramid scene parsing network) for MMSegmentation."""
from .mmcv_lite import install_mmcv_ops_fallback
from .utils.safe_load import allow_mmengine_checkpoint_globals

# Both must run before mmseg is imported anywhere below.
install_mmcv_ops_fallback()
allow_mmengine_checkpoint_globals()

from . import datasets, engine, models  # noqa: E402,F401  (registration)
from .registry import MODELS  # noqa: E402

__version__ = '0.1.0'

__all__ = ['MODELS', '__version__']
