"""Training guards: stop on a non-finite loss, catch bad labels per batch.

Both turn a failure that shows up late or not at all into an error at the
iteration where it happens, naming the loss term or the label file.
"""
import math
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import Runner
from torch import nn

from mmpsp.registry import HOOKS
from mmpsp.utils.errors import MMPSPError


class NonFiniteLossError(MMPSPError, FloatingPointError):
    """A loss term became NaN or infinite during training."""


class LabelValueError(MMPSPError, ValueError):
    """A batch holds label values that no class or ignore_index covers."""


def _value(v) -> Optional[float]:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean()) if v.numel() else None
    if isinstance(v, (int, float)):
        return float(v)
    return None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is NaN or infinite.

    Runs right after the iteration, before the logger and the checkpoint
    hook, so the non-finite weights are never written over the last good
    checkpoint. The error names the iteration and every non-finite loss
    term (``decode.loss_ce``, ``aux.loss_ce``, ...).
    """

    # Before LoggerHook (BELOW_NORMAL) and CheckpointHook (VERY_LOW).
    priority = 'VERY_HIGH'

    def after_train_iter(self,
                         runner: Runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Raise :class:`NonFiniteLossError` if a loss term is not finite.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch in the epoch.
            data_batch (dict, optional): The batch.
            outputs (dict, optional): ``train_step``'s log variables.
        """
        if not outputs:
            return
        values = {k: _value(v) for k, v in outputs.items() if 'loss' in k}
        bad = {k: v for k, v in values.items()
               if v is not None and not math.isfinite(v)}
        if not bad:
            return
        # The total 'loss' is non-finite whenever a term is; name the terms.
        terms = {k: v for k, v in bad.items() if k != 'loss'} or bad
        listing = ', '.join(f'{k}={v}' for k, v in terms.items())
        last = runner.message_hub.get_info('last_ckpt')
        kept = (f'the last good checkpoint is {last}' if last else
                'no checkpoint was written yet')
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1}: {listing}. '
            f'Training stopped and this state was not saved; {kept}. Lower '
            'optim_wrapper.optimizer.lr, add gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=...)) or check the '
            'labels, then resume')


@HOOKS.register_module()
class LabelRangeHook(Hook):
    """Check every batch's labels before the model sees them.

    A label value ``>= num_classes`` that is not ``ignore_index`` is a
    device-side assert in the CUDA loss (no file name, often hours in) and
    is silently dropped by ``IoUMetric``. This hook raises instead, naming
    the label file and the values, in training, validation and testing.
    The check is one min/max pass over each CPU label map (plus one
    counting pass when it holds ``ignore_index``).

    Args:
        num_classes (int, optional): Defaults to the decode head's.
        ignore_index (int, optional): Defaults to the decode head's.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: Optional[int] = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def before_run(self, runner: Runner) -> None:
        """Take ``num_classes`` and ``ignore_index`` from the decode head.

        Args:
            runner (Runner): The runner.
        """
        model = runner.model
        # DDP wrappers and --tta's SegTTAModel both hold the segmentor in
        # ``module``.
        while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
            model = model.module
        head = getattr(model, 'decode_head', None)
        if isinstance(head, (list, tuple, nn.ModuleList)):
            head = head[-1]  # cascade decoders predict with the last
        if self.num_classes is None:
            self.num_classes = getattr(head, 'num_classes', None)
        if self.ignore_index is None:
            self.ignore_index = getattr(head, 'ignore_index', 255)

    def _bad_values(self, labels: torch.Tensor) -> list:
        """Label values that are neither a class nor ``ignore_index``."""
        # numpy, single-threaded: torch's threaded reductions on a busy
        # host cost 10-100x more for maps this small.
        array = labels.detach().cpu().numpy().ravel()
        if array.size == 0:
            return []
        low, high = int(array.min()), int(array.max())
        if low >= 0 and high < self.num_classes:
            return []
        values = (np.unique(array) if low < 0 else np.flatnonzero(
            np.bincount(array)))
        return [
            v for v in values.tolist()
            if (v >= self.num_classes or v < 0) and v != self.ignore_index
        ]

    def _check(self, data_batch, where: str) -> None:
        if self.num_classes is None or not isinstance(data_batch, dict):
            return
        samples = []
        for item in data_batch.get('data_samples') or []:
            # Test-time augmentation batches hold one list per view.
            samples += item if isinstance(item, (list, tuple)) else [item]
        for sample in samples:
            gt = getattr(sample, 'gt_sem_seg', None)
            if gt is None:
                continue
            values = self._bad_values(gt.data)
            if values:
                path = sample.metainfo.get('seg_map_path', '<unknown file>')
                raise LabelValueError(
                    f'{where}: label values '
                    f'{values} in {path} (after reduce_zero_label/label_map) '
                    f'are >= num_classes={self.num_classes} and not '
                    f'ignore_index={self.ignore_index}. Run '
                    'tools/check_dataset.py CONFIG for every such file and '
                    'the fix')

    def before_train_iter(self, runner: Runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Check a training batch.

        Args:
            runner (Runner): The runner.
            batch_idx (int): Index of the batch.
            data_batch (dict, optional): The batch, before preprocessing.
        """
        self._check(data_batch, f'train iteration {runner.iter + 1}')

    def before_val_iter(self, runner: Runner, batch_idx: int,
                        data_batch: Optional[dict] = None) -> None:
        """Check a validation batch (same arguments as training)."""
        self._check(data_batch, f'val batch {batch_idx + 1}')

    def before_test_iter(self, runner: Runner, batch_idx: int,
                         data_batch: Optional[dict] = None) -> None:
        """Check a test batch (same arguments as training)."""
        self._check(data_batch, f'test batch {batch_idx + 1}')
