"""Load checkpoints safely whatever torch's default, and say why not.

mmengine 0.10 calls ``torch.load`` without ``weights_only``, so its loaders
(behind ``Runner`` ``load_from`` and ``resume``, ``load_checkpoint`` and
mmseg's ``init_model``) are safe only where torch defaults to
``weights_only=True``: torch >= 2.6 without
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``. A checkpoint whose meta holds a
``__reduce__`` payload runs its code everywhere else.
:func:`install_safe_checkpoint_loaders` (run when mmpsp is imported)
registers, for every scheme mmengine knows, a loader that passes
``weights_only=True`` explicitly, which no torch version lets the
environment override.

Safe unpickling refuses every global not on torch's allowlist, and
mmengine's training checkpoints hold the message hub's
:class:`~mmengine.logging.HistoryBuffer` (with numpy arrays and the buffer's
statistics methods). :func:`allow_mmengine_checkpoint_globals` adds exactly
the globals those checkpoints use. ``builtins.getattr`` (used by the pickled
statistics methods) is replaced by :func:`_history_buffer_getattr`, which
resolves only ``HistoryBuffer``'s registered statistics methods, so the
allowlist grants no general attribute access. torch < 2.4 has no allowlist:
there mmengine's resume checkpoints are refused (model weights alone load).

A refused file raises :class:`UnsafeCheckpointError` naming the refused
global (not torch's advice to retry with ``weights_only=False``); a file
that is truncated or not a checkpoint raises
:class:`UnreadableCheckpointError` saying which.
"""
import io
import os
import os.path as osp
import pickle
import re
import tempfile
import zipfile
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from .errors import MMPSPError

SafeGlobal = Union[Callable, Tuple[Callable, str]]
# How torch's weights_only unpickler names a global it refuses.
_REFUSED_GLOBAL = re.compile(r'GLOBAL (\S+)')
# What it says about bytes that are no pickle at all.
# What torch.load raises for a file it cannot unpickle (a text file: KeyError
# from the legacy format's magic number; an empty one: EOFError).
_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, KeyError,
                ValueError)
_NOT_A_PICKLE = ('invalid load key', 'Unsupported operand', 'ran out of input',
                 'truncated')


class UnsafeCheckpointError(MMPSPError, pickle.UnpicklingError):
    """A checkpoint asks for a global that safe unpickling refuses."""

    #: Why, in a few words, for listings (e.g. ``--resume`` skipping it).
    reason = ''


class UnreadableCheckpointError(MMPSPError, RuntimeError):
    """A checkpoint file is truncated, empty or not a checkpoint at all."""

    #: Why, in a few words, for listings (e.g. ``--resume`` skipping it).
    reason = ''


class CheckpointNotFoundError(MMPSPError, FileNotFoundError):
    """A local checkpoint path names no file."""


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


def _refused_global(message: str) -> Optional[str]:
    found = _REFUSED_GLOBAL.search(message)
    return found.group(1) if found else None


def _unsafe_message(filename: str, refused: Optional[str]) -> str:
    what = (f'the global {refused}' if refused else
            'an object that weights_only unpickling does not allow')
    return (
        f'refused to load checkpoint {filename}: it asks for {what}, which '
        'a file of weights, optimizer state and mmengine metadata never '
        'needs; unpickling it could run arbitrary code. The file was not '
        'loaded. Use a checkpoint written by tools/train.py or mmseg. Only '
        'for a file from a source you trust whose extra globals you know, '
        'allow exactly those with torch.serialization.add_safe_globals'
        '([...]) before loading; never load an untrusted file with '
        'weights_only=False')


def _describe_unreadable(filename: str) -> str:
    """Say what the file is, judged from its bytes alone."""
    try:
        size = osp.getsize(filename)
        with open(filename, 'rb') as f:
            head = f.read(8)
    except (OSError, TypeError):
        return 'it cannot be read'
    if size == 0:
        return 'it is empty (0 bytes)'
    if head.startswith(b'PK'):
        if not zipfile.is_zipfile(filename):
            return (f'it is truncated or corrupted ({size} bytes, no zip '
                    'central directory: a write or download that did not '
                    'finish)')
        with zipfile.ZipFile(filename) as archive:
            names = archive.namelist()
        if not any(name.endswith('/data.pkl') for name in names):
            listing = ', '.join(names[:3]) + (', ...' if names[3:] else '')
            return (f'it is a zip archive of other files ({listing}), not '
                    'a torch checkpoint')
        return f'it is a corrupted torch checkpoint ({size} bytes)'
    if not head.startswith(b'\x80'):
        return (f'it is not a torch checkpoint (it starts with {head!r})')
    return f'it is truncated or corrupted ({size} bytes)'


def _unreadable_message(filename: str, reason: str) -> str:
    return (
        f'cannot load checkpoint {filename}: {reason}. '
        'Pass a .pth written by tools/train.py (or mmseg); if this is a '
        "run's latest checkpoint, use an earlier iter_*.pth of its work "
        'dir (tools/train.py --resume skips ones that do not load), or '
        'download or copy the file again')

def load_safely(source: Union[str, io.BytesIO],
                map_location: Any = None,
                filename: Optional[str] = None) -> Any:
    """``torch.load`` with ``weights_only=True``, and errors that say why.

    ``weights_only=True`` is passed explicitly: torch's
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` only overrides the default, never
    an explicit value (``torch/serialization.py``, torch 2.6 and later;
    older torch does not read the variable), so no environment turns this
    load unsafe.

    Args:
        source (str | BytesIO): Local file path or an open buffer.
        map_location: As for :func:`torch.load`. Defaults to None.
        filename (str, optional): Name for messages; defaults to
            ``source`` when it is a path.

    Returns:
        The unpickled object.

    Raises:
        UnsafeCheckpointError: The file asks for a global outside torch's
            and mmpsp's allowlist (nothing of it was run).
        UnreadableCheckpointError: The file is truncated, empty or not a
            checkpoint.
    """
    name = filename or str(source)
    try:
        return torch.load(
            source, map_location=map_location, weights_only=True)
    except _LOAD_ERRORS as error:
        raise _load_error(name, source, error) from None


def _load_error(name: str, source: Any, error: BaseException) -> MMPSPError:
    """mmpsp's error for what ``torch.load(weights_only=True)`` raised."""
    if isinstance(error, pickle.UnpicklingError) and (
            _refused_global(str(error)) is not None
            or not any(marker in str(error) for marker in _NOT_A_PICKLE)):
        return unsafe_checkpoint_error(name, error)
    return _unreadable(name, source, error)


def unsafe_checkpoint_error(filename: str,
                            error: BaseException) -> UnsafeCheckpointError:
    """Turn torch's ``weights_only`` refusal into mmpsp's error.

    Args:
        filename (str): The checkpoint, for the message.
        error (BaseException): torch's ``UnpicklingError``.

    Returns:
        UnsafeCheckpointError: Names the refused global, without torch's
        advice to retry with ``weights_only=False``.
    """
    refused = _refused_global(str(error))
    unsafe = UnsafeCheckpointError(_unsafe_message(filename, refused))
    unsafe.reason = (f'refused global {refused}' if refused else
                     'refused by weights_only unpickling')
    return unsafe


def _unreadable(name: str, source: Any,
                error: BaseException) -> UnreadableCheckpointError:
    reason = _describe_unreadable(name) if isinstance(source, str) else None
    if reason is None:
        # No diagnosis from the bytes (a buffer or URL): torch's first line.
        lines = str(error).strip().splitlines() or [type(error).__name__]
        reason = f'torch cannot read it ({lines[0][:160]})'
    unreadable = UnreadableCheckpointError(_unreadable_message(name, reason))
    unreadable.reason = reason
    return unreadable

def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local scheme, loading with :func:`load_safely`.

    Args:
        filename (str): Local checkpoint path (``~`` expanded).
        map_location: As for :func:`torch.load`. Defaults to None.

    Returns:
        The loaded checkpoint.
    """
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise CheckpointNotFoundError(
            f'checkpoint {filename} not found (resolved: '
            f'{osp.abspath(path)}); pass the path of a .pth file written '
            'by tools/train.py or mmseg')
    return load_safely(path, map_location)


def _download_and_load(url: str, map_location: Any, model_dir: Optional[str],
                       progress: bool) -> Any:
    try:
        return torch.hub.load_state_dict_from_url(
            url,
            model_dir=model_dir,
            map_location=map_location,
            progress=progress,
            weights_only=True)
    except _LOAD_ERRORS as error:
        raise _load_error(url, None, error) from None


def load_from_http(filename: str,
                   map_location: Any = None,
                   model_dir: Optional[str] = None,
                   progress: bool = os.isatty(0)) -> Any:
    """mmengine's http(s) scheme: download on local rank 0, load safely.

    torch.hub's ``load_state_dict_from_url`` (behind mmengine's) defaults
    to ``weights_only=False`` even on torch 2.13; here it is True.

    Args:
        filename (str): ``http://`` or ``https://`` URL.
        map_location: As for :func:`torch.load`. Defaults to None.
        model_dir (str, optional): Download folder; torch hub's cache by
            default.
        progress (bool): Show a progress bar. Defaults to whether stdin is
            a terminal.

    Returns:
        The loaded checkpoint.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = _download_and_load(filename, map_location, model_dir,
                                        progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = _download_and_load(filename, map_location,
                                            model_dir, progress)
    return checkpoint


def load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and deprecated ``modelzoo://``), safely."""
    name = filename.split('://', 1)[1]
    return load_from_http(
        mm_checkpoint.get_torchvision_models()[name], map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://NAME`` / ``openmmlab://NAME``, safely."""
    name = filename.split('://', 1)[1]
    name = mm_checkpoint.get_deprecated_model_names().get(name, name)
    url = mm_checkpoint.get_external_models()[name]
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location)
    return load_from_local(
        osp.join(mm_checkpoint._get_mmengine_home(), url), map_location)


def load_from_mmcls(filename: str, map_location: Any = None) -> Any:
    """``mmcls://NAME``, safely, with mmengine's key conversion."""
    url = mm_checkpoint.get_mmcls_models()[filename[len('mmcls://'):]]
    return mm_checkpoint._process_mmcls_checkpoint(
        load_from_http(url, map_location))


def load_from_ceph(filename: str,
                   map_location: Any = None,
                   backend: str = 'petrel') -> Any:
    """``s3://`` / ``petrel://`` through mmengine's file backend, safely."""
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    with io.BytesIO(file_backend.get(filename)) as buffer:
        return load_safely(buffer, map_location, filename)


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """``pavi://`` (OpenMMLab's model cloud), safely."""
    from pavi import modelcloud
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as tmp_dir:
        downloaded = osp.join(tmp_dir, model.name)
        model.download(downloaded)
        return load_safely(downloaded, map_location, filename)


# Every scheme mmengine 0.10 registers, with the same prefixes (regexes,
# matched longest first; '' matches every path, so it is the fallback).
SAFE_SCHEMES: Dict[Tuple[str, ...], Callable] = {
    ('', ): load_from_local,
    ('http://', 'https://'): load_from_http,
    ('pavi://', ): load_from_pavi,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    ('mmcls://', ): load_from_mmcls,
}


def install_safe_checkpoint_loaders() -> None:
    """Make every mmengine checkpoint scheme load with ``weights_only=True``.

    Replaces mmengine's loaders in ``CheckpointLoader`` (behind
    ``Runner.load_checkpoint``, ``Runner.resume``, ``load_checkpoint``,
    ``PretrainedInit`` and mmseg's ``init_model``), whose ``torch.load``
    calls leave ``weights_only`` to torch's default: unsafe before torch
    2.6 and with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``. Nothing else
    changes: ``torch.load`` itself keeps its default everywhere else.
    """
    allow_mmengine_checkpoint_globals()
    for prefixes, loader in SAFE_SCHEMES.items():
        CheckpointLoader.register_scheme(
            prefixes=list(prefixes), loader=loader, force=True)
