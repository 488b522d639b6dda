"""ResNetV1c: the dilated ResNet that PSPNet uses as its backbone."""
from contextlib import contextmanager, nullcontext
from typing import (
    ContextManager,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    Union,
)

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from mmpsp.registry import MODELS

ConfigType = Dict
OptConfigType = Optional[Dict]
InitConfigType = Optional[Union[Dict, List[Dict]]]


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


class _ResidualBlock(BaseModule):
    """Shared forward logic of :class:`BasicBlock` and :class:`Bottleneck`.

    Subclasses build the residual branch and implement ``_branch``; this
    class adds the shortcut, the final ReLU and activation checkpointing.
    """

    expansion = 1
    last_norm_name = ''

    def __init__(self, downsample: Optional[nn.Module], with_cp: bool,
                 init_cfg: InitConfigType) -> None:
        super().__init__(init_cfg)
        self.downsample = downsample
        self.with_cp = with_cp
        self.relu = nn.ReLU(inplace=True)

    def _branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _residual(self, x: Tensor) -> Tensor:
        out = self._branch(x)
        out += x if self.downsample is None else self.downsample(x)
        return out

    def _checkpoint_contexts(self) -> Tuple[ContextManager, ContextManager]:
        return nullcontext(), _running_stats_kept(self)

    def forward(self, x: Tensor) -> Tensor:
        """Run the block.

        Args:
            x (Tensor): Input of shape (N, C_in, H, W).

        Returns:
            Tensor: Output of shape (N, planes * expansion, H / s, W / s)
            for the block's stride ``s``.
        """
        if self.with_cp and torch.is_grad_enabled():
            out = cp.checkpoint(
                self._residual,
                x,
                use_reentrant=False,
                context_fn=self._checkpoint_contexts)
        else:
            out = self._residual(x)
        return self.relu(out)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34).

    As in mmseg (and torchvision), only the first convolution is strided
    and dilated; the second keeps dilation 1.

    Args:
        inplanes (int): Input channels.
        planes (int): Output channels.
        stride (int): Stride of the first convolution. Defaults to 1.
        dilation (int): Dilation of the first convolution. Defaults to 1.
        downsample (nn.Module, optional): Shortcut projection used when the
            shape changes. Defaults to None.
        style (str): Accepted for a common block signature; a basic block
            has only one place for the stride. Defaults to 'pytorch'.
        with_cp (bool): Use activation checkpointing. Defaults to False.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    expansion = 1
    last_norm_name = 'norm2'

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 stride: int = 1,
                 dilation: int = 1,
                 downsample: Optional[nn.Module] = None,
                 style: str = 'pytorch',
                 with_cp: bool = False,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='BN'),
                 init_cfg: InitConfigType = None) -> None:
        super().__init__(downsample, with_cp, init_cfg)
        self.stride = stride
        self.dilation = dilation
        self.conv1 = build_conv_layer(
            conv_cfg,
            inplanes,
            planes,
            3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, planes, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(
            conv_cfg, planes, planes, 3, padding=1, bias=False)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, planes, postfix=2)
        self.add_module(self.norm2_name, norm2)

    @property
    def norm1(self) -> nn.Module:
        """nn.Module: The norm after ``conv1``."""
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        """nn.Module: The norm after ``conv2``."""
        return getattr(self, self.norm2_name)

    def _branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        return self.norm2(self.conv2(out))


class Bottleneck(_ResidualBlock):
    """1x1 - 3x3 - 1x1 bottleneck with a shortcut (ResNet-50 and deeper).

    Args:
        inplanes (int): Input channels.
        planes (int): Channels of the 3x3 convolution; the block outputs
            ``planes * 4``.
        stride (int): Stride of the block. Defaults to 1.
        dilation (int): Dilation of the 3x3 convolution. Defaults to 1.
        downsample (nn.Module, optional): Shortcut projection used when the
            shape changes. Defaults to None.
        style (str): 'pytorch' puts the stride on the 3x3 convolution,
            'caffe' on the first 1x1 convolution. Defaults to 'pytorch'.
        with_cp (bool): Use activation checkpointing. Defaults to False.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    expansion = 4
    last_norm_name = 'norm3'

    def __init__(self,
                 inplanes: int,
                 planes: int,
                 stride: int = 1,
                 dilation: int = 1,
                 downsample: Optional[nn.Module] = None,
                 style: str = 'pytorch',
                 with_cp: bool = False,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='BN'),
                 init_cfg: InitConfigType = None) -> None:
        super().__init__(downsample, with_cp, init_cfg)
        self.stride = stride
        self.dilation = dilation
        self.style = style
        conv1_stride, conv2_stride = ((1, stride) if style == 'pytorch' else
                                      (stride, 1))
        self.conv1 = build_conv_layer(
            conv_cfg, inplanes, planes, 1, stride=conv1_stride, bias=False)
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, planes, postfix=1)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(
            conv_cfg,
            planes,
            planes,
            3,
            stride=conv2_stride,
            padding=dilation,
            dilation=dilation,
            bias=False)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, planes, postfix=2)
        self.add_module(self.norm2_name, norm2)
        self.conv3 = build_conv_layer(
            conv_cfg, planes, planes * self.expansion, 1, bias=False)
        self.norm3_name, norm3 = build_norm_layer(
            norm_cfg, planes * self.expansion, postfix=3)
        self.add_module(self.norm3_name, norm3)

    @property
    def norm1(self) -> nn.Module:
        """nn.Module: The norm after ``conv1``."""
        return getattr(self, self.norm1_name)

    @property
    def norm2(self) -> nn.Module:
        """nn.Module: The norm after ``conv2``."""
        return getattr(self, self.norm2_name)

    @property
    def norm3(self) -> nn.Module:
        """nn.Module: The norm after ``conv3``."""
        return getattr(self, self.norm3_name)

    def _branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        return self.norm3(self.conv3(out))


def pretrained_to_init_cfg(pretrained: Optional[str],
                           init_cfg: InitConfigType) -> InitConfigType:
    """Turn a ``pretrained`` checkpoint path into mmengine's ``init_cfg``.

    mmseg's ``EncoderDecoder`` copies a config's segmentor-level
    ``pretrained=`` into ``backbone.pretrained``, so a backbone used in mmseg
    configs receives the checkpoint that way. This is the one place where
    that key is turned into ``dict(type='Pretrained', checkpoint=...)``,
    which mmengine's ``init_weights`` loads.

    Args:
        pretrained (str, optional): Checkpoint path or URL.
        init_cfg (dict or list[dict], optional): The init config given
            alongside.

    Returns:
        dict or list[dict], optional: The init config to use.
    """
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, str):
        raise TypeError(
            f'ResNetV1c: pretrained must be a checkpoint path or URL (str) '
            f'or None, got {type(pretrained).__name__} {pretrained!r}')
    if init_cfg is not None:
        raise ValueError(
            f'ResNetV1c: got both pretrained={pretrained!r} and '
            f'init_cfg={init_cfg!r}; set only one (preferably '
            f"init_cfg=dict(type='Pretrained', checkpoint=...), or the "
            f"segmentor-level pretrained= key)")
    return dict(type='Pretrained', checkpoint=pretrained)


@MODELS.register_module()
class ResNetV1c(BaseModule):
    """ResNet-V1c: ResNet with a deep stem of three 3x3 convolutions.

    The backbone of `PSPNet <https://arxiv.org/abs/1612.01105>`_ (the paper's
    dilated ResNet), with the stem of `Bag of Tricks for Image
    Classification <https://arxiv.org/abs/1812.01187>`_. Argument names are
    those of mmseg's ``ResNetV1c`` so that mmseg configs work unchanged, and
    parameter and buffer names match mmseg's so its checkpoints load.

    Output strides: 8 is ``strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)``
    (PSPNet's "-d8"); 16 is ``strides=(1, 2, 2, 1), dilations=(1, 1, 1,
    2)``; 32 is the default ``strides=(1, 2, 2, 2), dilations=(1, 1, 1,
    1)``.

    Args:
        depth (int): 18, 34 (basic blocks), 50, 101, 152, 200 or 269
            (bottlenecks; 200 and 269 as in the PSPNet paper).
        in_channels (int): Image channels. Defaults to 3.
        stem_channels (int): Output channels of the stem. Defaults to 64.
        base_channels (int): Channels of the first stage (before the
            bottleneck expansion). Defaults to 64.
        num_stages (int): Number of stages, 1 to 4. Defaults to 4.
        strides (Sequence[int]): Stride of the first block of each stage.
            Defaults to (1, 2, 2, 2).
        dilations (Sequence[int]): Dilation of each stage.
            Defaults to (1, 1, 1, 1).
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Defaults to (0, 1, 2, 3).
        style (str): 'pytorch' (stride on the 3x3 convolution) or 'caffe'
            (stride on the first 1x1). Defaults to 'pytorch'.
        frozen_stages (int): Freeze the stem (0) and stages 1 to
            ``frozen_stages``: no gradients, norms in eval mode. -1 freezes
            nothing. Defaults to -1.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Norm config, e.g. ``dict(type='SyncBN')``.
            Defaults to ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool): Keep every batch norm in eval mode (frozen
            running statistics) during training. Defaults to False.
        dcn (dict, optional): Not supported; must be None.
        stage_with_dcn (Sequence[bool]): Not supported; must be all False.
            Defaults to (False, False, False, False).
        plugins (list[dict], optional): Not supported; must be None.
        multi_grid (Sequence[int], optional): Dilation of each block of the
            last stage, used as given (mmseg's convention). Defaults to None.
        contract_dilation (bool): Halve the dilation of the first block of
            each dilated stage. Defaults to False.
        with_cp (bool): Activation checkpointing: saves memory, costs a
            second forward per block. Outputs, gradients and running
            statistics equal those without it. Defaults to False.
        zero_init_residual (bool): With the default initialization, start
            the last norm of every block at zero so that each block begins
            as the identity. Defaults to True.
        pretrained (str, optional): Checkpoint to load; see
            :func:`pretrained_to_init_cfg`. Defaults to None.
        init_cfg (dict or list[dict], optional): Initialization config, e.g.
            ``dict(type='Pretrained', checkpoint='r50.pth')``. Defaults to
            None (Kaiming for convolutions, ones for norms).
        **unsupported: Any other argument (e.g. mmseg's ``deep_stem`` or
            ``avg_down``, fixed for V1c) raises a ``TypeError`` naming it.

    Example:
        >>> import torch
        >>> net = ResNetV1c(depth=18).eval()
        >>> [tuple(o.shape) for o in net(torch.rand(1, 3, 32, 32))]
        [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2), (1, 512, 1, 1)]
    """

    arch_settings: Dict[int, Tuple[Type[_ResidualBlock], Tuple[int, ...]]] = {
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
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 style: str = 'pytorch',
                 frozen_stages: int = -1,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 dcn: OptConfigType = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 plugins: Optional[List[Dict]] = None,
                 multi_grid: Optional[Sequence[int]] = None,
                 contract_dilation: bool = False,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 pretrained: Optional[str] = None,
                 init_cfg: InitConfigType = None,
                 **unsupported) -> None:
        self._check_args(depth, num_stages, strides, dilations, out_indices,
                         style, frozen_stages, dcn, stage_with_dcn, plugins,
                         multi_grid, unsupported)
        uses_default_init = pretrained is None and init_cfg is None
        if uses_default_init:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d'),
                dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
            ]
        super().__init__(pretrained_to_init_cfg(pretrained, init_cfg))
        self.uses_default_init = uses_default_init
        self.depth = depth
        self.num_stages = num_stages
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.out_indices = tuple(out_indices)
        self.style = style
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.multi_grid = multi_grid
        self.contract_dilation = contract_dilation
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.block, stage_blocks = self.arch_settings[depth]
        self.stage_blocks = stage_blocks[:num_stages]

        self.stem = self._make_stem(in_channels, stem_channels, conv_cfg,
                                    norm_cfg)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.res_layers: List[str] = []
        inplanes = stem_channels
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            last = i == num_stages - 1
            layer = self._make_stage(
                inplanes, planes, num_blocks, self.strides[i],
                self._block_dilations(self.dilations[i], num_blocks,
                                      multi_grid if last else None),
                conv_cfg, norm_cfg)
            inplanes = planes * self.block.expansion
            self.add_module(f'layer{i + 1}', layer)
            self.res_layers.append(f'layer{i + 1}')
        self.feat_dim = inplanes
        self._freeze_stages()

    @classmethod
    def _check_args(cls, depth: int, num_stages: int, strides: Sequence[int],
                    dilations: Sequence[int], out_indices: Sequence[int],
                    style: str, frozen_stages: int, dcn: OptConfigType,
                    stage_with_dcn: Sequence[bool],
                    plugins: Optional[List[Dict]],
                    multi_grid: Optional[Sequence[int]],
                    unsupported: Dict) -> None:
        if unsupported:
            fixed = {'deep_stem', 'avg_down'} & set(unsupported)
            hint = (f'; ResNetV1c always uses the deep stem without average '
                    f'pooling in the shortcut, remove {sorted(fixed)}'
                    if fixed else '')
            raise TypeError(
                f'ResNetV1c got unknown arguments {sorted(unsupported)}'
                f'{hint}; supported arguments are those of mmseg\'s '
                'ResNetV1c (depth, strides, dilations, out_indices, '
                'norm_cfg, ...)')
        if depth not in cls.arch_settings:
            raise ValueError(
                f'ResNetV1c: depth={depth!r} is not supported; choose one of '
                f'{sorted(cls.arch_settings)}')
        if dcn is not None or any(stage_with_dcn):
            raise ValueError(
                'ResNetV1c: deformable convolutions (dcn, stage_with_dcn) are '
                'not supported; remove them, or use mmseg\'s own backbone '
                "(type='mmseg.ResNetV1c') with full mmcv")
        if plugins is not None:
            raise ValueError(
                'ResNetV1c: plugins are not supported; remove plugins=..., '
                "or use mmseg's own backbone (type='mmseg.ResNetV1c') with "
                'full mmcv')
        if not 1 <= num_stages <= 4:
            raise ValueError(
                f'ResNetV1c: num_stages={num_stages!r} must be 1 to 4')
        if len(strides) != num_stages or len(dilations) != num_stages:
            raise ValueError(
                f'ResNetV1c: strides={tuple(strides)} and '
                f'dilations={tuple(dilations)} need one entry per stage '
                f'(num_stages={num_stages}); output stride 8 is '
                'strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)')
        bad = [v for v in tuple(strides) + tuple(dilations)
               if not isinstance(v, int) or v < 1]
        if bad:
            raise ValueError(
                f'ResNetV1c: strides and dilations must be positive ints, '
                f'got strides={tuple(strides)}, dilations={tuple(dilations)}')
        if not out_indices or any(not 0 <= i < num_stages
                                  for i in out_indices):
            raise ValueError(
                f'ResNetV1c: out_indices={tuple(out_indices)} must be a '
                f'non-empty list of stage indices in [0, {num_stages})')
        if style not in ('pytorch', 'caffe'):
            raise ValueError(
                f"ResNetV1c: style={style!r} must be 'pytorch' or 'caffe'")
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f'ResNetV1c: frozen_stages={frozen_stages!r} must be -1 '
                f'(nothing frozen) to num_stages={num_stages}')
        if multi_grid is not None:
            last_blocks = cls.arch_settings[depth][1][num_stages - 1]
            if len(multi_grid) != last_blocks:
                raise ValueError(
                    f'ResNetV1c: multi_grid={tuple(multi_grid)} needs one '
                    f'dilation per block of the last stage ({last_blocks} '
                    f'blocks for depth {depth})')

    def _block_dilations(self, dilation: int, num_blocks: int,
                         multi_grid: Optional[Sequence[int]]) -> List[int]:
        if multi_grid is not None:
            return list(multi_grid)
        # The first block of a dilated stage also changes the stride
        # (or follows a stage that did); contracting its dilation keeps its
        # receptive field aligned with the stage before.
        first = dilation // 2 if (self.contract_dilation
                                  and dilation > 1) else dilation
        return [first] + [dilation] * (num_blocks - 1)

    @staticmethod
    def _make_stem(in_channels: int, stem_channels: int,
                   conv_cfg: OptConfigType,
                   norm_cfg: ConfigType) -> nn.Sequential:
        half = stem_channels // 2
        layers: List[nn.Module] = []
        for i, (cin, cout) in enumerate([(in_channels, half), (half, half),
                                         (half, stem_channels)]):
            layers += [
                build_conv_layer(
                    conv_cfg,
                    cin,
                    cout,
                    kernel_size=3,
                    stride=2 if i == 0 else 1,
                    padding=1,
                    bias=False),
                build_norm_layer(norm_cfg, cout)[1],
                nn.ReLU(inplace=True)
            ]
        return nn.Sequential(*layers)

    def _make_stage(self, inplanes: int, planes: int, num_blocks: int,
                    stride: int, dilations: List[int],
                    conv_cfg: OptConfigType,
                    norm_cfg: ConfigType) -> nn.Sequential:
        block = self.block
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or inplanes != out_channels:
            downsample = nn.Sequential(
                build_conv_layer(
                    conv_cfg,
                    inplanes,
                    out_channels,
                    kernel_size=1,
                    stride=stride,
                    bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        blocks = []
        for i in range(num_blocks):
            blocks.append(
                block(
                    inplanes=inplanes if i == 0 else out_channels,
                    planes=planes,
                    stride=stride if i == 0 else 1,
                    dilation=dilations[i],
                    downsample=downsample if i == 0 else None,
                    style=self.style,
                    with_cp=self.with_cp,
                    conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg))
        return nn.Sequential(*blocks)

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.stem] + [
            getattr(self, f'layer{i}')
            for i in range(1, self.frozen_stages + 1)
        ]

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Initialize from ``init_cfg``, then zero the residual branches.

        Zeroing the last norm of each block applies only with the default
        initialization (no ``pretrained`` and no ``init_cfg``), so loaded
        weights are never overwritten.
        """
        first_time = not self._is_init
        super().init_weights()
        if first_time and self.uses_default_init and self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, _ResidualBlock):
                    constant_init(getattr(m, m.last_norm_name), 0)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Compute the stage outputs listed in ``out_indices``.

        Args:
            x (Tensor): Images of shape (N, in_channels, H, W).

        Returns:
            tuple[Tensor]: For each index ``i`` in ``out_indices``, a tensor
            of shape (N, base_channels * 2**i * expansion, H / s_i, W / s_i)
            where ``s_i`` is the output stride of stage ``i``.
        """
        x = self.maxpool(self.stem(x))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'ResNetV1c':
        """Set train/eval mode, keeping frozen stages and ``norm_eval``.

        Args:
            mode (bool): Training mode. Defaults to True.

        Returns:
            ResNetV1c: self.
        """
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


