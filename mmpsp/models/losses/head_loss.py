"""Decode-head losses with mmseg's math at a lower cost.

mmseg's ``BaseDecodeHead.loss_by_feat`` spends most of a training step on the
full-resolution logits rather than on the network (about two thirds on an
H100, see docs/speed.md): the training accuracy ``acc_seg`` runs ``topk``
over all classes at full resolution and indexes with a boolean mask (a host
sync), and under bf16 autocast the upsampled logits are cast to fp32 again
for the cross-entropy. :class:`LeanLossMixin` computes the same losses and
the same accuracy with:

- ``argmax`` and masked sums for ``acc_seg`` (no ``topk``, no sync);
- the upsampling done once in fp32 from the low-resolution logits, which is
  what the fp32 cross-entropy reads anyway, so no full-resolution cast;
- optionally (``compile_loss=True``) the upsample + loss + accuracy fused by
  ``torch.compile`` into a few kernels.

By default (``chunked_loss=True``) heads whose losses are all mmseg
``CrossEntropyLoss`` terms (class weights allowed) and that have no pixel
sampler take :func:`~.chunked_cross_entropy.chunked_upsample_cross_entropy`
instead: the same math, computed in chunks of ``loss_chunk_bytes`` so that
the full-resolution logits never exist. Any other loss, a sampler, or
``compile_loss=True`` falls back to the paths above, and the fallback is
logged once per head class and reason.

Losses other than mmseg's plain ``CrossEntropyLoss`` go through their own
modules, unchanged.
"""
import logging
from typing import Callable, Dict, List, Optional, Set, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmseg.models.losses import CrossEntropyLoss
from mmseg.utils import SampleList
from torch import Tensor

from ...utils.config_tree import walk_dicts
from .chunked_cross_entropy import (
    DEFAULT_MAX_CHUNK_BYTES,
    chunked_upsample_cross_entropy,
    supports,
)

_EPS = torch.finfo(torch.float32).eps


def pixel_accuracy(seg_logits: Tensor, seg_label: Tensor,
                   ignore_index: int) -> Tensor:
    """Top-1 pixel accuracy in percent, as mmseg's ``accuracy(topk=1)``.

    Args:
        seg_logits (Tensor): Logits of shape (N, C, H, W).
        seg_label (Tensor): Labels of shape (N, H, W).
        ignore_index (int): Label value left out of the count.

    Returns:
        Tensor: A one-element tensor, e.g. ``tensor([87.5])``.
    """
    with torch.no_grad():
        valid = seg_label != ignore_index
        correct = (seg_logits.argmax(dim=1) == seg_label) & valid
        hits = correct.sum(dtype=torch.float32).view(1) + _EPS
        return hits * (100.0 / (valid.sum(dtype=torch.float32) + _EPS))


def _is_plain_cross_entropy(loss_module: torch.nn.Module) -> bool:
    return (type(loss_module) is CrossEntropyLoss
            and not loss_module.use_sigmoid and not loss_module.use_mask
            and loss_module.class_weight is None
            and loss_module.reduction == 'mean')


def plain_cross_entropy(seg_logits: Tensor, seg_label: Tensor,
                        ignore_index: int, avg_non_ignore: bool) -> Tensor:
    """mmseg's ``CrossEntropyLoss`` without class or pixel weights.

    The same value as mmseg's (sum over pixels divided by the pixel count,
    or by the non-ignored count with ``avg_non_ignore``), without its
    ``.item()`` host sync.
    """
    total = F.cross_entropy(
        seg_logits, seg_label, ignore_index=ignore_index, reduction='sum')
    if avg_non_ignore:
        count = (seg_label != ignore_index).sum(dtype=torch.float32)
    else:
        count = seg_label.numel()
    return total / (count + _EPS)


def plain_losses(seg_logits: Tensor, seg_label: Tensor, align_corners: bool,
                 ignore_index: int, loss_weights: Tuple[float, ...],
                 avg_non_ignore: Tuple[bool, ...]) -> Tuple[list, Tensor]:
    """Upsample, plain cross-entropy losses and accuracy in one function.

    Kept free of module state so that ``torch.compile`` can fuse it.

    Args:
        seg_logits (Tensor): Low-resolution logits of shape (N, C, h, w).
        seg_label (Tensor): Labels of shape (N, 1, H, W).
        align_corners (bool): As the head's ``align_corners``.
        ignore_index (int): Label value left out of loss and accuracy.
        loss_weights (tuple[float]): One weight per cross-entropy term.
        avg_non_ignore (tuple[bool]): Each term's ``avg_non_ignore``.

    Returns:
        tuple: The list of loss values and the accuracy tensor.
    """
    logits = F.interpolate(
        seg_logits.float(),
        size=seg_label.shape[2:],
        mode='bilinear',
        align_corners=align_corners)
    label = seg_label.squeeze(1)
    values = [
        weight * plain_cross_entropy(logits, label, ignore_index, non_ignore)
        for weight, non_ignore in zip(loss_weights, avg_non_ignore)
    ]
    return values, pixel_accuracy(logits, label, ignore_index)


_compiled_plain_losses: Optional[Callable] = None


def _get_plain_losses(compiled: bool) -> Callable:
    global _compiled_plain_losses
    if not compiled:
        return plain_losses
    if _compiled_plain_losses is None:
        _compiled_plain_losses = torch.compile(plain_losses)
    return _compiled_plain_losses


_logged_fallbacks: Set[Tuple[str, str]] = set()


def _log_fallback_once(head: object, reason: str) -> None:
    key = (type(head).__name__, reason)
    if key not in _logged_fallbacks:
        _logged_fallbacks.add(key)
        print_log(
            f'{key[0]}: chunked loss not used ({reason}); the loss path '
            'holds the full-resolution logits', logger='current',
            level=logging.INFO)


class LeanLossMixin:
    """``loss_by_feat`` for mmseg decode heads, leaner at the same math.

    Mix in before ``BaseDecodeHead``. The class attribute ``compile_loss``
    wraps the full-resolution part in ``torch.compile``.

    Args:
        chunked_loss (bool): Compute upsample, cross-entropy and accuracy in
            chunks, never holding the full-resolution logits (same math;
            see :mod:`.chunked_cross_entropy`). Defaults to True.
        loss_chunk_bytes (int, optional): Memory budget of one chunk in
            bytes. Defaults to None
            (:data:`~.chunked_cross_entropy.DEFAULT_MAX_CHUNK_BYTES`, 8 MiB).
        **kwargs: Passed on to the head's next base (``BaseDecodeHead``).
    """

    compile_loss: bool = False

    def __init__(self,
                 *args,
                 chunked_loss: bool = True,
                 loss_chunk_bytes: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if loss_chunk_bytes is not None and (
                not isinstance(loss_chunk_bytes, int)
                or loss_chunk_bytes < 1):
            raise ValueError(
                f'{type(self).__name__}: loss_chunk_bytes='
                f'{loss_chunk_bytes!r} must be a positive int (bytes), e.g. '
                f'{DEFAULT_MAX_CHUNK_BYTES}')
        self.chunked_loss = bool(chunked_loss)
        self.loss_chunk_bytes = loss_chunk_bytes or DEFAULT_MAX_CHUNK_BYTES

    def loss_by_feat(self, seg_logits: Tensor,
                     batch_data_samples: SampleList) -> dict:
        """Losses and ``acc_seg`` from low-resolution logits.

        Args:
            seg_logits (Tensor): Head output of shape (N, C, h, w).
            batch_data_samples (list[SegDataSample]): Samples carrying
                ``gt_sem_seg`` of shape (1, H, W).

        Returns:
            dict[str, Tensor]: One entry per loss name, and ``acc_seg``.
        """
        seg_label = self._stack_batch_gt(batch_data_samples)
        modules = (self.loss_decode if isinstance(
            self.loss_decode, torch.nn.ModuleList) else [self.loss_decode])
        chunked = self.chunked_loss and not self.compile_loss
        use_chunked = chunked and supports(modules, self.sampler)
        if chunked and not use_chunked:
            _log_fallback_once(
                self, 'a pixel sampler' if self.sampler is not None else
                'a loss other than softmax CrossEntropyLoss')
        if use_chunked:
            class_weights = [m.class_weight for m in modules]
            values, acc = chunked_upsample_cross_entropy(
                seg_logits, seg_label, self.align_corners, self.ignore_index,
                tuple(m.loss_weight for m in modules),
                tuple(m.avg_non_ignore for m in modules),
                None if all(w is None for w in class_weights) else
                class_weights,
                max_chunk_bytes=self.loss_chunk_bytes)
        elif self.sampler is None and all(
                _is_plain_cross_entropy(m) for m in modules):
            values, acc = _get_plain_losses(self.compile_loss)(
                seg_logits, seg_label, self.align_corners, self.ignore_index,
                tuple(m.loss_weight for m in modules),
                tuple(m.avg_non_ignore for m in modules))
        else:
            logits = F.interpolate(
                seg_logits.float(),
                size=seg_label.shape[2:],
                mode='bilinear',
                align_corners=self.align_corners)
            weight = (None if self.sampler is None else
                      self.sampler.sample(logits, seg_label))
            label = seg_label.squeeze(1)
            values = [
                m(logits, label, weight=weight, ignore_index=self.ignore_index)
                for m in modules
            ]
            acc = pixel_accuracy(logits, label, self.ignore_index)
        losses: Dict[str, Tensor] = {}
        for module, value in zip(modules, values):
            name = module.loss_name
            losses[name] = losses[name] + value if name in losses else value
        losses['acc_seg'] = acc
        return losses


def set_chunked_loss(cfg: dict, enabled: bool, reason: str) -> List[str]:
    """Set ``chunked_loss`` on every mmpsp head of a config's model.

    A head is mmpsp's when its ``type`` resolves (in the config's
    ``default_scope``) to a class with :class:`LeanLossMixin`; other heads
    (mmseg's own, which compute their loss mmseg's way anyway) are left
    alone, since they take no ``chunked_loss`` argument.

    Args:
        cfg (dict): The full config (``model``, ``default_scope``); changed
            in place.
        enabled (bool): The value to set.
        reason (str): Why, for the log line, e.g. ``'--no-chunked-loss'``.

    Returns:
        list[str]: The dotted keys of the heads that were changed.
    """
    from mmpsp.registry import MODELS
    changed = []
    with MODELS.switch_scope_and_registry(
            cfg.get('default_scope') or 'mmpsp') as registry:
        for path, node in walk_dicts(cfg.get('model'), 'model'):
            head = node.get('type')
            cls = registry.get(head) if isinstance(head, str) else head
            if isinstance(cls, type) and issubclass(cls, LeanLossMixin):
                node['chunked_loss'] = bool(enabled)
                changed.append(path)
    if changed:
        print_log(
            f'chunked_loss={bool(enabled)} ({reason}) in: '
            f'{", ".join(changed)}', logger='current')
    else:
        print_log(
            f'{reason}: no mmpsp decode or auxiliary head in the model '
            'config; nothing changed', logger='current',
            level=logging.WARNING)
    return changed
