"""Datasets and transforms that mmseg does not ship."""
from .camvid import CamVidDataset
from .synthetic import ScenesDemoDataset, generate_scenes_demo
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
    'MMSEG_EQUIVALENTS', 'RandomGaussianBlur', 'ScenesDemoDataset',
    'generate_scenes_demo', 'mmseg_transform_type', 'to_mmseg_pipeline'
]
