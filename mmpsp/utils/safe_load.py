"""Load mmengine checkpoints on torch >= 2.6 without turning off safety.

Since torch 2.6, ``torch.load`` unpickles with ``weights_only=True`` unless
told otherwise, and refuses every global not on its allowlist. mmengine 0.10
calls ``torch.load`` without the argument, and its training checkpoints hold
the message hub's :class:`~mmengine.logging.HistoryBuffer` (with numpy arrays
and the buffer's statistics methods), so resuming or testing from a
checkpoint fails with ``UnpicklingError``.

:func:`allow_mmengine_checkpoint_globals` adds exactly the globals those
checkpoints use to torch's allowlist. ``builtins.getattr`` (used by the
pickled statistics methods) is replaced by :func:`_history_buffer_getattr`,
which resolves only ``HistoryBuffer``'s registered statistics methods, so the
allowlist grants no general attribute access. Everything else keeps torch's
default, ``weights_only=True``.
"""
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

SafeGlobal = Union[Callable, Tuple[Callable, str]]


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Resolve ``getattr(HistoryBuffer, name)`` for its statistics methods."""
    if isinstance(obj, type) and issubclass(obj, HistoryBuffer):
        methods = HistoryBuffer._statistics_methods
        if name in methods:
            return methods[name]
        if name in ('min', 'max', 'mean', 'current'):
            return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); mmpsp only allows '
        'the statistics methods of mmengine.logging.HistoryBuffer when '
        'loading with weights_only=True')


def _numpy_globals() -> List[SafeGlobal]:
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    scalar = np.float64(0).__reduce__()[0]
    found: List[SafeGlobal] = [np.ndarray, np.dtype]
    # numpy 1.x pickles name numpy.core, numpy 2.x numpy._core.
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        found.append((reconstruct, f'{module}._reconstruct'))
        found.append((scalar, f'{module}.scalar'))
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found.extend(
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType'))
    return found


def checkpoint_safe_globals() -> List[SafeGlobal]:
    """The globals that mmengine's own checkpoints need, for torch's allowlist.

    Returns:
        list: Objects or ``(object, qualified name)`` pairs as taken by
        :func:`torch.serialization.add_safe_globals`.
    """
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def allow_mmengine_checkpoint_globals() -> bool:
    """Add mmengine's checkpoint globals to torch's ``weights_only`` allowlist.

    Returns:
        bool: False on torch versions without the allowlist (< 2.4), where
        ``torch.load`` does not default to ``weights_only=True`` anyway.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return False
    add(checkpoint_safe_globals())
    return True
