"""Data transforms of the PSPNet training recipe that mmseg lacks."""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmpsp.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomGaussianBlur(BaseTransform):
    """Blur the image with a Gaussian kernel, at random.

    Part of the ADE20K and PASCAL VOC augmentation in `Pyramid Scene Parsing
    Network <https://arxiv.org/abs/1612.01105>`_. Only ``img`` changes;
    segmentation maps stay sharp, since blurring labels would invent
    classes at boundaries.

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        prob (float): Probability of blurring, in ``[0, 1]``. Defaults to
            ``0.5``.
        kernel_size (int): Side of the square kernel; odd and positive.
            Defaults to ``5`` (the official PSPNet code's radius).
        sigma (float): Standard deviation of the Gaussian; ``0`` lets
            OpenCV derive it from ``kernel_size`` (1.1 for 5). Defaults to
            ``0.0``.
    """

    def __init__(self,
                 prob: float = 0.5,
                 kernel_size: int = 5,
                 sigma: float = 0.0) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(
                f'RandomGaussianBlur: prob={prob} is outside [0, 1]; set '
                'prob to a probability such as 0.5')
        if (not isinstance(kernel_size, int) or kernel_size <= 0
                or kernel_size % 2 == 0):
            raise ValueError(
                f'RandomGaussianBlur: kernel_size={kernel_size!r} must be a '
                'positive odd int (cv2.GaussianBlur needs a centre pixel); '
                'use e.g. 3 or 5')
        if sigma < 0:
            raise ValueError(
                f'RandomGaussianBlur: sigma={sigma} is negative; pass a '
                'positive value or 0 to derive it from kernel_size')
        self.prob = prob
        self.kernel_size = kernel_size
        self.sigma = sigma

    @cache_randomness
    def _should_blur(self) -> bool:
        return bool(np.random.rand() < self.prob)

    def transform(self, results: dict) -> dict:
        """Blur ``results['img']`` with probability ``prob``.

        Args:
            results (dict): Result dict with ``img`` of shape
                ``(H, W, C)`` or ``(H, W)``, any dtype OpenCV accepts.

        Returns:
            dict: ``results`` with ``img`` blurred (same shape and dtype)
            or untouched.
        """
        if self._should_blur():
            k = self.kernel_size
            results['img'] = cv2.GaussianBlur(results['img'], (k, k),
                                              self.sigma)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, '
                f'kernel_size={self.kernel_size}, sigma={self.sigma})')
