"""Scenes-demo: a synthetic scene-parsing set that only global context solves.

The scenes are built after the three failure modes of Figure 2 in
`PSPNet <https://arxiv.org/abs/1612.01105>`_, so that a pixel's local patch is
ambiguous and the class follows from the scene around it:

* mismatched relationship: ``car`` and ``boat`` are drawn by the same code
  with the same colours and shapes; a vehicle on the road is a car, the same
  vehicle on water is a boat.
* confusable categories: ``building`` and ``skyscraper`` share one facade
  texture and differ only in height (a skyscraper rises to the top of the
  frame); ``grass`` and ``field`` share one vegetation texture and differ
  only in extent (small lawns in streets vs the whole ground of a
  countryside view).
* inconspicuous classes: ``pillow`` is a small patch with the bed's own
  fabric, a shade lighter.

Scenes cycle street, harbour, countryside, bedroom, so any four consecutive
images hold every class. Every image is drawn from its own seeded generator
(``seed``, split, index): the files are identical for a seed on any machine
with the same numpy and OpenCV.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np
from mmseg.datasets import BaseSegDataset

from mmpsp.registry import DATASETS

CLASSES = ('sky', 'building', 'skyscraper', 'road', 'car', 'water', 'boat',
           'grass', 'field', 'bed', 'pillow', 'wall')
PALETTE = [[135, 206, 235], [128, 0, 0], [255, 128, 0], [128, 64, 128],
           [0, 0, 142], [0, 160, 160], [255, 0, 255], [0, 192, 0],
           [192, 192, 0], [150, 100, 50], [255, 255, 0], [120, 120, 120]]
(SKY, BUILDING, SKYSCRAPER, ROAD, CAR, WATER, BOAT, GRASS, FIELD, BED,
 PILLOW, WALL) = range(len(CLASSES))

SCENES = ('street', 'harbour', 'countryside', 'bedroom')
SPLITS = ('train', 'val')
# Written to scenes_demo.json so that a folder says which drawing code made
# it; bump it with any change that alters the pixels for a given seed.
GENERATOR_VERSION = 1
META_FILE = 'scenes_demo.json'

# Vehicles (cars and boats alike) and facades draw from shared colour lists:
# the colour must carry no class information.
VEHICLE_COLOURS = np.array([[200, 30, 30], [235, 235, 235], [230, 200, 40],
                            [30, 50, 130], [240, 130, 30], [40, 40, 40]],
                           dtype=np.float32)
FACADE_COLOURS = np.array([[150, 140, 130], [170, 120, 90], [110, 115, 125],
                           [190, 180, 160], [120, 90, 80]], dtype=np.float32)
BED_COLOURS = np.array([[180, 60, 60], [70, 110, 170], [200, 190, 150],
                        [110, 150, 90]], dtype=np.float32)


class _Canvas:
    """An RGB float image and its label map, painted back to front."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.yy, self.xx = np.mgrid[0:size, 0:size].astype(np.float32)
        self.img = np.zeros((size, size, 3), np.float32)
        self.label = np.zeros((size, size), np.uint8)

    def paint(self, mask: np.ndarray, texture: np.ndarray,
              label: int) -> None:
        self.img[mask] = texture[mask]
        self.label[mask] = label

    def rect(self, y0: float, y1: float, x0: float,
             x1: float) -> np.ndarray:
        return ((self.yy >= y0) & (self.yy < y1) & (self.xx >= x0) &
                (self.xx < x1))


def _noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    return rng.normal(0., sigma, (size, size, 3)).astype(np.float32)


def _flat(colour: np.ndarray, size: int) -> np.ndarray:
    return np.broadcast_to(colour, (size, size, 3)).astype(np.float32)


def _sky(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    top = np.array([110, 160, 225], np.float32) + rng.uniform(-15, 15, 3)
    low = np.array([200, 215, 235], np.float32) + rng.uniform(-15, 15, 3)
    t = (cv.yy / cv.size)[..., None]
    return top * (1 - t) + low * t + _noise(rng, cv.size, 3)


def _facade(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    colour = FACADE_COLOURS[rng.integers(len(FACADE_COLOURS))]
    period = max(4, cv.size // 24)
    windows = (((cv.xx + rng.integers(period)) % period < period / 2) &
               ((cv.yy + rng.integers(period)) % (period + 2) < period / 2))
    tex = _flat(colour, cv.size) * np.where(windows, 0.55, 1.)[..., None]
    return tex + _noise(rng, cv.size, 5)


def _road(cv: _Canvas, rng: np.random.Generator, y_lane: float) -> np.ndarray:
    tex = _flat(np.array([100, 105, 112]) + rng.uniform(-15, 15, 3), cv.size)
    dash = max(4, cv.size // 16)
    lane = (np.abs(cv.yy - y_lane) < max(1, cv.size // 96)) & (
        cv.xx % (2 * dash) < dash)
    tex = np.where(lane[..., None], np.float32(225), tex)
    return tex + _noise(rng, cv.size, 8)


def _water(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    tex = _flat(np.array([70, 105, 140]) + rng.uniform(-15, 15, 3), cv.size)
    scale = 128. / cv.size
    waves = 16 * np.sin(0.9 * scale * cv.yy +
                        2 * np.sin(0.15 * scale * cv.xx + rng.uniform(0, 6)))
    return tex + waves[..., None] + _noise(rng, cv.size, 4)


def _vegetation(cv: _Canvas, rng: np.random.Generator) -> np.ndarray:
    tex = _flat(np.array([75, 140, 55]) + rng.uniform(-15, 15, 3), cv.size)
    rows = 8 * np.sin(0.7 * 128. / cv.size * cv.yy + rng.uniform(0, 6))
    return tex + rows[..., None] + _noise(rng, cv.size, 12)


def _skyline(cv: _Canvas, rng: np.random.Generator, horizon: int) -> None:
    """Paint facades along the horizon, at least one short and one tall."""
    s = cv.size
    edges = [0]
    while edges[-1] < s:
        edges.append(edges[-1] + int(rng.integers(s * 0.12, s * 0.3)))
    n = len(edges) - 1
    tall = rng.random(n) < 0.4
    forced = rng.permutation(n)[:2]
    tall[forced[0]], tall[forced[1]] = True, False
    for i in range(n):
        if tall[i]:
            top = rng.uniform(0, 0.08 * s)
        else:
            top = rng.uniform(horizon - 0.3 * s, horizon - 0.12 * s)
        x0 = edges[i] + rng.integers(0, max(1, s // 32) + 1)
        cv.paint(
            cv.rect(top, horizon, x0, edges[i + 1]), _facade(cv, rng),
            SKYSCRAPER if tall[i] else BUILDING)


def _vehicles(cv: _Canvas, rng: np.random.Generator, horizon: int,
              label: int) -> None:
    """Paint 1-3 vehicles below the horizon; cars and boats look the same."""
    s = cv.size
    for _ in range(int(rng.integers(1, 4))):
        w = rng.uniform(0.16, 0.3) * s
        h = rng.uniform(0.08, 0.13) * s
        x0 = rng.uniform(0, s - w)
        y1 = rng.uniform(horizon + h + 2, s)
        colour = VEHICLE_COLOURS[rng.integers(len(VEHICLE_COLOURS))]
        body = _flat(colour, s) + _noise(rng, s, 4)
        hull = cv.rect(y1 - 0.55 * h, y1, x0, x0 + w)
        cx0 = x0 + rng.uniform(0.1, 0.4) * w
        cabin = cv.rect(y1 - h, y1 - 0.55 * h, cx0, cx0 + 0.5 * w)
        cv.paint(hull | cabin, body, label)
        glass = cv.rect(y1 - 0.9 * h, y1 - 0.65 * h, cx0 + 0.08 * w,
                        cx0 + 0.42 * w)
        cv.paint(glass, _flat(np.array([170, 200, 215]), s), label)


def _outdoor(cv: _Canvas, rng: np.random.Generator, scene: str) -> None:
    s = cv.size
    horizon = int(rng.uniform(0.45, 0.6) * s)
    cv.paint(np.ones((s, s), bool), _sky(cv, rng), SKY)
    if scene == 'countryside':
        horizon = int(rng.uniform(0.35, 0.55) * s)
        for _ in range(int(rng.integers(0, 3))):
            x0 = rng.uniform(0, 0.8 * s)
            top = rng.uniform(horizon - 0.15 * s, horizon - 0.08 * s)
            cv.paint(
                cv.rect(top, horizon, x0, x0 + rng.uniform(0.1, 0.2) * s),
                _facade(cv, rng), BUILDING)
        cv.paint(cv.yy >= horizon, _vegetation(cv, rng), FIELD)
        return
    _skyline(cv, rng, horizon)
    ground = cv.yy >= horizon
    if scene == 'street':
        y_lane = rng.uniform(horizon + 0.1 * s, s - 0.1 * s)
        cv.paint(ground, _road(cv, rng, y_lane), ROAD)
        grass = _vegetation(cv, rng)
        for _ in range(int(rng.integers(1, 3))):
            w = rng.uniform(0.12, 0.25) * s
            h = rng.uniform(0.06, 0.12) * s
            x0 = rng.uniform(0, s - w)
            y0 = rng.uniform(horizon, s - h)
            cv.paint(cv.rect(y0, y0 + h, x0, x0 + w), grass, GRASS)
        _vehicles(cv, rng, horizon, CAR)
    else:
        cv.paint(ground, _water(cv, rng), WATER)
        _vehicles(cv, rng, horizon, BOAT)


def _bedroom(cv: _Canvas, rng: np.random.Generator) -> None:
    s = cv.size
    wall = _flat(np.array([210, 195, 170]) + rng.uniform(-20, 20, 3), s)
    cv.paint(np.ones((s, s), bool), wall + _noise(rng, s, 3), WALL)
    x0 = rng.uniform(0.05, 0.25) * s
    x1 = min(s, x0 + rng.uniform(0.55, 0.85) * s)
    top = rng.uniform(0.4, 0.6) * s
    bottom = rng.uniform(0.85, 1.0) * s
    colour = BED_COLOURS[rng.integers(len(BED_COLOURS))]
    stripes = 10 * np.sin(0.8 * 128. / s * cv.xx)[..., None]
    fabric = _flat(colour, s) + stripes
    cv.paint(
        cv.rect(top, bottom, x0, x1), fabric + _noise(rng, s, 4), BED)
    # The pillow is the same fabric, 8 % lighter: inconspicuous by design.
    slots = int(rng.integers(1, 3))
    slot_w = (x1 - x0) / slots
    for i in range(slots):
        w = rng.uniform(0.15, 0.22) * s
        h = rng.uniform(0.07, 0.1) * s
        px = x0 + i * slot_w + rng.uniform(0, max(0., slot_w - w))
        py = top + rng.uniform(1, 0.05 * s)
        cv.paint(
            cv.rect(py, py + h, px, min(px + w, x1)),
            fabric * 1.08 + _noise(rng, s, 4), PILLOW)


def render_scene(rng: np.random.Generator, size: int,
                 scene: str) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one scene.

    Args:
        rng (np.random.Generator): Source of every random choice.
        size (int): Height and width in pixels (>= 32).
        scene (str): One of :data:`SCENES`.

    Returns:
        tuple[np.ndarray, np.ndarray]: The RGB image, ``(size, size, 3)``
        uint8, and the label map, ``(size, size)`` uint8 with values in
        ``[0, len(CLASSES))``.
    """
    if scene not in SCENES:
        raise ValueError(f'scene={scene!r} is unknown; use one of {SCENES}')
    cv = _Canvas(size)
    if scene == 'bedroom':
        _bedroom(cv, rng)
    else:
        _outdoor(cv, rng, scene)
    # Per-image exposure and tint: absolute colour must not name a class.
    gain = rng.uniform(0.85, 1.15)
    tint = rng.uniform(-12, 12, 3).astype(np.float32)
    img = cv.img * gain + tint + _noise(rng, size, 3)
    return np.clip(img, 0, 255).astype(np.uint8), cv.label


def _split_files(root: str, split: str) -> Tuple[str, str]:
    return (osp.join(root, 'images', split),
            osp.join(root, 'annotations', split))


def generate_scenes_demo(root: str,
                         num_train: int = 320,
                         num_val: int = 80,
                         size: int = 128,
                         seed: int = 0) -> Dict[str, List[str]]:
    """Write the scenes-demo set in mmseg's on-disk layout.

    ``root/images/{train,val}/NNNNN.png`` (RGB) and
    ``root/annotations/{train,val}/NNNNN.png`` (single-channel index PNGs,
    values ``0..11``), plus ``root/scenes_demo.json`` recording the
    arguments. PNGs in those folders that this call did not write are
    removed, so a smaller re-generation leaves no stale samples behind.

    Args:
        root (str): Output folder, created if missing.
        num_train (int): Training images. Defaults to 320.
        num_val (int): Validation images. Defaults to 80.
        size (int): Image height and width (>= 32). Defaults to 128.
        seed (int): Seed of the whole set. Defaults to 0.

    Returns:
        dict[str, list[str]]: Image stems written per split.
    """
    if size < 32:
        raise ValueError(f'size={size} is too small to draw the scenes; '
                         'use size >= 32')
    counts = dict(train=num_train, val=num_val)
    for split, n in counts.items():
        if n < 1:
            raise ValueError(f'num_{split}={n}; each split needs >= 1 image')
    stems = {}
    for split_id, split in enumerate(SPLITS):
        img_dir, ann_dir = _split_files(root, split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        stems[split] = []
        for i in range(counts[split]):
            rng = np.random.default_rng([seed, split_id, i])
            img, label = render_scene(rng, size, SCENES[i % len(SCENES)])
            stem = f'{i:05d}'
            cv2.imwrite(osp.join(img_dir, stem + '.png'), img[..., ::-1])
            cv2.imwrite(osp.join(ann_dir, stem + '.png'), label)
            stems[split].append(stem)
        keep = {s + '.png' for s in stems[split]}
        for folder in (img_dir, ann_dir):
            for name in os.listdir(folder):
                if name.endswith('.png') and name not in keep:
                    os.remove(osp.join(folder, name))
    with open(osp.join(root, META_FILE), 'w') as f:
        json.dump(
            dict(
                version=GENERATOR_VERSION,
                seed=seed,
                size=size,
                num_train=num_train,
                num_val=num_val,
                classes=list(CLASSES)),
            f,
            indent=2)
    return stems


@DATASETS.register_module()
class ScenesDemoDataset(BaseSegDataset):
    """The synthetic scenes-demo set written by :func:`generate_scenes_demo`.

    Images are ``images/{split}/*.png`` (RGB), annotations are index PNGs
    with the same stem in ``annotations/{split}/*.png``; every pixel carries
    one of the 12 classes below (no void).

    Args:
        img_suffix (str): Image file suffix. Defaults to ``'.png'``.
        seg_map_suffix (str): Annotation file suffix. Defaults to
            ``'.png'``.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`
            (``data_root``, ``data_prefix``, ``pipeline``, ...).
    """

    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)
