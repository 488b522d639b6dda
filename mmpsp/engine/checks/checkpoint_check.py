"""Load segmentation checkpoints, including mmseg's, and say what did not fit.

mmengine's ``load_checkpoint`` (used by mmseg's ``init_model`` and by
``Runner``) loads whatever matches and only logs the rest, so a checkpoint
trained for 150 classes silently runs with a random 19-class classifier.
For inference that is never wanted. :func:`load_checkpoint_checked` loads on
CPU with torch's safe unpickling (``weights_only=True``), lists exactly which
keys are missing, unexpected or of another shape, and refuses a partial load
unless ``strict=False``.

Checkpoints written by mmseg 0.x carry ``meta['CLASSES']`` and
``meta['PALETTE']``; mmseg 1.x and mmpsp write ``meta['dataset_meta']``.
:func:`dataset_meta_from_checkpoint` reads either.

:class:`~mmpsp.engine.hooks.CheckpointCheckHook` applies the same checks
when a ``Runner`` loads ``load_from`` or resumes, before mmengine's lenient
load runs.
"""
import logging
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from mmpsp.utils.errors import MMPSPError
from mmpsp.utils.model import unwrap_model

Shape = Tuple[int, ...]
# Buffers that BN creates and mmseg checkpoints from before torch 0.4.1 lack;
# eval-mode inference never reads them.
_OPTIONAL_SUFFIXES = ('num_batches_tracked', )
_CLASSIFIER_SUFFIX = 'conv_seg.weight'


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
    """Read a checkpoint onto the CPU with ``torch.load(weights_only=True)``.

    Args:
        filename (str): Local path, or an ``http(s)://`` URL (downloaded to
            torch hub's cache).

    Returns:
        dict: The checkpoint; a bare state dict is wrapped as
        ``{'state_dict': ...}``.
    """
    if filename.startswith(('http://', 'https://')):
        checkpoint = torch.hub.load_state_dict_from_url(
            filename, map_location='cpu', weights_only=True)
    else:
        path = osp.expanduser(filename)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'checkpoint {filename} not found; pass the path of a .pth '
                f'file written by mmseg or mmpsp')
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
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


def _class_count_hint(report: CheckpointReport) -> List[str]:
    hints = []
    for key, ckpt_shape, model_shape in report.mismatched:
        if not key.endswith(_CLASSIFIER_SUFFIX):
            continue
        head = key[:-len(_CLASSIFIER_SUFFIX)].rstrip('.') or 'decode_head'
        hints.append(
            f'checkpoint has {ckpt_shape[0]} classes ({key} {ckpt_shape}), '
            f'config num_classes={model_shape[0]}: set '
            f'model.{head}.num_classes={ckpt_shape[0]} (for every head) '
            f'or use a checkpoint trained for {model_shape[0]} classes')
    return hints


def mismatch_message(report: CheckpointReport, limit: int = 10) -> str:
    """A readable account of a partial fit, with the fix.

    Args:
        report (CheckpointReport): Result of :func:`compare_state_dict`.
        limit (int): Keys listed per group before "... and N more".
            Defaults to 10.

    Returns:
        str: Multi-line message naming the file, the keys and the shapes.
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
    lines += _class_count_hint(report)
    lines += listing('shape mismatch', mismatched)
    lines += listing('missing in checkpoint', report.missing)
    lines += listing('unexpected in checkpoint', report.unexpected)
    lines.append(
        'Fix the config so that it builds the model the checkpoint was '
        'trained with (same backbone depth, head channels and num_classes), '
        'or pass strict=False to load only the matching weights '
        '(fine-tuning, not inference).')
    return '\n'.join(lines)


def refuse_or_log(report: CheckpointReport, strict: bool) -> None:
    """Raise on a partial fit when ``strict``, else log it as a warning."""
    if report.complete:
        return
    if strict:
        raise CheckpointMismatchError(mismatch_message(report))
    print_log(
        mismatch_message(report), logger='current', level=logging.WARNING)


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


def load_checkpoint_checked(
    model: nn.Module,
    filename: str,
    strict: bool = True,
    revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), ),
) -> CheckpointReport:
    """Load a checkpoint into ``model``, refusing a partial load by default.

    Reads the file on CPU with ``weights_only=True``, maps an mmseg 0.x meta
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
    state_dict = state_dict_of(checkpoint, revise_keys)
    report = compare_state_dict(model, state_dict, filename)
    report.dataset_meta = dataset_meta_from_checkpoint(checkpoint)
    refuse_or_log(report, strict)
    names_fit = class_names_fit(model, report.dataset_meta, filename,
                                 strict)
    skip = {key for key, _, _ in report.mismatched}
    model.load_state_dict(
        OrderedDict((k, v) for k, v in state_dict.items() if k not in skip),
        strict=False)
    if report.dataset_meta is not None and names_fit:
        model.dataset_meta = report.dataset_meta
    return report


__all__ = [
    'CheckpointMismatchError', 'CheckpointReport',
    'compare_state_dict', 'dataset_meta_from_checkpoint',
    'load_checkpoint_checked', 'mismatch_message', 'read_checkpoint'
]
