"""The auxiliary head of PSPNet's deep supervision."""
from typing import Dict

from mmseg.models.decode_heads.fcn_head import FCNHead as MMSegFCNHead

from mmpsp.registry import MODELS
from mmpsp.utils.errors import ArgumentError

from ..losses.head_loss import LeanLossMixin


@MODELS.register_module()
class FCNHead(LeanLossMixin, MMSegFCNHead):
    """A stack of convolutions and a per-pixel classifier.

    `PSPNet <https://arxiv.org/abs/1612.01105>`_ trains with this head on
    the output of the backbone's stage 3 as deep supervision (loss weight
    0.4); it is dropped at inference. The head follows `FCN
    <https://arxiv.org/abs/1411.4038>`_. It is mmseg's ``FCNHead`` with
    mmpsp's loss path (:class:`~mmpsp.models.losses.LeanLossMixin`) and
    argument checks whose errors name the argument and the fix.

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
            ...) and of the loss path (``chunked_loss``,
            ``loss_chunk_bytes``).

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
        _check_args(num_convs, kernel_size, dilation, kwargs)
        super().__init__(
            num_convs=num_convs,
            kernel_size=kernel_size,
            concat_input=concat_input,
            dilation=dilation,
            **kwargs)
        self.dilation = dilation


def _check_args(num_convs: int, kernel_size: int, dilation: int,
                kwargs: Dict) -> None:
    """Refuse, with the fix, what mmseg's ``FCNHead`` asserts or breaks on.

    Raises:
        ArgumentError: Naming the argument, its value and the fix.
    """
    if not isinstance(num_convs, int) or num_convs < 0:
        raise ArgumentError(
            f'FCNHead: num_convs={num_convs!r} must be an int >= 0')
    if (not isinstance(kernel_size, int) or kernel_size < 1
            or kernel_size % 2 == 0):
        raise ArgumentError(
            f'FCNHead: kernel_size={kernel_size!r} must be a positive '
            'odd int (so that the output keeps the input size)')
    if not isinstance(dilation, int) or dilation < 1:
        raise ArgumentError(
            f'FCNHead: dilation={dilation!r} must be an int >= 1')
    in_channels = kwargs.get('in_channels')
    if kwargs.get('input_transform') is None:
        if not isinstance(in_channels, int):
            raise ArgumentError(
                f'FCNHead: takes one feature map, got in_channels='
                f'{in_channels!r}; set an int in_channels and in_index, or '
                "input_transform='resize_concat'")
    elif isinstance(in_channels, (list, tuple)):
        in_channels = sum(in_channels)
    channels = kwargs.get('channels')
    if num_convs == 0 and in_channels != channels:
        raise ArgumentError(
            f'FCNHead: num_convs=0 classifies the input directly, so '
            f'in_channels={in_channels} must equal channels={channels}; set '
            f'channels={in_channels} or num_convs >= 1')
