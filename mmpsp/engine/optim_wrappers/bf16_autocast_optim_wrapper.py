"""Mixed-precision training that also works without a GPU.

mmengine's ``AmpOptimWrapper`` (float16 autocast with a dynamic loss scale)
refuses to run on CPU. :class:`BF16AutocastOptimWrapper` runs the forward
pass under bfloat16 autocast, which torch supports on CPU and on recent
GPUs. bfloat16 keeps float32's exponent
range, so gradients do not underflow and need no loss scaling.
"""
from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast
from torch import nn

from mmpsp.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """Optimizer wrapper that runs the forward pass under bfloat16 autocast.

    Works on CPU and on CUDA devices with bfloat16 support. Parameters,
    gradients and optimizer state stay float32; only autocast-eligible ops
    (convolutions, matmuls) run in bfloat16.

    Args:
        **kwargs: Passed to :class:`mmengine.optim.OptimWrapper`
            (``optimizer``, ``clip_grad``, ``accumulative_counts``).
    """

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Enter the parent's context plus bfloat16 autocast.

        Args:
            model (nn.Module): The model being trained.
        """
        with super().optim_context(model), autocast(dtype=torch.bfloat16):
            yield
