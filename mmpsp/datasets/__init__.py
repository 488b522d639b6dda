"""Datasets and transforms that mmseg does not ship."""
from .camvid import CamVidDataset
from .synthetic import ScenesDemoDataset, generate_scenes_demo

__all__ = ['CamVidDataset', 'ScenesDemoDataset', 'generate_scenes_demo']
