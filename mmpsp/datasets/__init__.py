"""Datasets and transforms that mmseg does not ship."""
from .camvid import CamVidDataset
from .synthetic import ScenesDemoDataset, generate_scenes_demo
from .transforms import RandomGaussianBlur

__all__ = [
    'CamVidDataset', 'RandomGaussianBlur', 'ScenesDemoDataset',
    'generate_scenes_demo'
]
