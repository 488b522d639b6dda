"""Datasets and transforms that mmseg does not ship.

Rule: registered in ``mmpsp.registry.DATASETS``/``TRANSFORMS`` and named by
configs; everything else a pipeline needs comes from mmseg.
"""
from .camvid import CamVidDataset
from .transforms import (
    MMSEG_EQUIVALENTS,
    FastPhotoMetricDistortion,
    FastRandomCrop,
    RandomGaussianBlur,
    mmseg_transform_type,
    to_mmseg_pipeline,
)

__all__ = [
    'CamVidDataset', 'FastPhotoMetricDistortion', 'FastRandomCrop',
    'MMSEG_EQUIVALENTS', 'RandomGaussianBlur', 'mmseg_transform_type',
    'to_mmseg_pipeline'
]
