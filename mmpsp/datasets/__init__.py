"""Datasets and transforms that mmseg does not ship."""
from .camvid import CamVidDataset

__all__ = ['CamVidDataset']
