"""Run mmseg on ``mmcv-lite`` (mmcv without compiled ops).

mmseg 1.2.2 imports a few names from ``mmcv.ops`` at import time
(``point_sample`` and ``sigmoid_focal_loss``) although PSPNet uses none of
them. ``mmcv.ops/__init__.py`` loads the compiled extension ``mmcv._ext``,
which ``mmcv-lite`` does not ship, so ``import mmseg.models`` fails there.

When, and only when, ``mmcv._ext`` is missing, the first import of
``mmcv.ops`` after :func:`install_mmcv_ops_finder` (run by ``import mmpsp``,
which itself imports neither mmcv nor torch) gets a small stand-in module
that offers:

- ``point_sample`` and the other pure-Python helpers of mmcv's own
  ``mmcv/ops/point_sample.py`` (loaded from mmcv itself, unchanged);
- ``sigmoid_focal_loss``, a PyTorch equivalent of mmcv's CUDA kernel;
- for any other op, an :class:`MissingOpError` that names the op and says to
  install full mmcv.

The other routes to compiled ops end in the same error:

- a submodule import (``from mmcv.ops.carafe import CARAFE``), which would
  otherwise run mmcv's file and stop at ``No module named 'mmcv._ext'``;
- a registry entry that only mmcv's compiled modules register
  (``conv_cfg=dict(type='DCN')``, ``norm_cfg=dict(type='MMSyncBN')``), which
  would otherwise be ``KeyError: 'Cannot find None in registry'``.

With full mmcv installed nothing is changed.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os.path as osp
import sys
import types
from typing import TYPE_CHECKING, Optional, Sequence, Union

from mmpsp.utils.errors import MMPSPError
from mmpsp.utils.import_hooks import when_imported

if TYPE_CHECKING:
    from torch import Tensor

# Names that mmcv.ops/__init__ would export from its pure-Python files and that
# need no compiled code. Each maps to the mmcv.ops submodule defining it.
_PURE_PYTHON_OPS = {
    'point_sample': 'point_sample',
    'bilinear_grid_sample': 'point_sample',
    'rel_roi_point_to_rel_img_point': 'point_sample',
    'SimpleRoIAlign': 'point_sample',
}

FULL_MMCV_HINT = (
    'install full mmcv instead of mmcv-lite: pip uninstall -y mmcv-lite && '
    'pip install "mmcv>=2.0.0,<2.2.0" (see README, "mmcv-lite or full mmcv")')


# The names mmcv's compiled modules register in mmengine's MODELS registry
# (mmcv 2.1), with the module and class behind each.
_REGISTERED_OPS = {
    'carafe': ('carafe', 'CARAFEPack'),
    'CrissCrossAttention': ('cc_attention', 'CrissCrossAttention'),
    'DCN': ('deform_conv', 'DeformConv2dPack'),
    'DCNv2': ('modulated_deform_conv', 'ModulatedDeformConv2dPack'),
    'MultiScaleDeformableAttention':
    ('multi_scale_deform_attn', 'MultiScaleDeformableAttention'),
    'SAC': ('saconv', 'SAConv2d'),
    'MMSyncBN': ('sync_bn', 'SyncBatchNorm'),
}
_REGISTERED_OPS.update({
    name: ('sparse_conv', name)
    for name in ('SparseConv2d', 'SparseConv3d', 'SparseConv4d',
                 'SparseConvTranspose2d', 'SparseConvTranspose3d',
                 'SparseInverseConv2d', 'SparseInverseConv3d', 'SubMConv2d',
                 'SubMConv3d', 'SubMConv4d')
})


class MissingOpError(MMPSPError, ModuleNotFoundError):
    """A compiled mmcv op was asked for on an install without ``mmcv._ext``.

    A ``ModuleNotFoundError``, the error mmseg's optional heads (CCHead,
    PSAHead, PointHead) catch around ``from mmcv.ops import X``, as they would
    on a real ``mmcv._ext`` import failure; elsewhere its message names the op
    and the fix.
    """


def _missing(what: str) -> MissingOpError:
    return MissingOpError(
        f"{what} needs mmcv's compiled extension (mmcv._ext), which is not "
        f'installed (mmcv-lite); {FULL_MMCV_HINT}')


class _GuardedOpLoader(importlib.machinery.SourceFileLoader):
    """Runs an ``mmcv/ops/<name>.py`` file; a missing ``mmcv._ext`` raises
    :class:`MissingOpError` naming the module."""

    def exec_module(self, module: types.ModuleType) -> None:
        try:
            super().exec_module(module)
        except ModuleNotFoundError as error:
            # MissingOpError: another ops module it imports; the message
            # names the one the user imported.
            if not isinstance(error, MissingOpError) and (error.name !=
                                                          'mmcv._ext'):
                raise
            raise _missing(f'{self.name} (imported as a module)') from None


class _OpsSubmoduleFinder(importlib.abc.MetaPathFinder):
    """Finds ``mmcv.ops.<name>`` in mmcv's folder, with the guarded loader."""

    def __init__(self, package_dir: str) -> None:
        self.package_dir = package_dir

    def find_spec(self, fullname: str, path: Optional[Sequence[str]],
                  target: Optional[types.ModuleType] = None):
        prefix, _, name = fullname.rpartition('.')
        if prefix != 'mmcv.ops':
            return None
        filename = osp.join(self.package_dir, f'{name}.py')
        if not osp.isfile(filename):
            return None
        return importlib.util.spec_from_file_location(
            fullname, filename, loader=_GuardedOpLoader(fullname, filename))


def _register_missing_ops() -> None:
    """Put a stand-in under each name mmcv's compiled modules register."""
    import torch
    from mmengine.registry import MODELS

    for name, (module, cls) in _REGISTERED_OPS.items():
        if MODELS.get(name) is not None:
            continue
        what = (f"type={name!r} (mmcv.ops.{module}.{cls}, registered only "
                'by full mmcv)')

        def refuse(self, *args, _what=what, **kwargs):
            raise _missing(_what)

        # A class: mmcv's norm and conv builders check for one.
        stand_in = type(f'Missing{cls}', (torch.nn.Module, ),
                        dict(__init__=refuse, __module__=__name__))
        MODELS.register_module(name=name, module=stand_in)


def _register_missing_ops_without_ext(cnn: types.ModuleType) -> None:
    if not has_compiled_mmcv_ops():
        _register_missing_ops()


def sigmoid_focal_loss(input: 'Tensor',
                       target: 'Tensor',
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight: Optional['Tensor'] = None,
                       reduction: str = 'mean') -> 'Tensor':
    """Sigmoid focal loss with the signature and results of mmcv's CUDA op.

    Args:
        input (Tensor): Logits of shape (N, C).
        target (Tensor): Class indices of shape (N, ). An index outside
            ``[0, C)`` (e.g. the background index ``C``) is negative for
            every class.
        gamma (float): Focusing parameter. Defaults to 2.0.
        alpha (float): Weight of the positive class. Defaults to 0.25.
        weight (Tensor, optional): Per-class weight of shape (C, ); as in
            mmcv's kernel, sample ``n`` is scaled by ``weight[target[n]]``,
            so every target must then lie in ``[0, C)``. mmseg passes None.
            Defaults to None.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.

    Returns:
        Tensor: The loss, of shape (N, C) for ``reduction='none'``.
    """
    import torch
    import torch.nn.functional as F

    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', "
                         f'got {reduction!r}')
    num_classes = input.size(1)
    classes = torch.arange(num_classes, device=input.device)
    one_hot = (target.long().unsqueeze(1) == classes).to(input.dtype)
    prob = input.sigmoid()
    pt = (1 - prob) * one_hot + prob * (1 - one_hot)
    focal = (alpha * one_hot + (1 - alpha) * (1 - one_hot)) * pt.pow(gamma)
    loss = F.binary_cross_entropy_with_logits(
        input, one_hot, reduction='none') * focal
    if weight is not None:
        if weight.shape != (num_classes, ):
            raise ValueError(
                f'weight has shape {tuple(weight.shape)}; mmcv\'s '
                'sigmoid_focal_loss takes one weight per class, shape '
                f'({num_classes}, )')
        if bool(((target < 0) | (target >= num_classes)).any()):
            raise ValueError(
                'weight is indexed by target, so targets must lie in '
                f'[0, {num_classes}); got a background or ignored target. '
                'Pass weight=None and weight the returned '
                "reduction='none' loss instead")
        loss = loss * weight[target.long()].view(-1, 1)
    if reduction == 'mean':
        # mmcv's kernel divides the summed loss by the number of samples.
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


def _load_mmcv_submodule(package_dir: str, name: str) -> types.ModuleType:
    """Load ``mmcv/ops/<name>.py`` without running ``mmcv/ops/__init__``."""
    full_name = f'mmcv.ops.{name}'
    if full_name in sys.modules:
        return sys.modules[full_name]
    spec = importlib.util.spec_from_file_location(full_name,
                                                  f'{package_dir}/{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[full_name] = module
    spec.loader.exec_module(module)
    return module


def _make_ops_module(package_dir: str) -> types.ModuleType:
    ops = types.ModuleType('mmcv.ops')
    ops.__doc__ = ('mmcv.ops stand-in installed by mmpsp.mmcv_lite: mmcv._ext '
                   'is not available (mmcv-lite).')
    ops.__path__ = [package_dir]
    ops.__file__ = __file__
    ops.MMPSP_FALLBACK = True
    ops.sigmoid_focal_loss = sigmoid_focal_loss

    def __getattr__(name: str) -> Union[type, types.FunctionType]:
        if name.startswith('__'):
            raise AttributeError(name)
        if name in _PURE_PYTHON_OPS:
            module = _load_mmcv_submodule(package_dir, _PURE_PYTHON_OPS[name])
            return getattr(module, name)
        raise _missing(f'mmcv.ops.{name}')

    ops.__getattr__ = __getattr__
    return ops


def has_compiled_mmcv_ops() -> bool:
    """Whether mmcv's compiled extension ``mmcv._ext`` can be imported."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


class _OpsStandInLoader:
    """Makes the ``mmcv.ops`` stand-in and routes its submodules to
    :class:`MissingOpError` (the compiled ops' registry names are routed
    when ``mmcv.cnn``, whose builders look them up, is imported)."""

    def __init__(self, package_dir: str) -> None:
        self.package_dir = package_dir

    def create_module(self, spec) -> types.ModuleType:
        return _make_ops_module(self.package_dir)

    def exec_module(self, module: types.ModuleType) -> None:
        sys.meta_path.insert(0, _OpsSubmoduleFinder(self.package_dir))


class _OpsFinder(importlib.abc.MetaPathFinder):
    """Answers the import of ``mmcv.ops`` with the stand-in when
    ``mmcv._ext`` is missing, and leaves it to mmcv otherwise."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]],
                  target: Optional[types.ModuleType] = None):
        if fullname != 'mmcv.ops' or has_compiled_mmcv_ops():
            return None
        package_dir = osp.join(list(sys.modules['mmcv'].__path__)[0], 'ops')
        spec = importlib.machinery.ModuleSpec(
            fullname, _OpsStandInLoader(package_dir), origin=__file__,
            is_package=True)
        spec.submodule_search_locations = [package_dir]
        return spec


def install_mmcv_ops_finder() -> None:
    """Give the next import of ``mmcv.ops`` the stand-in if ``mmcv._ext``
    is missing; imports nothing itself.

    Raises:
        ImportError: mmcv (lite or full) is not installed.
    """
    if importlib.util.find_spec('mmcv') is None:
        raise ImportError(
            'mmpsp needs mmcv: pip install "mmcv-lite>=2.0.0,<2.2.0" '
            '(or full mmcv, see README)')
    if not any(isinstance(finder, _OpsFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OpsFinder())
        # mmcv's conv and norm builders look the compiled ops' names up
        # whether or not mmcv.ops was imported.
        when_imported('mmcv.cnn', _register_missing_ops_without_ext)


def install_mmcv_ops_fallback() -> bool:
    """Install the ``mmcv.ops`` stand-in now when ``mmcv._ext`` is missing.

    Returns:
        bool: True if the stand-in is (now) in place, False when full mmcv
        is used unchanged.
    """
    existing = sys.modules.get('mmcv.ops')
    if existing is not None:
        return bool(getattr(existing, 'MMPSP_FALLBACK', False))
    if has_compiled_mmcv_ops():
        return False
    install_mmcv_ops_finder()
    import mmcv.ops
    return bool(getattr(mmcv.ops, 'MMPSP_FALLBACK', False))
