"""CamVid in the 11-class SegNet form."""
from typing import Dict, Optional, Sequence

from mmseg.datasets import BaseSegDataset

from mmpsp.registry import DATASETS

# Label value of unlabelled pixels in the SegNet CamVid annotations.
CAMVID_VOID = 11
# The value mmseg's losses (``ignore_index``) and IoUMetric skip by default.
IGNORE_INDEX = 255


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid (Cambridge-driving Labeled Video Database), SegNet's split.

    Images are ``images/{split}/*.jpg`` (360x480 RGB), annotations are
    single-channel index PNGs with the same stem in
    ``annotations/{split}/*.png``. Labels 0-10 are the 11 classes below;
    label 11 is void. Void is remapped to 255 while the annotation is
    loaded (through ``label_map``), so the default ``ignore_index=255`` of
    mmseg's losses and of ``IoUMetric`` drops it from both training and
    evaluation without any other setting.

    Args:
        img_suffix (str): Image file suffix. Defaults to ``'.jpg'``.
        seg_map_suffix (str): Annotation file suffix. Defaults to
            ``'.png'``.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``data_prefix``, ``pipeline``, ...).
    """

    METAINFO = dict(
        classes=('sky', 'building', 'pole', 'road', 'pavement', 'tree',
                 'signsymbol', 'fence', 'car', 'pedestrian', 'bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128],
                 [128, 64, 128], [60, 40, 222], [128, 128, 0],
                 [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                 [0, 128, 192]])

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    @classmethod
    def get_label_map(
            cls,
            new_classes: Optional[Sequence[str]] = None) -> Dict[int, int]:
        """Map annotation values to training labels.

        Extends mmseg's class-subset mapping with ``11 (void) -> 255`` so
        that void is ignored whether or not a class subset is selected.

        Args:
            new_classes (Sequence[str], optional): Classes selected through
                ``metainfo``; ``None`` keeps all 11. Defaults to ``None``.

        Returns:
            dict[int, int]: Old label value to new label value.
        """
        label_map = super().get_label_map(new_classes) or {}
        label_map[CAMVID_VOID] = IGNORE_INDEX
        return label_map
