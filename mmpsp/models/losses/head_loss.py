"""Decode-head losses with mmseg's math at a lower cost.

mmseg's ``BaseDecodeHead.loss_by_feat`` spends most of a training step on the
full-resolution logits rather than on the network (about two thirds on an
H100, see README "Speed"): the training accuracy ``acc_seg`` runs ``topk``
over all classes at full resolution and indexes with a boolean mask (a host
sync), and under bf16 autocast the upsampled logits are cast to fp32 again
for the cross-entropy. :class:`LeanLossMixin` computes the same losses and
the same accuracy with:

- ``argmax`` and masked sums for ``acc_seg`` (no ``topk``, no sync);
- the upsampling done once in fp32 from the low-resolution logits, which is
  what the fp32 cross-entropy reads anyway, so no full-resolution cast;
- optionally (``compile_loss=True``) the upsample + loss + accuracy fused by
  ``torch.compile`` into a few kernels.

Losses other than mmseg's plain ``CrossEntropyLoss`` go through their own
modules, unchanged.
"""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from mmseg.models.losses import CrossEntropyLoss
from mmseg.utils import SampleList
from torch import Tensor

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


class LeanLossMixin:
    """``loss_by_feat`` for mmseg decode heads, leaner at the same math.

    Mix in before ``BaseDecodeHead``. The class attribute (or constructor
    argument, where the head offers it) ``compile_loss`` wraps the
    full-resolution part in ``torch.compile``.
    """

    compile_loss: bool = False

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
        if self.sampler is None and all(
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
