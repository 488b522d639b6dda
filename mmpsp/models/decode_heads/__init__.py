"""Decode heads: PSPNet's head and the auxiliary FCN head."""
from .fcn_head import FCNHead
from .psp_head import PPM, PSPHead

__all__ = ['FCNHead', 'PPM', 'PSPHead']
