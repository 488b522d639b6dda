"""Backbones: the dilated ResNetV1c."""
from .resnet import BasicBlock, Bottleneck, ResNetV1c

__all__ = ['BasicBlock', 'Bottleneck', 'ResNetV1c']
