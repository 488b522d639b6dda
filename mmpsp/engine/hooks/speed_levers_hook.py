"""Speed levers that keep the math, applied to a Runner's model.

mmpsp's heads always compute their losses the lean way
(:mod:`mmpsp.models.losses.head_loss`). The levers here change how the
network runs, not what it computes:

- ``channels_last``: NHWC memory layout for every conv weight (and so for
  the activations), what cuDNN's fastest kernels on recent GPUs use;
- ``compile``: ``torch.compile`` on the backbone and heads, and on the
  heads' full-resolution loss (upsample, cross-entropy, accuracy), which is
  where mmseg's step spends most of its time;
- on CUDA, batches are copied to the GPU without blocking the host
  (the data preprocessor's ``non_blocking``; with the pinned memory the
  dataset bases declare (``pin_memory=True``), the copy overlaps the
  previous step).

mmpsp's ``default_runtime.py`` turns channels_last on: it changes the
layout, not the result, and costs nothing on CPU.

The hook applies them once the weights are final: in ``before_train``
(``before_val`` / ``before_test`` for evaluation-only runs), after the
Runner's weight initialisation and checkpoint loading. Earlier, the random
initialisation would fill channels_last weights in memory order and draw
different (equally distributed) values than a contiguous model: a run with
channels_last would no longer start from the weights a run without it
starts from with the same seed. The Runner has wrapped the model by
then. Under DDP the gradient buckets keep the layout they were made with:
results are the same, at the cost of a copy per bucket (PyTorch warns about
grad strides), so channels_last pays most in single-process training.

Select them in a config, ``custom_hooks = [dict(type='SpeedLeversHook',
channels_last=True, compile=True)]``, or with ``tools/train.py
--[no-]channels-last --compile``.
"""

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import Runner
from torch import nn

from mmpsp.registry import HOOKS
from mmpsp.utils.model import unwrap_model

_PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head')


def apply_speed_levers(model: nn.Module,
                       channels_last: bool = False,
                       compile: bool = False) -> nn.Module:
    """Apply the levers to a segmentor in place.

    Args:
        model (nn.Module): An mmseg segmentor (``EncoderDecoder``), or a
            model wrapper around one.
        channels_last (bool): Convert parameters to channels_last.
            Defaults to False.
        compile (bool): ``torch.compile`` each part's forward and the heads'
            losses. Defaults to False.

    Returns:
        nn.Module: The same model.
    """
    inner = unwrap_model(model)
    preprocessor = getattr(inner, 'data_preprocessor', None)
    if (preprocessor is not None and hasattr(preprocessor, '_non_blocking')
            and next(inner.parameters()).is_cuda):
        preprocessor._non_blocking = True
    if channels_last:
        inner.to(memory_format=torch.channels_last)
    if compile:
        for name in _PARTS:
            part = getattr(inner, name, None)
            for module in (part if isinstance(part, nn.ModuleList) else
                           [part]):
                if module is None:
                    continue
                module.forward = torch.compile(module.forward)
                if hasattr(module, 'compile_loss'):
                    module.compile_loss = True
    return model


@HOOKS.register_module()
class SpeedLeversHook(Hook):
    """Apply :func:`apply_speed_levers` once, before the first iteration.

    Args:
        channels_last (bool): Defaults to True.
        compile (bool): Defaults to False (compiling costs minutes up front
            and pays off on long GPU runs).
    """

    priority = 'VERY_HIGH'

    def __init__(self, channels_last: bool = True,
                 compile: bool = False) -> None:
        self.channels_last = channels_last
        self.compile = compile
        self._applied = False

    def _apply(self, runner: Runner) -> None:
        """Apply the levers to ``runner.model`` the first time, and log."""
        if self._applied:
            return
        self._applied = True
        apply_speed_levers(runner.model, self.channels_last, self.compile)
        print_log(
            f'speed levers: channels_last={self.channels_last}, '
            f'compile={self.compile}', logger='current')

    def before_train(self, runner: Runner) -> None:
        """Apply the levers after weight init and checkpoint loading.

        Args:
            runner (Runner): The runner.
        """
        self._apply(runner)

    def before_val(self, runner: Runner) -> None:
        """Apply the levers in a validation-only run (same as training)."""
        self._apply(runner)

    def before_test(self, runner: Runner) -> None:
        """Apply the levers in a test run (same as training)."""
        self._apply(runner)
