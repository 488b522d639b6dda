"""Check a segmentation dataset's files before training reads them.

Label encoding mistakes surface in mmseg training as a device-side assert
hours in (a label value the loss cannot index) or, worse, as a quietly wrong
mIoU (16-bit labels wrapped to 8 bits, classes in another order, a void value
counted as a class). :func:`check_dataset` reads the files a config points at
the way mmseg's ``LoadAnnotations`` would and reports each problem with the
file, the value and the fix.
"""
import copy
import logging
import os
import os.path as osp
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger, print_log
from mmengine.registry import init_default_scope
from PIL import Image

from mmpsp.utils.config_tree import leaf_datasets

from .config_check import (
    SPLITS,
    ConfigCheckError,
    check_class_counts,
    check_data_roots,
    check_ignore_index,
    head_ignore_index,
)

ON_CORRUPT = ('skip', 'stop')
# How many example files an issue lists before "and N more".
MAX_EXAMPLES = 3
# PIL modes that mmseg's loader turns into one label channel.
SINGLE_CHANNEL_MODES = ('L', 'P', '1')
WIDE_MODES = ('I;16', 'I;16B', 'I;16L', 'I', 'F')
# EXIF tag 274 (Orientation) values and what a viewer does with them.
EXIF_ORIENTATION = 0x0112
ORIENTATIONS = {
    2: 'mirrored', 3: 'rotated 180', 4: 'flipped upside down',
    5: 'mirrored and rotated 90', 6: 'rotated 90 clockwise',
    7: 'mirrored and rotated 270', 8: 'rotated 90 counter-clockwise'
}
# Orientations that swap width and height.
TRANSPOSING = (5, 6, 7, 8)
# LoadImageFromFile colour types whose decoding (cv2 and pillow) applies
# the EXIF orientation; '*_ignore_orientation' and 'unchanged' do not.
ORIENTING_COLOR_TYPES = ('color', 'grayscale')
# A sample this large that shows every label value 0..N-1 and never N is
# evidence (not proof) that labels are 0-based.
MIN_SAMPLES_FOR_ABSENCE = 32


class DataCheckError(ConfigCheckError):
    """The dataset a config points at cannot be trained or evaluated on."""


@dataclass
class Issue:
    """One kind of problem, with every file it was found in.

    Args:
        kind (str): Short name of the problem, e.g. ``'label-range'``.
        message (str): What is wrong and how to fix it.
        severity (str): ``'error'`` (training would crash or compute a
            wrong number) or ``'warning'`` (works, but worth fixing).
        paths (list[str]): Files showing the problem.
    """

    kind: str
    message: str
    severity: str = 'error'
    paths: List[str] = field(default_factory=list)

    def format(self) -> str:
        """Return the message with up to :data:`MAX_EXAMPLES` files."""
        text = f'[{self.severity}] {self.message}'
        if self.paths:
            shown = ', '.join(self.paths[:MAX_EXAMPLES])
            more = len(self.paths) - MAX_EXAMPLES
            text += f'\n    files: {shown}'
            if more > 0:
                text += f' and {more} more'
        return text


@dataclass
class DataReport:
    """What :func:`check_dataset` found.

    Args:
        split (str): ``'train'``, ``'val'`` or ``'test'``.
        num_samples (int): Samples in the dataset.
        num_checked (int): Samples whose files were read.
        issues (list[Issue]): Problems found, errors first.
    """

    split: str
    num_samples: int = 0
    num_checked: int = 0
    issues: List[Issue] = field(default_factory=list)

    @property
    def errors(self) -> List[Issue]:
        """Issues that make training crash or compute a wrong number."""
        return [i for i in self.issues if i.severity == 'error']

    @property
    def warnings(self) -> List[Issue]:
        """Issues that are worth fixing but do not break training."""
        return [i for i in self.issues if i.severity == 'warning']

    def format(self) -> str:
        """Return a human-readable summary, one issue per paragraph."""
        head = (f'{self.split}: {self.num_samples} samples, '
                f'{self.num_checked} checked, {len(self.errors)} error(s), '
                f'{len(self.warnings)} warning(s)')
        return '\n'.join([head] + [i.format() for i in self.issues])


class _Issues:
    """Collects issues by (kind, message) so one cause is reported once."""

    def __init__(self) -> None:
        self._by_key: 'OrderedDict[Tuple[str, str], Issue]' = OrderedDict()

    def add(self, kind: str, message: str, path: Optional[str] = None,
            severity: str = 'error') -> Issue:
        key = (kind, message)
        if key not in self._by_key:
            self._by_key[key] = Issue(kind, message, severity)
        issue = self._by_key[key]
        if path is not None:
            issue.paths.append(path)
        return issue

    def sorted(self) -> List[Issue]:
        issues = list(self._by_key.values())
        return ([i for i in issues if i.severity == 'error'] +
                [i for i in issues if i.severity != 'error'])


def _sample_indices(n: int, max_samples: Optional[int]) -> List[int]:
    """Evenly spread indices, so a sample covers the whole file list."""
    if max_samples is None or max_samples >= n:
        return list(range(n))
    if max_samples <= 0:
        return []
    return sorted({int(i) for i in np.linspace(0, n - 1, max_samples)})


def _read_label(path: str) -> Tuple[np.ndarray, Image.Image]:
    """Decode a label fully; raises ``OSError`` on a corrupt file."""
    with Image.open(path) as img:
        img.load()
        return np.array(img), img.copy()


def _decode_image(path: str) -> Tuple[int, int]:
    """Decode an image fully and return its ``(width, height)``.

    ``Image.verify`` misses truncated JPEGs, which OpenCV (mmseg's default
    decoder) would decode silently with the missing part grey, so the
    pixels are decoded here.
    """
    with Image.open(path) as img:
        img.load()
        return img.size


def _read_header(path: str) -> Tuple[Tuple[int, int], int]:
    """``(width, height)`` as stored and the EXIF orientation (1: none).

    Reads only the file header (and the EXIF block), not the pixels.
    """
    with Image.open(path) as img:
        if img.format == 'PNG':
            # PNG's getexif() decodes the whole image when the eXIf chunk
            # is not among the chunks read so far; read only those.
            exif = Image.Exif()
            if img.info.get('exif'):
                exif.load(img.info['exif'])
        else:
            exif = img.getexif()
        try:
            orientation = int(exif.get(EXIF_ORIENTATION, 1))
        except (TypeError, ValueError):
            orientation = 1
        return img.size, orientation


def _read_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` from the file header."""
    with Image.open(path) as img:
        return img.size


def _loader_applies_orientation(dataset) -> Tuple[bool, str]:
    """Whether the pipeline's ``LoadImageFromFile`` applies EXIF rotation.

    Returns:
        tuple: The answer and the ``color_type`` it is based on.
    """
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms',
                         None) or []
    for transform in transforms:
        color_type = getattr(transform, 'color_type', None)
        if type(transform).__name__.startswith('LoadImage') and isinstance(
                color_type, str):
            return color_type in ORIENTING_COLOR_TYPES, color_type
    return True, 'color'


def _effective_labels(raw: np.ndarray, reduce_zero_label: bool,
                      label_map: Optional[Dict[int, int]]) -> np.ndarray:
    """Apply what ``LoadAnnotations`` does to 8-bit label values.

    Args:
        raw (np.ndarray): Distinct raw label values, uint8, shape (K,).
        reduce_zero_label (bool): The dataset's setting.
        label_map (dict, optional): The dataset's old-to-new label map.

    Returns:
        np.ndarray: The training label of each raw value, shape (K,).
    """
    labels = raw.astype(np.int64)
    if reduce_zero_label:
        labels = np.where(labels == 0, 255, labels - 1)
        labels = np.where(labels == 254, 255, labels)
    if label_map:
        mapped = labels.copy()
        for old, new in label_map.items():
            mapped[labels == old] = new
        labels = mapped
    return labels


def _palette_issue(img: Image.Image, used: np.ndarray,
                   classes: Sequence[str],
                   palette: Optional[Sequence[Sequence[int]]]
                   ) -> Optional[str]:
    """Explain a 'P' label whose colours put classes in another order.

    A palette PNG is read by index, not by colour. If the colour drawn for
    index ``i`` is the dataset's colour of a different class ``j``, the
    file was written with another class order and every such pixel trains
    as the wrong class. Unrelated palettes (mmseg's random ones) pass.
    """
    raw = img.getpalette()
    if not raw or not palette:
        return None
    colours = [tuple(raw[3 * i:3 * i + 3]) for i in range(len(raw) // 3)]
    by_colour = {tuple(c): j for j, c in enumerate(palette)}
    for i in used:
        i = int(i)
        if i >= len(classes) or i >= len(colours):
            continue
        j = by_colour.get(colours[i])
        if j is not None and j != i:
            return (f'palette PNG draws index {i} in colour {colours[i]}, '
                    f'which is class {j} {classes[j]!r} in the dataset '
                    f'palette, but index {i} trains as {classes[i]!r}: the '
                    'labels use another class order. Re-encode them so '
                    'pixel value = index in the dataset classes '
                    f'{tuple(classes)}')
    return None


class _DatasetChecker:
    """Checks one built mmseg dataset; see :func:`check_dataset`."""

    def __init__(self, dataset, split: str, num_classes: int,
                 ignore_index: int, on_corrupt: str,
                 logger: MMLogger) -> None:
        self.dataset = dataset
        self.split = split
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.on_corrupt = on_corrupt
        self.logger = logger
        self.issues = _Issues()
        self.meta = dataset.metainfo
        self.classes = tuple(self.meta.get('classes', ()))
        self.reduce_zero_label = bool(
            getattr(dataset, 'reduce_zero_label', False))
        self.label_map = getattr(dataset, 'label_map', None)
        self.raw_values: Set[int] = set()
        self.num_decoded_labels = 0
        # The first decoded label file holding each raw value.
        self.value_files: Dict[int, str] = {}
        self.unreadable: Set[str] = set()
        self.orients, self.color_type = _loader_applies_orientation(dataset)

    def _key(self, name: str) -> str:
        return f'{self.split}_dataloader.dataset.{name}'

    def corrupt(self, path: str, err: Exception) -> None:
        message = (f'cannot decode {path}: {err}; re-export or delete the '
                   'file (and its image/label partner)')
        self.unreadable.add(path)
        if self.on_corrupt == 'stop':
            raise DataCheckError(
                f'{message}. Run tools/check_dataset.py with '
                '--on-corrupt skip to list every unreadable file at once')
        print_log(f'skipping unreadable file {path}: {err}',
                  logger=self.logger, level=logging.WARNING)
        self.issues.add('corrupt', 'unreadable files (skipped); re-export '
                        'or delete them with their image/label partner',
                        path)

    def check_files_exist(self, data_list: List[dict]) -> None:
        for info in data_list:
            seg = info.get('seg_map_path')
            if seg is not None and not osp.isfile(seg):
                self.issues.add(
                    'missing-label', 'images without a label file; add the '
                    'labels (same stem, suffix '
                    f'{self.dataset.seg_map_suffix!r}) or remove the images',
                    info['img_path'])

    def check_headers(self, data_list: List[dict]) -> None:
        """Every listed file: does it exist, do image and label sizes fit.

        Reads file headers only (no pixels), so it covers the whole
        dataset: a missing file listed by ``ann_file`` would otherwise be a
        ``FileNotFoundError`` hours into training, a size mismatch a crash
        in a crop. Sizes are compared as the pipeline will see them: with
        the image's EXIF orientation applied when its
        ``LoadImageFromFile`` does (``color_type='color'``, the default;
        labels are read as stored).
        """
        for info in data_list:
            img_path, seg_path = info['img_path'], info.get('seg_map_path')
            if not osp.isfile(img_path):
                self.issues.add(
                    'missing-image-file', 'listed images that do not '
                    'exist (training would stop at a FileNotFoundError '
                    'when it reaches them); restore the files, or remove '
                    'them from the ann_file', img_path)
                continue
            if seg_path is None or not osp.isfile(seg_path):
                continue
            try:
                img_size, orientation = _read_header(img_path)
            except (OSError, ValueError, SyntaxError) as err:
                self.corrupt(img_path, err)
                continue
            try:
                label_size = _read_size(seg_path)
            except (OSError, ValueError, SyntaxError) as err:
                self.corrupt(seg_path, err)
                continue
            if orientation in ORIENTATIONS and self.orients:
                self._check_orientation(img_path, seg_path, img_size,
                                        label_size, orientation)
            elif img_size != label_size:
                self._size_issue(img_path, seg_path, img_size, label_size)

    def _size_issue(self, img_path: str, seg_path: str,
                    img_size: Tuple[int, int],
                    label_size: Tuple[int, int]) -> None:
        self.issues.add(
            'size', f'image and label sizes differ (image {img_size}, '
            f'label {label_size}, as width x height) for {img_path}; '
            'resize the label with nearest-neighbour or re-export the '
            'pair', seg_path)

    def _check_orientation(self, img_path: str, seg_path: str,
                           stored: Tuple[int, int],
                           label_size: Tuple[int, int],
                           orientation: int) -> None:
        """An EXIF-oriented image: which grid were its labels drawn on?"""
        upright = stored[::-1] if orientation in TRANSPOSING else stored
        what = (f'EXIF orientation {orientation} '
                f'({ORIENTATIONS[orientation]})')
        load = (f"LoadImageFromFile (color_type={self.color_type!r}) "
                'applies it, LoadAnnotations reads labels as stored')
        keep_upright = ('export the images upright (pixels rotated, tag '
                        'removed) so that every tool sees the same grid')
        ignore = ("set color_type='color_ignore_orientation' in the "
                  'LoadImageFromFile of every pipeline (train, val, test, '
                  'tta), or strip the tag from the images (e.g. exiftool '
                  '-Orientation= -n FILE)')
        if label_size == upright and upright != stored:
            self.issues.add(
                'exif-upright',
                f'images carry an {what} and their labels match the '
                f'upright view: {load}, so they line up and train '
                'correctly. Keep the default color_type; do not set '
                "'color_ignore_orientation'. Better: " + keep_upright,
                seg_path, severity='warning')
        elif label_size == stored and upright != stored:
            self.issues.add(
                'exif-orientation',
                f'images carry an {what}: {load}, so the image loads as '
                f'{upright} (width x height) while its label, drawn on '
                f'the stored {stored} grid, stays {label_size}; training '
                'would crash in a crop or learn misaligned masks. If the '
                'labels were drawn on the stored grid (they have its '
                'size), ' + ignore + '; if they were drawn on the upright '
                'view, rotate the label files the same way', img_path)
        elif label_size == stored:
            self.issues.add(
                'exif-orientation',
                f'images carry an {what}: {load}; the sizes cannot tell '
                'which view the labels were drawn on, and on the wrong '
                'one every mask trains mirrored or rotated against its '
                'image. If the labels were drawn on the stored pixels, '
                + ignore + '; if they were drawn on the upright view, '
                'keep the default color_type and ' + keep_upright,
                img_path)
        else:
            self._size_issue(img_path, seg_path, upright, label_size)

    def check_orphan_labels(self, data_list: List[dict]) -> None:
        """Labels whose image is missing shrink the dataset silently."""
        if getattr(self.dataset, 'ann_file', ''):
            return  # a split file selects a subset on purpose
        ann_dir = self.dataset.data_prefix.get('seg_map_path')
        if not ann_dir or not osp.isdir(ann_dir):
            return
        known = {osp.normpath(i['seg_map_path']) for i in data_list
                 if i.get('seg_map_path')}
        suffix = self.dataset.seg_map_suffix
        img_dir = self.dataset.data_prefix.get('img_path')
        for root, _, files in os.walk(ann_dir):
            for name in sorted(files):
                path = osp.normpath(osp.join(root, name))
                if name.endswith(suffix) and path not in known:
                    self.issues.add(
                        'missing-image', 'labels without an image (not '
                        'trained on); add the images (suffix '
                        f'{self.dataset.img_suffix!r}) under {img_dir} or '
                        'remove the labels', path)

    def check_sample(self, info: dict) -> None:
        img_path, seg_path = info['img_path'], info.get('seg_map_path')
        if img_path in self.unreadable or not osp.isfile(img_path):
            return
        try:
            _decode_image(img_path)
        except (OSError, ValueError, SyntaxError) as err:
            self.corrupt(img_path, err)
            return
        if (seg_path is None or not osp.isfile(seg_path)
                or seg_path in self.unreadable):
            return
        try:
            label, img = _read_label(seg_path)
        except (OSError, ValueError, SyntaxError) as err:
            self.corrupt(seg_path, err)
            return
        self.num_decoded_labels += 1
        if not self._check_mode(img, label, seg_path):
            return
        values = np.unique(label)
        if img.mode == 'P':
            problem = _palette_issue(img, values, self.classes,
                                     self.meta.get('palette'))
            if problem:
                self.issues.add('palette', problem, seg_path)
        for value in values.tolist():
            self.value_files.setdefault(value, seg_path)
        self.raw_values.update(values.tolist())
        self._check_values(values, seg_path)

    def _check_mode(self, img: Image.Image, label: np.ndarray,
                    path: str) -> bool:
        if img.mode in SINGLE_CHANNEL_MODES:
            return True
        if img.mode in WIDE_MODES:
            top = int(label.max()) if label.size else 0
            if top > 255 or img.mode == 'F':
                self.issues.add(
                    '16bit', f'{img.mode} label with values up to {top}: '
                    'mmseg casts labels to uint8, so value v trains as '
                    'v % 256 (e.g. '
                    f'{top} -> {top % 256}). Remap to 0..num_classes-1 '
                    f'(ignore = {self.ignore_index}) and save 8-bit '
                    "single-channel PNGs (PIL mode 'L')", path)
                return False
            self.issues.add(
                '16bit-fits', f'{img.mode} (16/32-bit) labels; their values '
                'fit in 8 bits so they load correctly, but save them as '
                "8-bit PNGs (PIL mode 'L') to halve their size", path,
                severity='warning')
            return True
        channels = len(img.getbands())
        if label.ndim == 3 and np.all(label[..., :3] == label[..., :1]):
            hint = ('its channels are equal: save one channel as an 8-bit '
                    "PNG (PIL mode 'L')")
        else:
            palette = self.meta.get('palette')
            hint = ('it holds colours: map each colour to its class index'
                    + (f' (dataset palette, index order: {palette[:3]} ...)'
                       if palette else '') +
                    f' and save 8-bit single-channel PNGs, value '
                    f'{self.ignore_index} for unlabelled pixels')
        self.issues.add(
            'colour', f'{channels}-channel ({img.mode}) label: mmseg needs '
            f'one channel holding class indices; {hint}', path)
        return False

    def _check_values(self, values: np.ndarray, path: str) -> None:
        labels = _effective_labels(values, self.reduce_zero_label,
                                   self.label_map)
        bad = sorted({
            int(raw) for raw, lab in zip(values.tolist(), labels.tolist())
            if lab >= self.num_classes and lab != self.ignore_index
        })
        if not bad:
            return
        n = self.num_classes
        if (not self.reduce_zero_label and bad == [n]
                and 0 in values.tolist()):
            # Values 0..N fit two encodings; say both, each with its fix.
            self.issues.add(
                'reduce-zero-label',
                f'labels hold 0..{n} but num_classes={n}: if 0 means '
                f"'other' and classes are 1..{n} (ADE20K style), set "
                f"{self._key('reduce_zero_label')}=True (for every split); "
                f'if {n} marks unlabelled pixels, set ignore_index={n} on '
                'the decode and auxiliary heads and the evaluator, or map '
                f'{n} to 255 in the dataset label_map', path)
            return
        self.issues.add(
            'label-range',
            f'label values {bad} >= num_classes={n} and not ignore_index='
            f'{self.ignore_index}: on GPU this is a device-side assert in '
            'the loss. Fix the labels, raise num_classes if these are '
            f'classes, or set ignore_index to the void value', path)

    def check_reduce_zero_label_unused(self, complete: bool) -> None:
        """Warn if ``reduce_zero_label=True`` leaves the last class empty.

        With ``reduce_zero_label=True`` raw value N is the last class. If
        no label holds N, the labels are probably 0-based: class 0 then
        trains as ignore and every other class one index too low. The
        warning needs the whole split, or a sample of at least
        :data:`MIN_SAMPLES_FOR_ABSENCE` labels that shows every value
        0..N-1: a small sample cannot show that a value is absent.

        Args:
            complete (bool): Whether every sample was checked.
        """
        n = self.num_classes
        if (not self.reduce_zero_label or not self.raw_values
                or n in self.raw_values):
            return
        real = sorted(self.raw_values - {255, self.ignore_index})
        if not complete and (self.num_decoded_labels < MIN_SAMPLES_FOR_ABSENCE
                             or real != list(range(n))):
            return
        seen = ('no label holds' if complete else
                f'none of the {self.num_decoded_labels} labels checked '
                'holds')
        last = (f' {self.classes[n - 1]!r}'
                if len(self.classes) >= n else '')
        self.issues.add(
            'reduce-zero-label-unused',
            f'reduce_zero_label=True but {seen} {n} (the last class'
            f'{last} if classes are 1..{n}); values seen: {real}. If the '
            'labels are 0-based (0 is a class), set '
            f"{self._key('reduce_zero_label')}=False (for every split): "
            'with True, class 0 is ignored and every other class trains '
            'one index too low. If 0 means \'other\' and classes are '
            f'1..{n}, keep True: class {n - 1}{last} then has no pixels '
            'and is never learned; label it or drop it from the classes',
            severity='warning')

    def check_label_map_after_reduction(self) -> None:
        """A ``label_map`` key for a raw value that the reduction moved.

        ``LoadAnnotations`` applies ``reduce_zero_label`` first and
        ``label_map`` second. A map that names a raw void value (CamVid's
        ``{11: 255}``) then sees 11 only where the raw label was 12: raw 11
        trains as class 10 instead of being ignored, class 0 is ignored
        and every class shifts by one. That contradiction is an error
        with the first decoded label that holds the value.
        """
        if not self.reduce_zero_label or not self.label_map:
            return
        n = self.num_classes
        for old, new in sorted(self.label_map.items()):
            if old < n or old not in self.raw_values or (
                    old + 1) in self.raw_values:
                continue
            cls = (f' {self.classes[old - 1]!r}'
                   if 0 < old <= len(self.classes) else '')
            self.issues.add(
                'reduce-zero-label-label-map',
                f'reduce_zero_label=True and label_map maps {old} -> '
                f'{new}, but the labels hold raw value {old}: the '
                f'reduction runs first and turns it into class {old - 1}'
                f'{cls}, so the map never applies. If the labels are '
                f'0-based (0 is a class, {old} marks void; CamVid), set '
                f"{self._key('reduce_zero_label')}=False (for every "
                f"split). If 0 means 'other' and classes are 1..{n}, raw "
                f'{old} is class {old - 1}{cls}: remove {old} from the '
                'label_map (for a class subset: metainfo classes)',
                self.value_files.get(old))


def _split_dataset_cfg(cfg: Config, split: str) -> ConfigDict:
    key = f'{split}_dataloader'
    loader = cfg.get(key)
    if not loader or not loader.get('dataset'):
        defined = [s for s in SPLITS if cfg.get(f'{s}_dataloader')]
        raise DataCheckError(
            f'config has no {key}.dataset; choose a split the config '
            f'defines: {", ".join(defined)}')
    return loader['dataset']


def _empty_message(dataset, split: str) -> str:
    img_dir = dataset.data_prefix.get('img_path', '')
    ann_file = getattr(dataset, 'ann_file', '')
    where = (f'ann_file {osp.abspath(ann_file)} lists no images'
             if ann_file else
             f'no *{dataset.img_suffix} files under '
             f'{osp.abspath(img_dir)}')
    return (f'{split} dataset is empty: {where} (mmengine would stop at '
            "'need at least one array to concatenate' or, with "
            'serialize_data=False, wait forever in InfiniteSampler). Fix '
            f'{split}_dataloader.dataset.data_root / data_prefix.img_path / '
            'img_suffix')


def build_split_dataset(cfg: Config, split: str):
    """Build the dataset of one split, failing clearly if it cannot be.

    Args:
        cfg (Config): The full config.
        split (str): ``'train'``, ``'val'`` or ``'test'``.

    Returns:
        BaseDataset: The dataset, built with ``lazy_init=True`` (its file
        list is not loaded).
    """
    from mmpsp.registry import DATASETS
    ds_cfg = copy.deepcopy(_split_dataset_cfg(cfg, split))
    init_default_scope(cfg.get('default_scope', 'mmpsp'))
    for leaf in leaf_datasets(ds_cfg):
        # Only the file list is needed; a full init of an empty dataset
        # already fails, with an unhelpful message.
        leaf['lazy_init'] = True
        root = leaf.get('data_root') or ''
        img_dir = osp.join(root, (leaf.get('data_prefix') or {}).get(
            'img_path', ''))
        if not leaf.get('ann_file') and not osp.isdir(img_dir):
            raise DataCheckError(
                f'{split}_dataloader.dataset image folder {img_dir!r} does '
                f'not exist (resolved: {osp.abspath(img_dir)}); fix '
                'data_root or data_prefix.img_path')
    return DATASETS.build(ds_cfg)


def check_dataset(cfg: Config,
                  split: str = 'train',
                  max_samples: Optional[int] = None,
                  on_corrupt: str = 'stop',
                  time_budget: Optional[float] = None,
                  logger: Optional[MMLogger] = None) -> DataReport:
    """Check the files of one split of a config's dataset.

    Cheap checks cover every sample, always: config consistency, empty
    dataset, listed images that do not exist, images without labels,
    labels without images, and, from the file headers alone, image and
    label sizes and EXIF orientation (as the pipeline's
    ``LoadImageFromFile`` will apply it). The files of up to
    ``max_samples`` evenly spread samples are decoded and checked for
    corruption, channel count, bit depth, palette order, label values
    against ``num_classes``/``ignore_index``, and the signs of a
    ``reduce_zero_label`` mistake (a ``label_map`` key the reduction
    moves; no label holding the last class).

    Args:
        cfg (Config): The full config.
        split (str): ``'train'``, ``'val'`` or ``'test'``. Defaults to
            ``'train'``.
        max_samples (int, optional): Decode at most this many samples;
            ``None`` decodes all. Defaults to ``None``.
        on_corrupt (str): ``'stop'`` raises :class:`DataCheckError` at the
            first unreadable file; ``'skip'`` logs each one and goes on.
            Defaults to ``'stop'``.
        time_budget (float, optional): Stop decoding after this many
            seconds (the report says how many were checked). Defaults to
            ``None`` (no limit).
        logger (MMLogger, optional): Where skips and progress are logged.
            Defaults to the current logger.

    Returns:
        DataReport: Every issue found; the caller decides whether to fail.

    Raises:
        DataCheckError: The config or dataset cannot be checked at all
            (missing folder, empty dataset, ``on_corrupt='stop'`` hit).
    """
    if on_corrupt not in ON_CORRUPT:
        raise ValueError(f'on_corrupt={on_corrupt!r}; use one of '
                         f'{ON_CORRUPT}')
    if split not in SPLITS:
        raise ValueError(f'split={split!r}; use one of {SPLITS}')
    logger = logger or MMLogger.get_current_instance()
    check_data_roots(cfg, [split])
    num_classes = check_class_counts(cfg)
    check_ignore_index(cfg)
    ignore_index = head_ignore_index(cfg)
    dataset = build_split_dataset(cfg, split)
    report = DataReport(split)
    issues: List[Issue] = []
    start = time.monotonic()
    for leaf in leaf_datasets(dataset):
        ann_file = getattr(leaf, 'ann_file', '')
        if ann_file and not osp.isfile(ann_file):
            raise DataCheckError(
                f'{split}_dataloader.dataset.ann_file {ann_file!r} does not '
                f'exist (resolved: {osp.abspath(ann_file)}); fix ann_file '
                '(relative to data_root) or remove it to use every image')
        data_list = leaf.load_data_list()
        if not data_list:
            raise DataCheckError(_empty_message(leaf, split))
        n = num_classes or len(leaf.metainfo.get('classes', ()))
        checker = _DatasetChecker(leaf, split, n, ignore_index, on_corrupt,
                                  logger)
        checker.check_files_exist(data_list)
        checker.check_headers(data_list)
        checker.check_orphan_labels(data_list)
        checked = 0
        for idx in _sample_indices(len(data_list), max_samples):
            if (time_budget is not None
                    and time.monotonic() - start > time_budget):
                break
            checker.check_sample(data_list[idx])
            checked += 1
        checker.check_reduce_zero_label_unused(checked == len(data_list))
        checker.check_label_map_after_reduction()
        report.num_samples += len(data_list)
        report.num_checked += checked
        issues.extend(checker.issues.sorted())
    report.issues = ([i for i in issues if i.severity == 'error'] +
                     [i for i in issues if i.severity != 'error'])
    return report
