"""PSPNet's components, registered in ``mmpsp.registry.MODELS``."""
from .backbones import ResNetV1c
from .decode_heads import PPM, FCNHead, PSPHead

__all__ = ['FCNHead', 'PPM', 'PSPHead', 'ResNetV1c']
