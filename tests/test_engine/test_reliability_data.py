"""The data check catches what silently corrupts training.

- An EXIF-oriented training image: mmseg's cv2 loader turns it upright, the
  label PNG is read as stored.
- ``reduce_zero_label=True`` on labels where 0 is a class (CamVid, 0 = sky).
- A file listed by ``ann_file`` that is missing, or a size mismatch, in a
  sample the decoding pass never reads: the header pass covers every file.

Each case goes through tools/train.py (the check before training) or
tools/check_dataset.py, and asserts the message (file, setting, fix) and
that training wrote nothing.
"""
import copy
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image
from reliability_tiny import (
    IMG_H,
    IMG_W,
    python_tool,
    run_tool,
    tiny_config,
    write_camvid,
)

from mmpsp.engine.checks import check_dataset
from mmpsp.engine.checks.data_check import MIN_SAMPLES_FOR_ABSENCE
from mmpsp.registry import TRANSFORMS


def _orient(path: Path, orientation: int) -> None:
    """Re-save an image with an EXIF orientation tag, pixels unchanged."""
    with Image.open(path) as img:
        pixels = img.copy()
    exif = Image.Exif()
    exif[0x0112] = orientation
    pixels.save(path, exif=exif.tobytes(), quality=95)


def _train(cfg: Config, tmp: Path, *extra: str, expect_rc=None):
    path = tmp / 'cfg.py'
    cfg.dump(str(path))
    return run_tool(python_tool('train.py', path, *extra), expect_rc=expect_rc)


def _no_checkpoint(work: Path) -> bool:
    return not list(work.glob('*.pth')) if work.exists() else True


@pytest.fixture
def data(tmp_path) -> Path:
    return write_camvid(tmp_path / 'camvid')


def test_cv2_loader_applies_the_orientation(data):
    """The premise: mmseg's pipeline loads the image rotated, the label as
    stored."""
    image = data / 'images' / 'train' / 'f1.jpg'
    _orient(image, 6)
    init_default_scope('mmpsp')
    results = dict(img_path=str(image),
                   seg_map_path=str(data / 'annotations' / 'train' /
                                    'f1.png'),
                   reduce_zero_label=False, seg_fields=[])
    results = TRANSFORMS.build(dict(type='LoadImageFromFile'))(results)
    results = TRANSFORMS.build(dict(type='LoadAnnotations'))(results)
    assert results['img'].shape[:2] == (IMG_W, IMG_H)
    assert results['gt_seg_map'].shape == (IMG_H, IMG_W)


@pytest.mark.slow
def test_exif_rotated_image_stops_training(data, tmp_path):
    image = data / 'images' / 'train' / 'f1.jpg'
    _orient(image, 6)
    work = tmp_path / 'work'
    cfg = tiny_config(data, work)
    # Outside the decoded sample: the header pass still sees it.
    cfg.data_check = dict(max_samples=1)
    proc = _train(cfg, tmp_path)
    assert proc.returncode != 0
    out = proc.out
    assert 'images carry an EXIF orientation 6 (rotated 90 clockwise)' in out
    assert f'files: {image}' in out
    assert f'loads as ({IMG_H}, {IMG_W})' in out
    assert "color_type='color_ignore_orientation'" in out
    assert 'strip the tag' in out and 'rotate the label files' in out
    assert _no_checkpoint(work)


def _set_color_type(cfg: Config, color_type: str) -> None:
    for split in ('train', 'val', 'test'):
        pipeline = cfg[f'{split}_dataloader'].dataset.pipeline
        assert pipeline[0].type == 'LoadImageFromFile'
        pipeline[0].color_type = color_type


def test_exif_fix_and_upright_labels(data, tmp_path):
    image = data / 'images' / 'train' / 'f1.jpg'
    _orient(image, 6)
    cfg = tiny_config(data, tmp_path / 'work')
    # The fix the message gives clears it.
    fixed = copy.deepcopy(cfg)
    _set_color_type(fixed, 'color_ignore_orientation')
    assert check_dataset(fixed).issues == []
    # Labels drawn on the upright view fit what the loader gives: a
    # warning that says to keep the default.
    label = data / 'annotations' / 'train' / 'f1.png'
    Image.fromarray(np.rot90(np.array(Image.open(label)), -1)).save(label)
    report = check_dataset(cfg)
    assert report.errors == []
    assert [i.kind for i in report.warnings] == ['exif-upright']
    assert 'labels match the upright view' in report.warnings[0].message
    assert report.warnings[0].paths == [str(label)]
    # ... and the fix for the other reading would now break it.
    report = check_dataset(fixed)
    assert [i.kind for i in report.errors] == ['size']


def test_exif_flip_gives_both_readings(data, tmp_path):
    image = data / 'images' / 'train' / 'f2.jpg'
    _orient(image, 3)
    report = check_dataset(tiny_config(data, tmp_path / 'work'))
    assert [i.kind for i in report.errors] == ['exif-orientation']
    message = report.errors[0].message
    assert 'EXIF orientation 3 (rotated 180)' in message
    assert 'If the labels were drawn on the stored pixels' in message
    assert 'if they were drawn on the upright view' in message
    assert report.errors[0].paths == [str(image)]


@pytest.mark.slow
def test_reduce_zero_label_on_camvid_stops_training(data, tmp_path):
    work = tmp_path / 'work'
    cfg = tiny_config(data, work)
    proc = _train(cfg, tmp_path, '--cfg-options',
                  'train_dataloader.dataset.reduce_zero_label=True')
    assert proc.returncode != 0
    out = proc.out
    assert 'reduce_zero_label=True and label_map maps 11 -> 255' in out
    assert "turns it into class 10 'bicyclist'" in out
    # Both readings, each with its setting.
    assert 'If the labels are 0-based (0 is a class, 11 marks void; ' \
        'CamVid), set train_dataloader.dataset.reduce_zero_label=False' in out
    assert "If 0 means 'other' and classes are 1..11" in out
    assert f'files: {data}/annotations/train/f' in out
    assert _no_checkpoint(work)


def _zero_based(root: Path, n: int, classes: int) -> Config:
    """``n`` labels holding 0..classes-1 and 255, in a BaseSegDataset."""
    (root / 'img').mkdir(parents=True)
    (root / 'ann').mkdir()
    for i in range(n):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
            root / 'img' / f'{i}.png')
        label = np.full((8, 8), 255, np.uint8)
        label.flat[:classes] = np.arange(classes)
        Image.fromarray(label).save(root / 'ann' / f'{i}.png')
    names = tuple(f'c{i}' for i in range(classes))
    return Config(dict(
        default_scope='mmpsp',
        model=dict(decode_head=dict(num_classes=classes)),
        train_dataloader=dict(dataset=dict(
            type='BaseSegDataset', data_root=str(root),
            data_prefix=dict(img_path='img', seg_map_path='ann'),
            img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=True,
            metainfo=dict(classes=names), pipeline=[]))))


def test_reduce_zero_label_on_zero_based_labels_warns_from_a_sample(
        tmp_path):
    n = MIN_SAMPLES_FOR_ABSENCE + 8
    cfg = _zero_based(tmp_path / 'd', n, 5)
    report = check_dataset(cfg, max_samples=MIN_SAMPLES_FOR_ABSENCE)
    assert report.num_checked == MIN_SAMPLES_FOR_ABSENCE < n
    assert [i.kind for i in report.warnings] == ['reduce-zero-label-unused']
    message = report.warnings[0].message
    assert f'none of the {MIN_SAMPLES_FOR_ABSENCE} labels checked holds 5' \
        in message
    assert 'set train_dataloader.dataset.reduce_zero_label=False' in message
    assert "If 0 means 'other' and classes are 1..5, keep True: class 4 " \
        "'c4' then has no pixels" in message
    # A small sample proves nothing: no warning.
    report = check_dataset(cfg, max_samples=4)
    assert report.warnings == []


@pytest.mark.slow
def test_missing_listed_image_outside_the_sample(tmp_path):
    data = write_camvid(tmp_path / 'camvid', n_train=8)
    (data / 'train.txt').write_text(''.join(f'f{i}\n' for i in range(8)))
    missing = data / 'images' / 'train' / 'f5.jpg'
    missing.unlink()
    small = data / 'annotations' / 'train' / 'f6.png'
    Image.open(small).crop((0, 0, IMG_W - 4, IMG_H)).save(small)
    work = tmp_path / 'work'
    cfg = tiny_config(data, work)
    cfg.train_dataloader.dataset.ann_file = 'train.txt'
    cfg.data_check = dict(max_samples=2)  # decodes f0 and f7 only
    proc = _train(cfg, tmp_path)
    assert proc.returncode != 0
    out = proc.out
    assert 'listed images that do not exist' in out
    assert f'files: {missing}' in out
    assert 'remove them from the ann_file' in out
    assert f'image and label sizes differ (image ({IMG_W}, {IMG_H}), label ' \
        f'({IMG_W - 4}, {IMG_H}), as width x height)' in out
    assert str(small) in out
    assert _no_checkpoint(work)


@pytest.mark.slow
def test_check_dataset_tool_lists_orientation(data, tmp_path):
    image = data / 'images' / 'train' / 'f0.jpg'
    _orient(image, 8)
    path = tmp_path / 'cfg.py'
    tiny_config(data, tmp_path / 'work').dump(str(path))
    proc = run_tool(python_tool('check_dataset.py', path, '--max-samples',
                                '0'), expect_rc=1)
    assert 'EXIF orientation 8 (rotated 90 counter-clockwise)' in proc.out
    assert str(image) in proc.out
