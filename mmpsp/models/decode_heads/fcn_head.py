"""The auxiliary head of PSPNet's deep supervision."""
from typing import Sequence

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from torch import Tensor

from mmpsp.registry import MODELS

from ..losses.head_loss import LeanLossMixin


@MODELS.register_module()
class FCNHead(LeanLossMixin, BaseDecodeHead):
    """A stack of convolutions and a per-pixel classifier.

    `PSPNet <https://arxiv.org/abs/1612.01105>`_ trains with this head on
    the output of the backbone's stage 3 as deep supervision (loss weight
    0.4); it is dropped at inference. The head follows `FCN
    <https://arxiv.org/abs/1411.4038>`_. Parameter and buffer names are
    those of mmseg's ``FCNHead``.

    Args:
        num_convs (int): Number of ConvModules before the classifier; 0
            classifies the input directly (needs ``in_channels ==
            channels``). Defaults to 2.
        kernel_size (int): Odd kernel size of the convolutions.
            Defaults to 3.
        concat_input (bool): Concatenate the input with the convolutions'
            output and fuse both with one more ConvModule. Defaults to True.
        dilation (int): Dilation of the convolutions. Defaults to 1.
        **kwargs: Arguments of mmseg's ``BaseDecodeHead`` (``in_channels``,
            ``channels``, ``num_classes``, ``in_index``, ``loss_decode``,
            ...).

    Example:
        >>> import torch
        >>> head = FCNHead(in_channels=4, channels=2, num_classes=19,
        ...                num_convs=1, concat_input=False)
        >>> head([torch.rand(2, 4, 23, 23)]).shape
        torch.Size([2, 19, 23, 23])
    """

    def __init__(self,
                 num_convs: int = 2,
                 kernel_size: int = 3,
                 concat_input: bool = True,
                 dilation: int = 1,
                 **kwargs) -> None:
        if not isinstance(num_convs, int) or num_convs < 0:
            raise ValueError(
                f'FCNHead: num_convs={num_convs!r} must be an int >= 0')
        if (not isinstance(kernel_size, int) or kernel_size < 1
                or kernel_size % 2 == 0):
            raise ValueError(
                f'FCNHead: kernel_size={kernel_size!r} must be a positive '
                'odd int (so that the output keeps the input size)')
        if not isinstance(dilation, int) or dilation < 1:
            raise ValueError(
                f'FCNHead: dilation={dilation!r} must be an int >= 1')
        super().__init__(**kwargs)
        if not isinstance(self.in_channels, int):
            raise ValueError(
                f'FCNHead: takes one feature map, got in_channels='
                f'{self.in_channels!r}; set an int in_channels and in_index,'
                " or input_transform='resize_concat'")
        if num_convs == 0 and self.in_channels != self.channels:
            raise ValueError(
                f'FCNHead: num_convs=0 classifies the input directly, so '
                f'in_channels={self.in_channels} must equal '
                f'channels={self.channels}; set channels={self.in_channels} '
                'or num_convs >= 1')
        self.num_convs = num_convs
        self.kernel_size = kernel_size
        self.concat_input = concat_input
        self.dilation = dilation
        if num_convs == 0:
            self.convs = nn.Identity()
        else:
            self.convs = nn.Sequential(*[
                ConvModule(
                    self.in_channels if i == 0 else self.channels,
                    self.channels,
                    kernel_size,
                    padding=kernel_size // 2 * dilation,
                    dilation=dilation,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg) for i in range(num_convs)
            ])
        if concat_input:
            self.conv_cat = ConvModule(
                self.in_channels + self.channels,
                self.channels,
                kernel_size,
                padding=kernel_size // 2,
                conv_cfg=self.conv_cfg,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg)

    def _forward_feature(self, inputs: Sequence[Tensor]) -> Tensor:
        """Apply the convolutions (and the input fusion).

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the one at
                ``in_index`` has shape (N, in_channels, H, W).

        Returns:
            Tensor: Features of shape (N, channels, H, W).
        """
        x = self._transform_inputs(inputs)
        feats = self.convs(x)
        if self.concat_input:
            feats = self.conv_cat(torch.cat([x, feats], dim=1))
        return feats

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        """Compute class logits.

        Args:
            inputs (Sequence[Tensor]): Backbone outputs; the one at
                ``in_index`` has shape (N, in_channels, H, W).

        Returns:
            Tensor: Logits of shape (N, out_channels, H, W).
        """
        return self.cls_seg(self._forward_feature(inputs))
