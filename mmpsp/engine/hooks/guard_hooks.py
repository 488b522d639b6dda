"""Training guards: stop on a non-finite loss, catch bad labels per batch.

Both turn a failure that shows up late or not at all into an error at the
iteration where it happens, naming the loss term or the label file.
"""
import math
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import broadcast, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import Runner
from torch import nn

from mmpsp.engine.checks.checkpoint_check import (
    non_finite_keys,
    numbered_checkpoints,
    read_checkpoint,
    state_dict_of,
)
from mmpsp.registry import HOOKS
from mmpsp.utils.errors import MMPSPError
from mmpsp.utils.model import unwrap_model

# Checkpoints read (newest first) to find the last finite one after a
# failure: each read costs a checkpoint load.
MAX_CHECKPOINTS_SCANNED = 10


class NonFiniteLossError(MMPSPError, FloatingPointError):
    """A loss term became NaN or infinite during training."""


class NonFiniteWeightsError(NonFiniteLossError):
    """The weights became NaN or infinite while the loss was still finite."""


def last_finite_checkpoint(last: Optional[str],
                           before: int) -> Tuple[Optional[str], List[str]]:
    """The newest checkpoint of a run whose weights are all finite.

    Args:
        last (str, optional): The run's latest checkpoint (message hub
            ``last_ckpt``); its folder is searched. None: no checkpoint.
        before (int): Only checkpoints of earlier iterations count.

    Returns:
        tuple: The path (None if there is none) and, for each newer
        checkpoint passed over, ``'<path> (<why>)'``.
    """
    if not last:
        return None, []
    candidates = numbered_checkpoints(osp.dirname(last))
    if last in candidates:
        candidates = candidates[candidates.index(last):]
    elif '://' in last or osp.isfile(last):
        # A remote out_dir cannot be listed here: its latest file only.
        candidates.insert(0, last)
    skipped = []
    for path in candidates[:MAX_CHECKPOINTS_SCANNED]:
        try:
            checkpoint = read_checkpoint(path)
        except (MMPSPError, OSError) as error:
            skipped.append(f'{path} ({getattr(error, "reason", "") or error})')
            continue
        step = checkpoint.get('meta', {}).get('iter')
        if isinstance(step, int) and step >= before:
            continue
        bad = non_finite_keys(state_dict_of(checkpoint, ()))
        if not bad:
            return path, skipped
        more = f' and {len(bad) - 1} more' if len(bad) > 1 else ''
        skipped.append(f'{path} (non-finite {bad[0]}{more})')
    return None, skipped


def _kept_message(runner: Runner, before: int) -> str:
    """Which checkpoint to resume from, for the error message."""
    last = runner.message_hub.get_info('last_ckpt')
    good, skipped = last_finite_checkpoint(last, before)
    passed = ('; passed over, their weights are not finite or they do not '
              'load: ' + ', '.join(skipped)) if skipped else ''
    if good is not None:
        return (f'the last checkpoint with finite weights is {good} '
                f'(resume with tools/train.py CONFIG --resume {good}){passed}')
    if last:
        return ('no checkpoint of this run has finite weights' + passed +
                '; start again from the initial weights')
    return 'no checkpoint was written yet'


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
    term (``decode.loss_ce``, ``aux.loss_ce``, ...), and the newest
    checkpoint of the run whose weights are all finite (or says there is
    none).

    An update can turn the weights non-finite while the loss that produced
    it was finite; the next loss is then NaN, one iteration after the
    checkpoint hook saved the broken weights. With ``check_weights`` the
    hook therefore also checks the weights at each iteration (or epoch) at
    which a :class:`~mmengine.hooks.CheckpointHook` of the run is about to
    save, and stops before the save: one ``isfinite`` pass over the
    weights per checkpoint.

    Args:
        check_weights (bool): Check the weights before each checkpoint
            save. Defaults to True.
    """

    # Before LoggerHook (BELOW_NORMAL) and CheckpointHook (VERY_LOW).
    priority = 'VERY_HIGH'

    def __init__(self, check_weights: bool = True) -> None:
        self.check_weights = check_weights

    def _checkpoint_hooks(self, runner: Runner) -> List[CheckpointHook]:
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def _saves_now(self, runner: Runner, epoch_end: bool) -> bool:
        """Whether a checkpoint hook saves after this iteration or epoch."""
        for hook in self._checkpoint_hooks(runner):
            if hook.by_epoch != epoch_end:
                continue
            if epoch_end:
                due = hook.every_n_epochs(runner, hook.interval,
                                          hook.save_begin) or (
                                              hook.save_last and
                                              hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _check_weights(self, runner: Runner, where: str) -> None:
        model = unwrap_model(runner.model)
        bad = non_finite_keys(model.state_dict())
        if not bad:
            return
        listing = ', '.join(bad[:3]) + (f' and {len(bad) - 3} more'
                                        if len(bad) > 3 else '')
        raise NonFiniteWeightsError(
            f'non-finite weights {where} ({listing}), although the loss '
            'was finite: the last update diverged. Training stopped before '
            'the checkpoint of this state was written; '
            f'{_kept_message(runner, runner.iter + 1)}. Lower '
            'optim_wrapper.optimizer.lr or add gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=...)), then resume')

    def after_train_epoch(self, runner: Runner) -> None:
        """Check the weights before an epoch-based checkpoint is saved.

        Args:
            runner (Runner): The runner.
        """
        if self.check_weights and self._saves_now(runner, epoch_end=True):
            self._check_weights(runner, f'after epoch {runner.epoch + 1}')

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
            if self.check_weights and self._saves_now(runner, False):
                self._check_weights(runner,
                                    f'after iteration {runner.iter + 1}')
            return
        # The total 'loss' is non-finite whenever a term is; name the terms.
        terms = {k: v for k, v in bad.items() if k != 'loss'} or bad
        listing = ', '.join(f'{k}={v}' for k, v in terms.items())
        kept = _kept_message(runner, runner.iter + 1)
        raise NonFiniteLossError(
            f'non-finite loss at iteration {runner.iter + 1}: {listing}. '
            f'Training stopped and this state was not saved; {kept}. Lower '
            'optim_wrapper.optimizer.lr, add gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=...)) or check the '
            'labels, then resume')


@HOOKS.register_module()
class RankZeroBuffersHook(Hook):
    """Validate with the buffers the checkpoint holds: rank 0's.

    Without SyncBN (CPU runs, where mmpsp turns SyncBN into BN, or configs
    with plain BN), each rank's BN running statistics follow its own
    batches. DDP's ``broadcast_buffers`` copies rank 0's at the start of
    each training forward only, so after the last iteration the ranks
    differ by one update. Validation (``val_step``, which bypasses DDP's
    forward) then scores each rank's share of the val set with that rank's
    statistics, while the checkpoint saved just before holds rank 0's: the
    logged val mIoU differs from testing that checkpoint (measured: 9.08
    against 9.29 on the tiny data of
    ``tests/test_engine/test_reliability_dist_val.py``). This hook
    broadcasts rank 0's buffers before every validation and test, so they
    agree. One broadcast of the buffers; nothing in a single process.
    """

    priority = 'VERY_HIGH'

    def _broadcast(self, runner: Runner) -> None:
        if get_world_size() <= 1:
            return
        for buffer in unwrap_model(runner.model).buffers():
            broadcast(buffer, src=0)

    def before_val_epoch(self, runner: Runner) -> None:
        """Give every rank rank 0's buffers before validating.

        Args:
            runner (Runner): The runner.
        """
        self._broadcast(runner)

    def before_test_epoch(self, runner: Runner) -> None:
        """Give every rank rank 0's buffers before testing.

        Args:
            runner (Runner): The runner.
        """
        self._broadcast(runner)


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
