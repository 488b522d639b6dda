"""PSPNet's decode head: the pyramid pooling module and the classifier."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from mmpsp.registry import MODELS
from mmpsp.utils.errors import ArgumentError

from ..losses.head_loss import LeanLossMixin

_POOLS = {'avg': nn.AdaptiveAvgPool2d, 'max': nn.AdaptiveMaxPool2d}


def _syncs_over_processes(norm: nn.Module) -> bool:
    """Whether a SyncBN layer gathers statistics from more than 1 process."""
    if not (isinstance(norm, nn.SyncBatchNorm) and dist.is_available()
            and dist.is_initialized()):
        return False
    group = norm.process_group or dist.group.WORLD
    return dist.get_world_size(group) > 1


class PPM(nn.ModuleList):
    """Pyramid pooling module: pooled context at several grid sizes.

    Branch ``i`` pools the input to a ``pool_scales[i]`` x
    ``pool_scales[i]`` grid, optionally reduces it to ``channels`` with a
    1x1 ConvModule, and upsamples it back to the input size.

    Args:
        pool_scales (Sequence[int]): Output grid size of each branch.
        in_channels (int): Input channels.
        channels (int): Channels of each branch after dimension reduction.
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict, optional): Norm config.
        act_cfg (dict, optional): Activation config.
        align_corners (bool): ``align_corners`` of the bilinear upsampling.
        pool_type (str): 'avg' or 'max'. Defaults to 'avg'.
        dim_reduction (bool): Reduce each branch to ``channels`` with a 1x1
            ConvModule; without it the pooled features are upsampled as
            they are. Defaults to True.
    """

    def __init__(self,
                 pool_scales: Sequence[int],
                 in_channels: int,
                 channels: int,
                 conv_cfg: Optional[Dict],
                 norm_cfg: Optional[Dict],
                 act_cfg: Optional[Dict],
                 align_corners: bool,
                 pool_type: str = 'avg',
                 dim_reduction: bool = True) -> None:
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.align_corners = align_corners
        self.out_channels = channels if dim_reduction else in_channels
        for scale in self.pool_scales:
            layers: List[nn.Module] = [_POOLS[pool_type](scale)]
            if dim_reduction:
                layers.append(
                    ConvModule(
                        in_channels,
                        channels,
                        1,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg))
            self.append(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> List[Tensor]:
        """Pool, reduce and upsample.

        Args:
            x (Tensor): Features of shape (N, in_channels, H, W).

        Returns:
            list[Tensor]: One tensor of shape (N, out_channels, H, W) per
            pool scale.
        """
        return [
            resize(
                branch(x),
                size=x.shape[2:],
                mode='bilinear',
                align_corners=self.align_corners) for branch in self
        ]


@MODELS.register_module()
class PSPHead(LeanLossMixin, BaseDecodeHead):
    """Decode head of `PSPNet <https://arxiv.org/abs/1612.01105>`_.

    The input features are concatenated with the pyramid pooling module's
    branches, fused by a 3x3 ConvModule (``bottleneck``) and classified per
    pixel. With the default options the parameter and buffer names and
    shapes are those of mmseg's ``PSPHead``. ``pool_type`` and
    ``dim_reduction`` give the paper's Table 1 variants (AVE/MAX, DR).

    A batch norm after the 1x1 pooled branch sees one value per channel
    when training on one image per process, and batch statistics of one
    value are undefined. Such a setup is rejected before the first norm
    runs, with a ``ValueError`` that says what to change; evaluation with
    any batch size is unaffected.

    Args:
        pool_scales (Sequence[int]): Grid sizes of the pyramid pooling
            branches. Defaults to (1, 2, 3, 6).
        pool_type (str): 'avg' or 'max' pooling. Defaults to 'avg'.
        dim_reduction (bool): 1x1 ConvModule to ``channels`` on each pooled
            branch. Defaults to True.
        **kwargs: Arguments of mmseg's ``BaseDecodeHead`` (``in_channels``,
            ``channels``, ``num_classes``, ``dropout_ratio``, ``norm_cfg``,
            ``align_corners``, ``loss_decode``, ...).

    Example:
        >>> import torch
        >>> head = PSPHead(in_channels=4, channels=2, num_classes=19,
        ...                pool_scales=(1, 2, 3))
        >>> head([torch.rand(2, 4, 23, 23)]).shape
        torch.Size([2, 19, 23, 23])
    """

    def __init__(self,
                 pool_scales: Sequence[int] = (1, 2, 3, 6),
                 pool_type: str = 'avg',
                 dim_reduction: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if (not isinstance(pool_scales, (list, tuple)) or not pool_scales
                or any(not isinstance(s, int) or s < 1 for s in pool_scales)):
            raise ArgumentError(
                f'PSPHead: pool_scales={pool_scales!r} must be a non-empty '
                'list or tuple of positive ints, e.g. (1, 2, 3, 6)')
        if pool_type not in _POOLS:
            raise ArgumentError(
                f'PSPHead: pool_type={pool_type!r} must be one of '
                f'{sorted(_POOLS)}')
        if not isinstance(self.in_channels, int):
            raise ArgumentError(
                f'PSPHead: takes one feature map, got in_channels='
                f'{self.in_channels!r} (input_transform='
                f'{self.input_transform!r}); set an int in_channels and '
                'in_index, or input_transform=\'resize_concat\'')
        self._check_norm_for_1x1_branch(pool_scales, dim_reduction)
        self.pool_scales = tuple(pool_scales)
        self.pool_type = pool_type
        self.dim_reduction = dim_reduction
        self.psp_modules = PPM(
            self.pool_scales,
            self.in_channels,
            self.channels,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
            align_corners=self.align_corners,
            pool_type=pool_type,
            dim_reduction=dim_reduction)
        self.bottleneck = ConvModule(
            self.in_channels +
            len(self.pool_scales) * self.psp_modules.out_channels,
            self.channels,
            3,
            padding=1,
            conv_cfg=self.conv_cfg,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg)

    def _check_norm_for_1x1_branch(self, pool_scales: Sequence[int],
                                   dim_reduction: bool) -> None:
        # An instance norm normalizes each sample over its own pixels, and
        # the 1x1 branch has one pixel: it fails in training and in eval.
        if not (dim_reduction and 1 in pool_scales and self.norm_cfg):
            return
        if isinstance(build_norm_layer(self.norm_cfg, 1)[1], _InstanceNorm):
            raise ArgumentError(
                f'PSPHead: norm_cfg={self.norm_cfg!r} normalizes each sample '
                'over its spatial positions, and the pool scale 1 branch '
                'has a single one; use BN, SyncBN or GN, or drop 1 from '
                f'pool_scales={tuple(pool_scales)}')

    def _one_value_norms(self, x: Tensor) -> List[str]:
        """Norms of the pooled branches that would see 1 value per channel.

        Args:
            x (Tensor): Head input of shape (N, in_channels, H, W).

        Returns:
            list[str]: Names of the batch norms that would compute batch
            statistics over a single value; empty when the forward is safe.
        """
        found = []
        for i, (scale, branch) in enumerate(
                zip(self.pool_scales, self.psp_modules)):
            if x.shape[0] * scale * scale > 1:
                continue
            for name, m in branch.named_modules():
                if (isinstance(m, _BatchNorm) and m.training
                        and not _syncs_over_processes(m)):
                    found.append(f'psp_modules.{i}.{name}')
        return found

    def _check_batch(self, x: Tensor) -> None:
        if not self.training:
            return
        norms = self._one_value_norms(x)
        if norms:
            raise ValueError(
                f'PSPHead: training with {x.shape[0]} image(s) per process '
                f'gives {norms} one value per channel (the pool scale 1 '
                'branch pools each image to 1x1), so batch statistics are '
                'undefined. Use a batch size of at least 2 per process '
                '(train_dataloader.batch_size), SyncBN over 2 or more '
                "processes (norm_cfg=dict(type='SyncBN')), or a norm that "
                "works per sample (norm_cfg=dict(type='GN', num_groups=32))")

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """Fuse the features with their pyramid pooling context.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the one at
                ``in_index`` has shape (N, in_channels, H, W).

        Returns:
            Tensor: Features of shape (N, channels, H, W).
        """
        x = self._transform_inputs(inputs)
        self._check_batch(x)
        return self.bottleneck(torch.cat([x] + self.psp_modules(x), dim=1))

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Compute class logits.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the one at
                ``in_index`` has shape (N, in_channels, H, W).

        Returns:
            Tensor: Logits of shape (N, out_channels, H, W).
        """
        return self.cls_seg(self._forward_feature(inputs))
