"""Load segmentation checkpoints, including mmseg's, and say what did not fit.

mmengine's ``load_checkpoint`` (used by mmseg's ``init_model`` and by
``Runner``) loads whatever matches and only logs the rest, so a checkpoint
trained for 150 classes silently runs with a random 19-class classifier.
For inference that is never wanted. :func:`load_checkpoint_checked` reads
through mmengine's own loader (made safe by
:func:`mmpsp.utils.safe_load.install_safe_checkpoint_loaders`), lists
exactly which keys are missing, unexpected or of another shape, names the
class count or head width that differs, and refuses a partial load unless
``strict=False``; mmengine then loads the weights.

Checkpoints written by mmseg 0.x carry ``meta['CLASSES']`` and
``meta['PALETTE']``; mmseg 1.x and mmpsp write ``meta['dataset_meta']``.
:func:`dataset_meta_from_checkpoint` reads either.

:class:`~mmpsp.engine.hooks.CheckpointCheckHook` applies the same checks
when a ``Runner`` loads ``load_from`` or resumes, before mmengine's lenient
load runs.
"""
import logging
import os
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import (
    _load_checkpoint,
    _load_checkpoint_to_model,
)
from torch import nn

from mmpsp.utils.errors import MMPSPError
from mmpsp.utils.model import unwrap_model

Shape = Tuple[int, ...]
# Buffers that BN creates and mmseg checkpoints from before torch 0.4.1 lack;
# eval-mode inference never reads them.
_OPTIONAL_SUFFIXES = ('num_batches_tracked', )
_CLASSIFIER_SUFFIX = 'conv_seg.weight'
_NUMBERED = re.compile(r'(?:iter|epoch)_(\d+)\.pth')
_CLASSIFIER_KEYS = (_CLASSIFIER_SUFFIX, 'conv_seg.bias')
_FINE_TUNE = ('strict=False: the weights that fit were loaded, the rest '
              'keeps its initialisation (fine-tuning, not inference).')


class CheckpointMismatchError(MMPSPError, ValueError):
    """A checkpoint does not fit the model it is loaded into."""


@dataclass
class CheckpointReport:
    """What :func:`load_checkpoint_checked` found.

    Args:
        filename (str): The checkpoint file.
        missing (list[str]): Model keys the checkpoint lacks.
        unexpected (list[str]): Checkpoint keys the model lacks.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``
            for keys present on both sides with different shapes.
        dataset_meta (dict, optional): ``classes`` and ``palette`` from the
            checkpoint's meta, old or new style; None when it has neither.
    """

    filename: str
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Shape, Shape]] = field(default_factory=list)
    dataset_meta: Optional[dict] = None

    @property
    def complete(self) -> bool:
        """Whether every model weight comes from the checkpoint."""
        return not (self.missing or self.unexpected or self.mismatched)


def read_checkpoint(filename: str) -> dict:
    """Read a checkpoint onto the CPU through mmengine's (safe) loader.

    Args:
        filename (str): Local path or any scheme mmengine knows
            (``http(s)://``, ``open-mmlab://``, ...).

    Returns:
        dict: The checkpoint; a bare state dict is wrapped as
        ``{'state_dict': ...}``.

    Raises:
        FileNotFoundError: No such local file.
        UnsafeCheckpointError: The file asks for a global outside the
            ``weights_only`` allowlist.
        UnreadableCheckpointError: It is truncated or not a checkpoint.
        CheckpointMismatchError: It holds something other than a dict.
    """
    checkpoint = _load_checkpoint(
        filename, map_location='cpu', logger='current')
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'checkpoint {filename} holds a {type(checkpoint).__name__}, not '
            f'a dict; save it with torch.save({{"state_dict": '
            f'model.state_dict()}}, path)')
    if 'state_dict' not in checkpoint:
        checkpoint = {'state_dict': checkpoint}
    return checkpoint


def dataset_meta_from_checkpoint(checkpoint: dict) -> Optional[dict]:
    """Class names and palette from a checkpoint's meta, old or new style.

    Args:
        checkpoint (dict): A loaded checkpoint.

    Returns:
        dict, optional: ``{'classes': ..., 'palette': ...}`` (mmseg 1.x
        layout) from ``meta['dataset_meta']`` or from mmseg 0.x's
        ``meta['CLASSES']`` / ``meta['PALETTE']``; None if neither is there.
    """
    meta = checkpoint.get('meta') or {}
    if meta.get('dataset_meta'):
        return dict(meta['dataset_meta'])
    if meta.get('CLASSES') is not None:
        palette = meta.get('PALETTE')
        return dict(
            classes=tuple(meta['CLASSES']),
            palette=None if palette is None else [list(c) for c in palette])
    return None


def state_dict_of(checkpoint: dict,
                revise_keys: Sequence[Tuple[str, str]]) -> 'OrderedDict':
    state_dict = OrderedDict(checkpoint.get('state_dict', checkpoint))
    for pattern, replacement in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, replacement, k), v)
            for k, v in state_dict.items())
    return state_dict


def compare_state_dict(model: nn.Module, state_dict: Dict[str, torch.Tensor],
                       filename: str) -> CheckpointReport:
    """List the keys of ``state_dict`` that do not fit ``model``.

    Args:
        model (nn.Module): The model to load into.
        state_dict (dict[str, Tensor]): Weights, keys already revised.
        filename (str): The checkpoint's name, for the report.

    Returns:
        CheckpointReport: Missing, unexpected and shape-mismatched keys
        (``dataset_meta`` left None).
    """
    own = model.state_dict()
    report = CheckpointReport(filename=filename)
    report.missing = [
        k for k in own
        if k not in state_dict and not k.endswith(_OPTIONAL_SUFFIXES)
    ]
    report.unexpected = [k for k in state_dict if k not in own]
    report.mismatched = [(k, tuple(v.shape), tuple(own[k].shape))
                         for k, v in state_dict.items()
                         if k in own and tuple(v.shape) != tuple(own[k].shape)]
    return report


def _head_of(key: str) -> str:
    """``decode_head`` for ``decode_head.conv_seg.weight``, etc."""
    return key[:-len(_CLASSIFIER_SUFFIX)].rstrip('.') or 'decode_head'


def _class_count_hint(report: CheckpointReport) -> List[str]:
    hints = []
    for key, ckpt_shape, model_shape in report.mismatched:
        if (not key.endswith(_CLASSIFIER_SUFFIX)
                or ckpt_shape[0] == model_shape[0]):
            continue
        head = _head_of(key)
        hints.append(
            f'checkpoint has {ckpt_shape[0]} classes ({key} {ckpt_shape}), '
            f'config num_classes={model_shape[0]}: set '
            f'model.{head}.num_classes={ckpt_shape[0]} (for every head) '
            f'or use a checkpoint trained for {model_shape[0]} classes')
    return hints


def _width_hint(report: CheckpointReport) -> List[str]:
    """Name layer widths that differ where the class count does not."""
    hints, named = [], set()
    # The classifier's input width is the head's ``channels``.
    for key, ckpt_shape, model_shape in report.mismatched:
        if (key.endswith(_CLASSIFIER_SUFFIX) and len(ckpt_shape) > 1
                and ckpt_shape[0] == model_shape[0]
                and ckpt_shape[1] != model_shape[1]):
            head = _head_of(key)
            named.add(head)
            hints.append(
                f'{head} channels differ: checkpoint {ckpt_shape[1]}, config '
                f'{model_shape[1]} ({key}: checkpoint {ckpt_shape} vs model '
                f'{model_shape}): set model.{head}.channels={ckpt_shape[1]}')
    for key, ckpt_shape, model_shape in report.mismatched:
        module = key.split('.')[0]
        # Classifier shapes are the class count's or the channels' hint.
        if module in named or key.endswith(_CLASSIFIER_KEYS):
            continue
        named.add(module)
        hints.append(
            f'{module} layer widths differ, first at {key}: checkpoint '
            f'{ckpt_shape} vs model {model_shape}: set the widths of '
            f'model.{module} (channels, in_channels, base_channels, ...) '
            'as the checkpoint was trained')
    return hints


def saved_config_of(filename: str) -> Optional[str]:
    """The config tools/train.py saved beside a checkpoint, if just one.

    Args:
        filename (str): Checkpoint path.

    Returns:
        str, optional: The only ``*.py`` in the checkpoint's folder.
    """
    folder = osp.dirname(osp.abspath(filename))
    if '://' in filename or not osp.isdir(folder):
        return None
    configs = sorted(name for name in os.listdir(folder)
                     if name.endswith('.py'))
    return osp.join(folder, configs[0]) if len(configs) == 1 else None


def mismatch_message(report: CheckpointReport,
                     limit: int = 10,
                     fix: Optional[str] = None) -> str:
    """A readable account of a partial fit, with the fix.

    Args:
        report (CheckpointReport): Result of :func:`compare_state_dict`.
        limit (int): Keys listed per group before "... and N more".
            Defaults to 10.
        fix (str, optional): Extra advice for the caller's situation
            (resume, fine-tuning), appended last. Defaults to None.

    Returns:
        str: Multi-line message naming the file, what differs, the keys and
        shapes, and the fix.
    """

    def listing(title: str, items: list) -> List[str]:
        if not items:
            return []
        lines = [f'  {title} ({len(items)}):']
        lines += [f'    {item}' for item in items[:limit]]
        if len(items) > limit:
            lines.append(f'    ... and {len(items) - limit} more')
        return lines

    mismatched = [
        f'{key}: checkpoint {ckpt}, model {own}'
        for key, ckpt, own in report.mismatched
    ]
    lines = [f'checkpoint {report.filename} does not fit the model:']
    lines += _class_count_hint(report) + _width_hint(report)
    lines += listing('shape mismatch', mismatched)
    lines += listing('missing in checkpoint', report.missing)
    lines += listing('unexpected in checkpoint', report.unexpected)
    saved = saved_config_of(report.filename)
    lines.append(
        'Fix: build the model the checkpoint was trained with (same '
        'backbone depth, widths and num_classes): use '
        + (f'the config saved beside it, {saved}, ' if saved else
           'the config it was trained with ')
        + 'or pass the values above with --cfg-options (tools/test.py, '
        'tools/inference.py, tools/deployment/pytorch2onnx.py, '
        'tools/train.py).')
    if fix:
        lines.append(fix)
    return '\n'.join(lines)


def refuse_or_log(report: CheckpointReport,
                  strict: bool,
                  fix: Optional[str] = None) -> None:
    """Raise on a partial fit when ``strict``, else log it as a warning."""
    if report.complete:
        return
    message = mismatch_message(report, fix=fix)
    if strict:
        raise CheckpointMismatchError(message)
    print_log(message, logger='current', level=logging.WARNING)


def class_names_fit(model: nn.Module, dataset_meta: Optional[dict],
                     filename: str, strict: bool) -> bool:
    """Whether the checkpoint's class names fit the model's class count."""
    head = getattr(model, 'decode_head', None)
    num_classes = getattr(head, 'num_classes', None)
    classes = (dataset_meta or {}).get('classes')
    if num_classes is None or classes is None or len(classes) == num_classes:
        return True
    message = (
        f'checkpoint {filename} names {len(classes)} classes in its meta '
        f'but the model predicts num_classes={num_classes}: set '
        f'model.decode_head.num_classes={len(classes)} or use a '
        f'checkpoint trained for {num_classes} classes')
    if strict:
        raise CheckpointMismatchError(message)
    print_log(message + '; keeping the model\'s own class names',
              logger='current', level=logging.WARNING)
    return False


def checkpoint_problem(filename: str) -> Optional[str]:
    """Why a checkpoint does not load, or None if it does.

    Args:
        filename (str): Checkpoint path.

    Returns:
        str, optional: The reason (missing, truncated, not a checkpoint,
        unsafe), None when it loads.
    """
    try:
        read_checkpoint(filename)
    except (MMPSPError, FileNotFoundError) as error:
        return getattr(error, 'reason', None) or str(error)
    return None


def non_finite_keys(state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """Keys of floating-point tensors holding NaN or infinity.

    Args:
        state_dict (dict[str, Tensor]): Weights.

    Returns:
        list[str]: The keys, in order.
    """
    return [
        key for key, value in state_dict.items()
        if torch.is_tensor(value) and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]


def numbered_checkpoints(folder: str) -> List[str]:
    """``iter_N.pth`` / ``epoch_N.pth`` in ``folder``, newest N first.

    Args:
        folder (str): A work dir.

    Returns:
        list[str]: Paths, highest N first.
    """
    found = []
    for name in os.listdir(folder) if osp.isdir(folder) else []:
        match = _NUMBERED.fullmatch(name)
        if match:
            found.append((int(match.group(1)), osp.join(folder, name)))
    return [path for _, path in sorted(found, reverse=True)]


def newest_loadable_checkpoint(
        folder: str,
        latest: Optional[str] = None) -> Tuple[Optional[str], List[str]]:
    """The checkpoint ``--resume`` should continue from, and what it skips.

    ``latest`` (what ``last_checkpoint`` names) comes first, then the
    folder's ``iter_N.pth`` / ``epoch_N.pth``, newest first. Each is read
    through the safe loader until one loads.

    Args:
        folder (str): The work dir.
        latest (str, optional): The path in its ``last_checkpoint``.

    Returns:
        tuple: The path (None if none loads or there is none) and, for
        each one passed over, ``'<path> (<why>)'``.
    """
    candidates = [latest] if latest else []
    candidates += [p for p in numbered_checkpoints(folder) if p != latest]
    skipped = []
    for path in candidates:
        if '://' not in path and not osp.isfile(path):
            skipped.append(f'{path} (no such file)')
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append(f'{path} ({problem})')
    return None, skipped


def load_checkpoint_checked(
    model: nn.Module,
    filename: str,
    strict: bool = True,
    revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), ),
) -> CheckpointReport:
    """Load a checkpoint into ``model``, refusing a partial load by default.

    Reads the file on CPU through mmengine's loader (``weights_only=True``,
    see :mod:`mmpsp.utils.safe_load`), maps an mmseg 0.x meta
    (``CLASSES``/``PALETTE``) to ``dataset_meta``, compares keys and shapes
    and, if they all fit, loads the weights and sets
    ``model.dataset_meta``. A model wrapper (DDP) or test-time-augmentation
    model is unwrapped.

    Args:
        model (nn.Module): Segmentor (or any module) to load into.
        filename (str): Checkpoint path or ``http(s)://`` URL.
        strict (bool): Raise :class:`CheckpointMismatchError` on any
            missing, unexpected or shape-mismatched key (inference, test).
            With False, load the weights that fit and log the rest
            (fine-tuning). Defaults to True.
        revise_keys (Sequence[tuple[str, str]]): ``(pattern, replacement)``
            regexes applied to checkpoint keys. Defaults to stripping DDP's
            ``module.`` prefix.

    Returns:
        CheckpointReport: What was found; ``dataset_meta`` is None when the
        checkpoint names no classes.
    """
    model = unwrap_model(model)
    checkpoint = read_checkpoint(filename)
    report = compare_state_dict(
        model, state_dict_of(checkpoint, revise_keys), filename)
    report.dataset_meta = dataset_meta_from_checkpoint(checkpoint)
    refuse_or_log(report, strict, fix=None if strict else _FINE_TUNE)
    names_fit = class_names_fit(model, report.dataset_meta, filename,
                                 strict)
    # mmengine skips (and logs) keys of another shape.
    _load_checkpoint_to_model(
        model, checkpoint, strict=False, logger='current',
        revise_keys=list(revise_keys))
    if report.dataset_meta is not None and names_fit:
        model.dataset_meta = report.dataset_meta
    return report


__all__ = [
    'CheckpointMismatchError', 'CheckpointReport', 'checkpoint_problem',
    'compare_state_dict', 'dataset_meta_from_checkpoint',
    'load_checkpoint_checked', 'mismatch_message',
    'newest_loadable_checkpoint', 'non_finite_keys', 'numbered_checkpoints',
    'read_checkpoint', 'saved_config_of'
]
