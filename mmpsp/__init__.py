"""mmpsp: PSPNet (pyramid scene parsing network) for MMSegmentation.

``import mmpsp`` imports neither torch nor mmseg. It arranges, for whenever
those are imported, by anyone:

- mmseg runs on mmcv-lite (:mod:`mmpsp.mmcv_lite`);
- every mmengine checkpoint load passes ``weights_only=True``
  (:mod:`mmpsp.utils.safe_load`);
- ``_base_ = 'mmpsp::...'`` resolves (:mod:`mmpsp.utils.config_scope`).

mmpsp's modules register themselves when a registry first looks a name up
(``locations`` in :mod:`mmpsp.registry`), as mmseg's do.
"""
import contextlib
import types
import warnings
from typing import Iterator

from .mmcv_lite import install_mmcv_ops_finder
from .utils.config_scope import register_config_scope
from .utils.import_hooks import when_imported, while_importing
from .utils.lazy import lazy_exports


def _install_safe_checkpoint_loaders(runner: types.ModuleType) -> None:
    from .utils.safe_load import install_safe_checkpoint_loaders
    install_safe_checkpoint_loaders()


@contextlib.contextmanager
def _without_msda_warning() -> Iterator[None]:
    # mmcv warns at import that mmcv-lite lacks the compiled
    # MultiScaleDeformableAttention (an alias kept for old import paths).
    # PSPNet does not use it; a model that does gets it from mmcv.ops,
    # where mmpsp.mmcv_lite's MissingOpError names the fix.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore',
            message='Fail to import ``MultiScaleDeformableAttention``')
        yield


install_mmcv_ops_finder()
when_imported('mmengine.runner', _install_safe_checkpoint_loaders)
register_config_scope()
while_importing('mmcv.cnn.bricks.transformer', _without_msda_warning)

__version__ = '0.1.0'

_EXPORTS = {
    'MODELS': '.registry',
    **{name: f'.{name}' for name in (
        'apis', 'datasets', 'demo', 'deploy', 'engine', 'mmcv_lite', 'models',
        'registry', 'utils')},
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ['MODELS', '__version__']
