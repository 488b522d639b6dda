"""ResNetV1c: the dilated ResNet that PSPNet uses as its backbone.

Built on mmseg's ``ResNet`` and its blocks, so that mmseg configs, plugins
(context blocks, non-local blocks, ...), DCN with full mmcv, parameter names
and checkpoints all work as they do there. mmpsp adds only:

- depths 200 and 269, as in the PSPNet paper;
- blocks whose activation checkpointing (``with_cp``) keeps batch-norm
  running statistics equal to a run without it;
- ``output_stride`` (8, 16 or 32) as a shorthand for strides and
  dilations;
- argument checks whose errors name the argument and the fix.
"""
import difflib
import inspect
from contextlib import contextmanager, nullcontext
from typing import ContextManager, Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmseg.models.backbones import resnet as mmseg_resnet
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmpsp.registry import MODELS
from mmpsp.utils.errors import ArgumentError

# Strides and dilations of the four stages for each output stride.
OUTPUT_STRIDES: Dict[int, Tuple[Tuple[int, ...], Tuple[int, ...]]] = {
    8: ((1, 2, 1, 1), (1, 1, 2, 4)),
    16: ((1, 2, 2, 1), (1, 1, 1, 2)),
    32: ((1, 2, 2, 2), (1, 1, 1, 1)),
}


@contextmanager
def _running_stats_kept(block: nn.Module) -> Iterator[None]:
    """Undo the running-stat updates the batch norms of ``block`` make.

    Activation checkpointing runs a block's forward a second time during the
    backward pass. In training mode a batch norm would then fold the same
    batch into its running mean and variance twice. The second run must
    save the same tensors for backward as the first (torch checks this), so
    it runs unchanged and its buffer updates are reverted afterwards.
    """
    norms = [
        m for m in block.modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats
    ]
    saved = [[b.clone() for b in m.buffers()] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, values in zip(norms, saved):
                for buffer, value in zip(m.buffers(), values):
                    buffer.copy_(value)


class _CheckpointKeepsRunningStats:
    """Activation checkpointing of a whole mmseg block, done right.

    mmseg's blocks recompute their forward under ``with_cp`` and so update
    the batch-norm running statistics twice per step. This mixin runs the
    block's own forward (with checkpointing turned off inside) under
    :func:`torch.utils.checkpoint.checkpoint` and reverts the second update.
    Outputs, gradients and running statistics equal those without it.
    """

    last_norm_name = ''

    def _forward_once(self, x: Tensor) -> Tensor:
        self.with_cp = False
        try:
            return super().forward(x)
        finally:
            self.with_cp = True

    def _checkpoint_contexts(self) -> Tuple[ContextManager, ContextManager]:
        return nullcontext(), _running_stats_kept(self)

    def forward(self, x: Tensor) -> Tensor:
        """Run the block, checkpointed when ``with_cp`` and grad is on.

        Args:
            x (Tensor): Input of shape (N, C_in, H, W).

        Returns:
            Tensor: Output of shape (N, planes * expansion, H / s, W / s)
            for the block's stride ``s``.
        """
        if not (self.with_cp and torch.is_grad_enabled()):
            return super().forward(x)
        return cp.checkpoint(
            self._forward_once,
            x,
            use_reentrant=False,
            context_fn=self._checkpoint_contexts)


class BasicBlock(_CheckpointKeepsRunningStats, mmseg_resnet.BasicBlock):
    """mmseg's ``BasicBlock`` (ResNet-18/34) with exact checkpointing."""

    last_norm_name = 'norm2'


class Bottleneck(_CheckpointKeepsRunningStats, mmseg_resnet.Bottleneck):
    """mmseg's ``Bottleneck`` (ResNet-50 and deeper) with exact
    checkpointing."""

    last_norm_name = 'norm3'


class UnknownDepthError(ArgumentError, KeyError):
    """A depth with no block layout (mmseg raises ``KeyError`` here)."""


_HOST_ARGS = frozenset(
    inspect.signature(mmseg_resnet.ResNet.__init__).parameters) - {
        'self', 'depth', 'deep_stem', 'avg_down'}


@MODELS.register_module()
class ResNetV1c(mmseg_resnet.ResNet):
    """ResNet-V1c: ResNet with a deep stem of three 3x3 convolutions.

    The backbone of `PSPNet <https://arxiv.org/abs/1612.01105>`_ (the paper's
    dilated ResNet), with the stem of `Bag of Tricks for Image
    Classification <https://arxiv.org/abs/1812.01187>`_. It is mmseg's
    ``ResNet`` with ``deep_stem=True, avg_down=False``, so every argument of
    mmseg's ``ResNetV1c`` works here, parameter names match and mmseg's
    checkpoints load.

    Args:
        depth (int): 18, 34 (basic blocks), 50, 101, 152, 200 or 269
            (bottlenecks; 200 and 269 as in the PSPNet paper).
        output_stride (int, optional): 8, 16 or 32, a shorthand for
            ``strides`` and ``dilations`` of four stages: 8 is
            ``strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)`` (PSPNet's
            "-d8"), 16 is ``(1, 2, 2, 1), (1, 1, 1, 2)``, 32 is ``(1, 2, 2,
            2), (1, 1, 1, 1)``. Defaults to None (``strides`` and
            ``dilations`` as given).
        with_cp (bool or Sequence[bool]): Activation checkpointing: saves
            memory, costs a second forward per block. Outputs, gradients and
            running statistics equal those without it. One bool per stage
            checkpoints only those stages, e.g. ``(False, False, False,
            True)`` the last, dilated one. Defaults to False.
        **kwargs: The other arguments of mmseg's ``ResNet`` (``strides``,
            ``dilations``, ``out_indices``, ``norm_cfg``, ``plugins``,
            ``dcn``, ``multi_grid``, ``init_cfg``, ...). ``deep_stem`` and
            ``avg_down`` are fixed for V1c.

    Example:
        >>> import torch
        >>> net = ResNetV1c(depth=18).eval()
        >>> [tuple(o.shape) for o in net(torch.rand(1, 3, 32, 32))]
        [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2), (1, 512, 1, 1)]
    """

    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
        200: (Bottleneck, (3, 24, 36, 3)),
        269: (Bottleneck, (3, 30, 48, 8)),
    }

    def __init__(self,
                 depth: int,
                 output_stride: Optional[int] = None,
                 **kwargs) -> None:
        kwargs = self._checked_args(depth, output_stride, kwargs)
        with_cp = kwargs.pop('with_cp', False)
        stages_cp = self._stages_with_cp(with_cp,
                                         kwargs.get('num_stages', 4))
        super().__init__(
            depth, deep_stem=True, avg_down=False, with_cp=any(stages_cp),
            **kwargs)
        self.output_stride = output_stride
        self.stages_with_cp = stages_cp
        for name, on in zip(self.res_layers, stages_cp):
            for block in getattr(self, name):
                block.with_cp = on
        # mmseg's ResNet zero-initializes the residual branches only for its
        # own block classes (an identity check), so do the same for these.
        if self.zero_init_residual and (kwargs.get('pretrained') is None
                                        and kwargs.get('init_cfg') is None):
            for module in self.modules():
                if isinstance(module, _CheckpointKeepsRunningStats):
                    module.init_cfg = dict(
                        type='Constant',
                        val=0,
                        override=dict(name=module.last_norm_name))

    @classmethod
    def _checked_args(cls, depth: int, output_stride: Optional[int],
                      kwargs: Dict) -> Dict:
        """Check the arguments; return ``kwargs`` with strides resolved."""
        unknown = sorted(set(kwargs) - _HOST_ARGS)
        if unknown:
            fixed = {'deep_stem', 'avg_down'} & set(unknown)
            if fixed:
                hint = ('; ResNetV1c always uses the deep stem without '
                        f'average pooling in the shortcut, remove '
                        f'{sorted(fixed)}')
            else:
                close = {
                    k: difflib.get_close_matches(k, _HOST_ARGS, n=1)
                    for k in unknown
                }
                hint = ''.join(f"; did you mean {m[0]!r} for {k!r}?"
                               for k, m in close.items() if m)
            raise TypeError(
                f'ResNetV1c got unknown arguments {unknown}{hint}; '
                "supported arguments are those of mmseg's ResNetV1c "
                '(depth, strides, dilations, out_indices, norm_cfg, ...) '
                'and output_stride')
        if depth not in cls.arch_settings:
            # A KeyError too, as mmseg's; MMPSPError prints it unquoted.
            raise UnknownDepthError(
                f'ResNetV1c: depth={depth!r} is not supported; choose one of '
                f'{sorted(cls.arch_settings)}')
        num_stages = kwargs.get('num_stages', 4)
        if not isinstance(num_stages, int) or not 1 <= num_stages <= 4:
            raise ArgumentError(
                f'ResNetV1c: num_stages={num_stages!r} must be 1 to 4')
        if output_stride is not None:
            kwargs = cls._resolve_output_stride(output_stride, num_stages,
                                                kwargs)
        strides = tuple(kwargs.get('strides', (1, 2, 2, 2)))
        dilations = tuple(kwargs.get('dilations', (1, 1, 1, 1)))
        if len(strides) != num_stages or len(dilations) != num_stages:
            raise ArgumentError(
                f'ResNetV1c: strides={strides} and dilations={dilations} '
                f'need one entry per stage (num_stages={num_stages}); output '
                'stride 8 is strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), '
                'or set output_stride=8')
        if any(not isinstance(v, int) or v < 1 for v in strides + dilations):
            raise ArgumentError(
                f'ResNetV1c: strides and dilations must be positive ints, '
                f'got strides={strides}, dilations={dilations}')
        out_indices = tuple(kwargs.get('out_indices', (0, 1, 2, 3)))
        if not out_indices or any(not 0 <= i < num_stages
                                  for i in out_indices):
            raise ArgumentError(
                f'ResNetV1c: out_indices={out_indices} must be a non-empty '
                f'list of stage indices in [0, {num_stages})')
        style = kwargs.get('style', 'pytorch')
        if style not in ('pytorch', 'caffe'):
            raise ArgumentError(
                f"ResNetV1c: style={style!r} must be 'pytorch' or 'caffe'")
        frozen_stages = kwargs.get('frozen_stages', -1)
        if not -1 <= frozen_stages <= num_stages:
            raise ArgumentError(
                f'ResNetV1c: frozen_stages={frozen_stages!r} must be -1 '
                f'(nothing frozen) to num_stages={num_stages}')
        multi_grid = kwargs.get('multi_grid')
        if multi_grid is not None:
            last_blocks = cls.arch_settings[depth][1][num_stages - 1]
            if len(multi_grid) != last_blocks:
                raise ArgumentError(
                    f'ResNetV1c: multi_grid={tuple(multi_grid)} needs one '
                    f'dilation per block of the last stage ({last_blocks} '
                    f'blocks for depth {depth})')
        return kwargs

    @staticmethod
    def _stages_with_cp(with_cp, num_stages: int) -> Tuple[bool, ...]:
        if isinstance(with_cp, bool):
            return (with_cp, ) * num_stages
        stages = tuple(with_cp)
        if len(stages) != num_stages or not all(
                isinstance(v, bool) for v in stages):
            raise ArgumentError(
                f'ResNetV1c: with_cp={with_cp!r} must be a bool or one bool '
                f'per stage (num_stages={num_stages}), e.g. '
                '(False, False, False, True)')
        return stages

    @staticmethod
    def _resolve_output_stride(output_stride: int, num_stages: int,
                               kwargs: Dict) -> Dict:
        if output_stride not in OUTPUT_STRIDES:
            raise ArgumentError(
                f'ResNetV1c: output_stride={output_stride!r} must be one of '
                f'{sorted(OUTPUT_STRIDES)}')
        if num_stages != 4:
            raise ArgumentError(
                f'ResNetV1c: output_stride={output_stride} sets four stages; '
                f'with num_stages={num_stages} give strides and dilations '
                'instead')
        strides, dilations = OUTPUT_STRIDES[output_stride]
        given = {
            k: tuple(kwargs[k])
            for k in ('strides', 'dilations') if k in kwargs
        }
        wanted = dict(strides=strides, dilations=dilations)
        clash = {k: v for k, v in given.items() if v != wanted[k]}
        if clash:
            raise ArgumentError(
                f'ResNetV1c: output_stride={output_stride} means '
                f'strides={strides}, dilations={dilations}, but got '
                f'{clash}; set either output_stride or strides and '
                'dilations')
        return {**kwargs, **wanted}
