"""Command-line options that edit a config before the Runner is built.

``--amp``, ``--[no-]channels-last`` and ``--compile`` are shorthands for
config settings a user could write in the config itself: the optimizer
wrapper type and the :class:`~mmpsp.engine.hooks.SpeedLeversHook` entry of
``custom_hooks``. What a run does is still read off the final config.
"""
import warnings
from typing import Optional, Set, Tuple

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from mmpsp.utils.errors import ConfigKeyError

# Wrappers --amp may replace; anything else is a deliberate choice to keep.
_PLAIN_WRAPPERS = ('OptimWrapper', 'mmengine.OptimWrapper')
_AMP_WRAPPERS = ('AmpOptimWrapper', 'mmengine.AmpOptimWrapper',
                 'mmpsp.BF16AutocastOptimWrapper', 'BF16AutocastOptimWrapper')
AMP_DTYPES = ('auto', 'fp16', 'bf16')


# /proc/cpuinfo flags of x86 CPUs that compute bfloat16 natively.
NATIVE_BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


class SlowCPUBF16Warning(UserWarning):
    """``--amp`` picked bfloat16 on a CPU that only emulates it."""


def read_cpuinfo(
        cpuinfo: str = '/proc/cpuinfo') -> Tuple[Optional[str], Set[str]]:
    """The CPU's model name and flags as Linux lists them.

    Args:
        cpuinfo (str): The file listing them. Defaults to
            ``'/proc/cpuinfo'``.

    Returns:
        tuple: ``(model name or None, set of flags)``; ``(None, set())``
        where the file cannot be read.
    """
    model, flags = None, set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name':
                    model = value.strip()
                elif key.strip() == 'flags':
                    flags.update(value.split())
    except OSError:
        pass
    return model, flags


def cpu_has_native_bf16(cpuinfo: str = '/proc/cpuinfo') -> Optional[bool]:
    """Whether this x86 CPU computes bfloat16 natively; None if unknown.

    Args:
        cpuinfo (str): The file listing the CPU's flags (Linux).
            Defaults to ``'/proc/cpuinfo'``.

    Returns:
        bool or None: True with AVX512-BF16 or AMX-BF16, False without
        them, None where the file cannot be read or names no x86 flags.
    """
    _, flags = read_cpuinfo(cpuinfo)
    if not flags:
        return None
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


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
        raise ConfigKeyError('--amp needs an optim_wrapper in the config; add '
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
        if not cuda and cpu_has_native_bf16() is False:
            warnings.warn(
                '--amp on this CPU: it has no native bfloat16 (no '
                f'{" or ".join(NATIVE_BF16_FLAGS)} flag in /proc/cpuinfo), '
                'so bfloat16 autocast is emulated and runs slower than '
                'float32, not faster; drop --amp to train in float32',
                SlowCPUBF16Warning,
                stacklevel=2)
    return wrapper['type']


def add_speed_levers(cfg: Config,
                     channels_last: Optional[bool] = None,
                     compile: Optional[bool] = None) -> Optional[dict]:
    """Set the levers of ``cfg``'s :class:`SpeedLeversHook`.

    The config's hook entry (mmpsp's ``default_runtime.py`` has one) is
    updated in place; a config without one gets one appended when a lever
    is asked for.

    Args:
        cfg (Config): The full config; changed in place.
        channels_last (bool, optional): None keeps the config's choice.
            Defaults to None.
        compile (bool, optional): None keeps the config's choice.
            Defaults to None.

    Returns:
        dict, optional: The hook entry, or None when the config has none
        and nothing was asked for.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    entry = next((h for h in hooks if isinstance(h, dict) and h.get('type')
                  in ('mmpsp.SpeedLeversHook', 'SpeedLeversHook')), None)
    if entry is None:
        if not (channels_last or compile):
            return None
        entry = dict(type='mmpsp.SpeedLeversHook', channels_last=False,
                     compile=False)
        hooks.append(entry)
    if channels_last is not None:
        entry['channels_last'] = channels_last
    if compile is not None:
        entry['compile'] = compile
    cfg.custom_hooks = hooks
    return entry
