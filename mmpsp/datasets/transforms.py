"""Data transforms of the PSPNet training recipe that mmseg lacks, and
cheaper drop-in twins of two mmseg training transforms."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmseg.datasets.transforms import PhotoMetricDistortion, RandomCrop

from mmpsp.registry import TRANSFORMS

# mmpsp transform -> the mmseg transform whose output it equals bit for bit
# for the same numpy random state (tests/test_datasets/test_transforms.py
# checks this).
# Configs name the fast ones; comparisons with mmseg's recipes map them back.
MMSEG_EQUIVALENTS: Dict[str, str] = {
    'FastPhotoMetricDistortion': 'PhotoMetricDistortion',
    'FastRandomCrop': 'RandomCrop',
}

# Every uint8 value once: the input of the lookup tables.
_LEVELS = np.arange(256, dtype=np.uint8)


def _unflipped_layout(img: np.ndarray) -> np.ndarray:
    """``img``, or a copy with positive strides if it is a horizontal flip.

    ``RandomFlip`` hands on a horizontal flip as a view with a negative
    column stride. OpenCV copies such an array element by element first
    (about 0.75 ms for 360x480x3, more than the operation itself), while
    ``cv2.flip`` of the unflipped view writes the same values in about
    0.03 ms. Views with positive strides (crops) go to OpenCV as they are.
    """
    if img.ndim >= 2 and img.strides[1] < 0:
        return cv2.flip(img[:, ::-1], 1)
    return img


def mmseg_transform_type(type_name: str) -> str:
    """mmseg's name for a transform type, scoped or not.

    Args:
        type_name (str): A config ``type``, e.g. ``'FastRandomCrop'`` or
            ``'mmpsp.FastRandomCrop'``.

    Returns:
        str: mmseg's name (e.g. ``'RandomCrop'``) for a key of
        :data:`MMSEG_EQUIVALENTS`, with or without the ``mmpsp.`` scope;
        any other name unchanged.
    """
    plain = type_name[len('mmpsp.'):] if type_name.startswith(
        'mmpsp.') else type_name
    return MMSEG_EQUIVALENTS.get(plain, type_name)


def to_mmseg_pipeline(pipeline: Sequence[dict]) -> List[dict]:
    """A copy of ``pipeline`` with mmpsp's fast transforms swapped back.

    Args:
        pipeline (Sequence[dict]): Transform configs.

    Returns:
        list[dict]: Deep copies; each ``type`` passed through
        :func:`mmseg_transform_type`, all other arguments kept.
    """
    out = []
    for step in pipeline:
        step = copy.deepcopy(step)
        step['type'] = mmseg_transform_type(step['type'])
        out.append(step)
    return out


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


@TRANSFORMS.register_module()
class FastPhotoMetricDistortion(PhotoMetricDistortion):
    """mmseg's ``PhotoMetricDistortion`` through lookup tables.

    Outputs equal mmseg's bit for bit for the same numpy random state: the
    random draws are the same calls in the same order (brightness; the
    contrast position; contrast, saturation, hue), so a pipeline seeded
    like mmseg's gives the same images and leaves the generator in the same
    state.

    It is faster because brightness, contrast and saturation map each
    uint8 value through mmseg's own float32 ``convert`` (``v * alpha +
    beta``, clipped, truncated to uint8), and hue through ``(h + delta) %
    180``: functions of one value, so they are evaluated once on the 256
    levels and applied with ``cv2.LUT`` instead of per pixel in float32.
    Brightness and a contrast step that follows it without an HSV step in
    between become a single table. The BGR <-> HSV round trips stay as
    mmseg does them (``mmcv.bgr2hsv`` / ``mmcv.hsv2bgr``, one pair per HSV
    step), since skipping one would change the rounding; a horizontally
    flipped view, as ``RandomFlip`` hands it on, is laid out for them with
    ``cv2.flip`` rather than copied element by element. Images that are
    not uint8 go through mmseg's code unchanged.

    Required keys: ``img`` (``(H, W, 3)`` BGR). Modified keys: ``img``.

    Args:
        brightness_delta (int): Brightness offsets are drawn from
            ``[-brightness_delta, brightness_delta)``. Defaults to ``32``.
        contrast_range (Sequence[float]): Range of the contrast factor.
            Defaults to ``(0.5, 1.5)``.
        saturation_range (Sequence[float]): Range of the saturation factor.
            Defaults to ``(0.5, 1.5)``.
        hue_delta (int): Hue offsets are drawn from ``[-hue_delta,
            hue_delta)``. Defaults to ``18``.
    """

    def _value_lut(self, alpha: float = 1, beta: float = 0) -> np.ndarray:
        """mmseg's ``convert`` evaluated on every uint8 level, shape (256,).

        Called with the same defaults as mmseg's calls to ``convert``, so
        the float32 arithmetic is the same expression on the same values.
        """
        return self.convert(_LEVELS, alpha=alpha, beta=beta)

    def _contrast_lut(self) -> Optional[np.ndarray]:
        if np.random.randint(2):
            return self._value_lut(
                alpha=np.random.uniform(self.contrast_lower,
                                        self.contrast_upper))
        return None

    @staticmethod
    def _then(first: Optional[np.ndarray],
              second: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The table of ``first`` followed by ``second``; None is identity."""
        if first is None or second is None:
            return second if first is None else first
        return second[first]

    @staticmethod
    def _apply(img: np.ndarray, lut: Optional[np.ndarray]) -> np.ndarray:
        return img if lut is None else cv2.LUT(_unflipped_layout(img), lut)

    @staticmethod
    def _in_hsv(img: np.ndarray, channel: int,
                lut: np.ndarray) -> np.ndarray:
        """Map one HSV channel of BGR ``img`` through ``lut``, as mmseg's
        saturation and hue steps do (one BGR -> HSV -> BGR round trip)."""
        channels = list(cv2.split(mmcv.bgr2hsv(_unflipped_layout(img))))
        channels[channel] = cv2.LUT(channels[channel], lut)
        return mmcv.hsv2bgr(cv2.merge(channels))

    def transform(self, results: dict) -> dict:
        """Distort ``results['img']`` as mmseg's transform would.

        Args:
            results (dict): Result dict with ``img``, a ``(H, W, 3)`` BGR
                image.

        Returns:
            dict: ``results`` with ``img`` distorted (same shape and dtype).
        """
        img = results['img']
        if img.dtype != np.uint8:
            return super().transform(results)
        # Per-value BGR tables not yet applied; applied before an HSV step
        # and at the end.
        pending = None
        if np.random.randint(2):
            pending = self._value_lut(
                beta=np.random.uniform(-self.brightness_delta,
                                       self.brightness_delta))
        # mode 1: contrast right after brightness; mode 0: contrast last.
        mode = np.random.randint(2)
        if mode == 1:
            pending = self._then(pending, self._contrast_lut())
        if np.random.randint(2):
            img = self._apply(img, pending)
            pending = None
            img = self._in_hsv(
                img, 1,
                self._value_lut(
                    alpha=np.random.uniform(self.saturation_lower,
                                            self.saturation_upper)))
        if np.random.randint(2):
            img = self._apply(img, pending)
            pending = None
            delta = np.random.randint(-self.hue_delta, self.hue_delta)
            # h < 180 in OpenCV's uint8 HSV, so the table's values fit.
            img = self._in_hsv(img, 0,
                               ((_LEVELS.astype(int) + delta) % 180).astype(
                                   np.uint8))
        if mode == 0:
            pending = self._then(pending, self._contrast_lut())
        results['img'] = self._apply(img, pending)
        return results


@TRANSFORMS.register_module()
class FastRandomCrop(RandomCrop):
    """mmseg's ``RandomCrop`` with a cheaper category-ratio test.

    Outputs equal mmseg's bit for bit for the same numpy random state: the
    crop boxes are drawn with the same ``np.random.randint`` calls, and the
    test that rejects a box (fewer than two labelled categories, or one
    category with ``cat_max_ratio`` or more of the labelled pixels; the
    ``ignore_index`` value dropped first) decides the same way on the same
    counts, so the same box is kept after the same number of draws.

    It is faster because, with ``cat_max_ratio < 1``, mmseg counts the
    labels of each candidate crop (up to 10) with ``np.unique``, which
    sorts the crop; here uint8 and uint16 label maps are counted with
    ``np.bincount`` in one pass. Other label dtypes keep ``np.unique``.

    Required keys: ``img``, ``gt_seg_map``. Modified keys: ``img``,
    ``img_shape``, the keys in ``seg_fields``.

    Args:
        crop_size (int | tuple[int, int]): ``(h, w)`` of the crop, or one
            int for both.
        cat_max_ratio (float): A crop is redrawn (up to 10 times, then
            the last one is kept) unless every category covers less than
            this share of its labelled pixels. Defaults to ``1.0`` (no
            test).
        ignore_index (int): Label value left out of the test. Defaults to
            ``255``.
    """

    # cache_randomness registers a decorated method in the class's
    # ``_methods_with_randomness``; without a list of its own, the
    # override below would be appended to RandomCrop's list a second time.
    _methods_with_randomness: List[str] = []

    def _random_bbox(self, shape: Tuple[int, ...]) -> Tuple[int, int, int,
                                                            int]:
        """``(y1, y2, x1, x2)`` of a crop of an image of ``shape``."""
        margin_h = max(shape[0] - self.crop_size[0], 0)
        margin_w = max(shape[1] - self.crop_size[1], 0)
        offset_h = np.random.randint(0, margin_h + 1)
        offset_w = np.random.randint(0, margin_w + 1)
        return (offset_h, offset_h + self.crop_size[0], offset_w,
                offset_w + self.crop_size[1])

    def _label_counts(self, seg: np.ndarray) -> np.ndarray:
        """Pixel count of each label present in ``seg``, ignore_index
        dropped."""
        if seg.dtype in (np.uint8, np.uint16):
            counts = np.bincount(seg.ravel())
            if self.ignore_index is not None and (
                    0 <= self.ignore_index < len(counts)):
                counts[self.ignore_index] = 0
            return counts[counts > 0]
        labels, counts = np.unique(seg, return_counts=True)
        return counts[labels != self.ignore_index]

    @cache_randomness
    def crop_bbox(self, results: dict) -> tuple:
        """Draw a crop box, redrawing up to 10 times as mmseg does.

        Args:
            results (dict): Result dict with ``img`` and ``gt_seg_map``.

        Returns:
            tuple: ``(y1, y2, x1, x2)`` of the crop.
        """
        shape = results['img'].shape
        bbox = self._random_bbox(shape)
        if self.cat_max_ratio < 1.:
            for _ in range(10):
                counts = self._label_counts(
                    self.crop(results['gt_seg_map'], bbox))
                if len(counts) > 1 and (np.max(counts) / np.sum(counts) <
                                        self.cat_max_ratio):
                    break
                bbox = self._random_bbox(shape)
        return bbox
