"""High-level entry points: training, testing and their process setup."""
from .inference import init_segmentor, segment_images

__all__ = ['init_segmentor', 'segment_images']
