"""Mixed-precision training that also works without a GPU.

On CUDA, ``--amp`` selects mmengine's ``AmpOptimWrapper`` (float16 autocast
with a dynamic loss scale), as mmseg does. That wrapper refuses to run on CPU,
so there ``--amp`` selects :class:`BF16AutocastOptimWrapper`: bfloat16
autocast, which torch supports on CPU. bfloat16 keeps float32's exponent
range, so gradients do not underflow and need no loss scaling.
"""
from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast
from torch import nn

from mmpsp.registry import OPTIM_WRAPPERS

# Wrappers --amp may replace; anything else is a deliberate choice to keep.
_PLAIN_WRAPPERS = ('OptimWrapper', 'mmengine.OptimWrapper')
_AMP_WRAPPERS = ('AmpOptimWrapper', 'mmengine.AmpOptimWrapper',
                 'mmpsp.BF16AutocastOptimWrapper', 'BF16AutocastOptimWrapper')


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


AMP_DTYPES = ('auto', 'fp16', 'bf16')


def enable_amp(cfg: Config, dtype: str = 'auto') -> str:
    """Switch ``cfg.optim_wrapper`` to mixed precision for this machine.

    Args:
        cfg (Config): The full config; changed in place.
        dtype (str): ``'fp16'`` (float16 autocast with a dynamic loss scale,
            CUDA only), ``'bf16'`` (bfloat16 autocast, no loss scale; CPU or
            a CUDA device with bfloat16), or ``'auto'``: fp16 on CUDA, bf16
            on CPU. Defaults to ``'auto'``.

    Returns:
        str: The optimizer wrapper type now in the config.
    """
    if dtype not in AMP_DTYPES:
        raise ValueError(f'--amp {dtype!r}: choose one of {AMP_DTYPES}')
    wrapper = cfg.get('optim_wrapper')
    if wrapper is None:
        raise KeyError('--amp needs an optim_wrapper in the config; add '
                       "optim_wrapper=dict(type='OptimWrapper', "
                       'optimizer=...)')
    current = wrapper.get('type', 'OptimWrapper')
    if current in _AMP_WRAPPERS:
        is_bf16 = 'BF16' in current or str(wrapper.get('dtype')) in (
            'bfloat16', 'torch.bfloat16')
        if dtype != 'auto' and (dtype == 'bf16') != is_bf16:
            raise ValueError(
                f'--amp {dtype} asks for another precision than the '
                f'config\'s optim_wrapper.type={current!r}; drop --amp to '
                'keep the config\'s, or set optim_wrapper.type='
                "'OptimWrapper' and pass --amp again")
        print_log(f'--amp: optim_wrapper.type is already {current!r}',
                  logger='current')
        return current
    if current not in _PLAIN_WRAPPERS:
        raise ValueError(
            f'--amp replaces optim_wrapper.type, but the config sets '
            f'{current!r}; drop --amp and configure mixed precision in that '
            "wrapper, or use type='OptimWrapper'")
    cuda = torch.cuda.is_available()
    if dtype == 'fp16' and not cuda:
        raise ValueError('--amp fp16 needs CUDA (float16 with loss scaling); '
                         'on CPU use --amp bf16')
    if dtype == 'fp16' or (dtype == 'auto' and cuda):
        wrapper['type'] = 'AmpOptimWrapper'
        wrapper['loss_scale'] = 'dynamic'
    else:
        wrapper['type'] = 'mmpsp.BF16AutocastOptimWrapper'
        if dtype == 'auto':
            print_log(
                '--amp on CPU: float16 autocast with loss scaling needs '
                'CUDA, training with bfloat16 autocast instead',
                logger='current')
    return wrapper['type']
