"""Dataset configs on tiny datasets in each dataset's real on-disk layout,
and CamVid on the real data."""
import copy
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch
from data_factories import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmpsp.datasets import CamVidDataset
from mmpsp.registry import DATASETS, METRICS

DATASET_DIR = (REPO / 'configs' / '_base_' /
               'datasets')
H, W = 24, 32


def _write(root: Path, img: str, seg: str, values: List[int]) -> np.ndarray:
    """Write a random image and a label map of vertical bands of values."""
    rng = np.random.default_rng(len(img))
    (root / img).parent.mkdir(parents=True, exist_ok=True)
    (root / seg).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / img),
                rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    label = np.repeat(
        np.array(values, dtype=np.uint8), -(-W // len(values)))[:W]
    label = np.tile(label, (H, 1))
    cv2.imwrite(str(root / seg), label)
    return label


def _split_file(root: Path, path: str, ids: List[str]) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(''.join(f'{i}\n' for i in ids))


def _ade(root, values):
    return (_write(root, 'images/training/ADE_train_00000001.jpg',
                   'annotations/training/ADE_train_00000001.png', values),
            _write(root, 'images/validation/ADE_val_00000001.jpg',
                   'annotations/validation/ADE_val_00000001.png', values))


def _cityscapes(root, values):
    out = []
    for split, city in (('train', 'aachen'), ('val', 'frankfurt')):
        stem = f'{city}_000000_000019'
        out.append(_write(
            root, f'leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png',
            f'gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png',
            values))
    return tuple(out)


def _voc(root, values, aug=False):
    train = _write(root, 'JPEGImages/2007_000032.jpg',
                   'SegmentationClass/2007_000032.png', values)
    val = _write(root, 'JPEGImages/2007_000033.jpg',
                 'SegmentationClass/2007_000033.png', values)
    _split_file(root, 'ImageSets/Segmentation/train.txt', ['2007_000032'])
    _split_file(root, 'ImageSets/Segmentation/val.txt', ['2007_000033'])
    if aug:
        for i in ('2008_000002', '2008_000003'):
            _write(root, f'JPEGImages/{i}.jpg',
                   f'SegmentationClassAug/{i}.png', values)
        _split_file(root, 'ImageSets/Segmentation/aug.txt',
                    ['2008_000002', '2008_000003'])
    return train, val


def _context(root, values):
    out = []
    for split, i in (('train', '2008_000002'), ('val', '2008_000003')):
        out.append(_write(root, f'JPEGImages/{i}.jpg',
                          f'SegmentationClassContext/{i}.png', values))
        _split_file(root, f'ImageSets/SegmentationContext/{split}.txt', [i])
    return tuple(out)


def _coco(root, values, year_train, year_val):
    out = []
    for split in (year_train, year_val):
        stem = f'COCO_{split}_000000000077' if '2014' in split else (
            '000000000009')
        out.append(_write(root, f'images/{split}/{stem}.jpg',
                          f'annotations/{split}/{stem}_labelTrainIds.png',
                          values))
    return tuple(out)


def _camvid(root, values):
    return (_write(root, 'images/train/0001TP_006690.jpg',
                   'annotations/train/0001TP_006690.png', values),
            _write(root, 'images/val/0016E5_07959.jpg',
                   'annotations/val/0016E5_07959.png', values))


def _reduce_zero(x: np.ndarray) -> np.ndarray:
    out = x.astype(np.int64) - 1
    out[x == 0] = 255
    out[x == 255] = 255
    return out


def _identity(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64)


def _camvid_map(x: np.ndarray) -> np.ndarray:
    out = x.astype(np.int64)
    out[x == 11] = 255
    return out


# name -> (writer, raw label values, raw -> expected training labels)
CASES: Dict[str, Tuple[Callable, List[int], Callable]] = {
    'ade20k': (_ade, [0, 1, 75, 150], _reduce_zero),
    'ade20k_paper-473x473': (_ade, [0, 1, 150], _reduce_zero),
    'cityscapes': (_cityscapes, [0, 5, 18, 255], _identity),
    'cityscapes_769x769': (_cityscapes, [0, 18, 255], _identity),
    'cityscapes_paper-713x713': (_cityscapes, [0, 18, 255], _identity),
    'pascal_voc12': (_voc, [0, 7, 20, 255], _identity),
    'pascal_voc12_aug': (lambda r, v: _voc(r, v, aug=True), [0, 20, 255],
                         _identity),
    'pascal_voc12_aug_paper-473x473': (lambda r, v: _voc(r, v, aug=True),
                                       [0, 20, 255], _identity),
    'pascal_context': (_context, [0, 30, 59], _identity),
    'pascal_context_59': (_context, [0, 1, 59], _reduce_zero),
    'coco-stuff10k': (lambda r, v: _coco(r, v, 'train2014', 'test2014'),
                      [0, 1, 171], _reduce_zero),
    'coco-stuff164k': (lambda r, v: _coco(r, v, 'train2017', 'val2017'),
                       [0, 170, 255], _identity),
    'camvid': (_camvid, [0, 5, 10, 11], _camvid_map),
}


def _with_root(dataset: dict, root: Path) -> dict:
    dataset = copy.deepcopy(dataset)
    for ds in dataset.get('datasets', [dataset]):
        ds['data_root'] = str(root)
    return dataset


def _labels(sample: dict) -> np.ndarray:
    return sample['data_samples'].gt_sem_seg.data[0].numpy()


@pytest.mark.parametrize('name', sorted(CASES))
def test_dataset_config_pipelines(name, tmp_path):
    writer, values, expect = CASES[name]
    cfg = Config.fromfile(str(DATASET_DIR / f'{name}.py'))
    init_default_scope('mmpsp')
    train_raw, val_raw = writer(tmp_path, values)
    expected_values = set(np.unique(expect(train_raw)).tolist())

    val_set = DATASETS.build(_with_root(cfg.val_dataloader.dataset,
                                        tmp_path))
    assert len(val_set) == 1
    sample = val_set[0]
    # Labels load after Resize: original resolution, exact values.
    np.testing.assert_array_equal(_labels(sample), expect(val_raw))
    assert sample['inputs'].shape[0] == 3

    train_set = DATASETS.build(_with_root(cfg.train_dataloader.dataset,
                                          tmp_path))
    n_train = len(cfg.train_dataloader.dataset.get('datasets', [0]))
    assert len(train_set) == (3 if n_train == 2 else 1)
    crop_h, crop_w = cfg.crop_size
    for i in range(len(train_set)):
        sample = train_set[i]
        labels = _labels(sample)
        assert labels.shape == tuple(sample['inputs'].shape[1:])
        assert labels.shape[0] <= crop_h and labels.shape[1] <= crop_w
        # Rotation pads with 255, which is ignored, so it may appear too.
        assert set(np.unique(labels).tolist()) <= expected_values | {255}
        assert set(np.unique(labels).tolist()) & (expected_values - {255})


def test_camvid_tta_pipeline(tmp_path):
    cfg = Config.fromfile(str(DATASET_DIR / 'camvid.py'))
    init_default_scope('mmpsp')
    _camvid(tmp_path, [0, 11])
    dataset = _with_root(cfg.val_dataloader.dataset, tmp_path)
    dataset['pipeline'] = cfg.tta_pipeline
    sample = DATASETS.build(dataset)[0]
    # 6 scales x 2 flips.
    assert len(sample['inputs']) == 12
    heights = sorted({x.shape[1] for x in sample['inputs']})
    assert heights == [12, 18, 24, 30, 36, 42]
    flips = [s.flip for s in sample['data_samples']]
    assert flips.count(True) == 6


def test_camvid_metainfo_and_class_subset(tmp_path):
    _camvid(tmp_path, [0, 3, 8, 11])
    full = CamVidDataset(data_root=str(tmp_path),
                         data_prefix=dict(img_path='images/val',
                                          seg_map_path='annotations/val'))
    assert len(full.metainfo['classes']) == 11
    assert full.metainfo['palette'][3] == [128, 64, 128]  # road
    assert full.label_map == {11: 255}
    subset = CamVidDataset(
        data_root=str(tmp_path),
        metainfo=dict(classes=('road', 'car')),
        data_prefix=dict(img_path='images/val',
                         seg_map_path='annotations/val'))
    # Void stays ignored when a class subset renumbers the others.
    assert subset.label_map[11] == 255
    assert subset.label_map[3] == 0 and subset.label_map[8] == 1
    assert subset.label_map[0] == 255
    assert subset.metainfo['palette'] == [[128, 64, 128], [64, 0, 128]]


def test_camvid_real_data(camvid_root):
    cfg = Config.fromfile(str(DATASET_DIR / 'camvid.py'))
    init_default_scope('mmpsp')
    sizes = {}
    for split in ('train', 'val'):
        dataset = copy.deepcopy(cfg[f'{split}_dataloader'].dataset)
        dataset.update(data_root=str(camvid_root),
                       pipeline=[dict(type='LoadAnnotations')])
        sizes[split] = DATASETS.build(dataset)
    assert len(sizes['train']) == 367
    assert len(sizes['val']) == 101

    val = sizes['val']
    # First val annotation with void pixels, read raw from disk.
    for i in range(len(val)):
        info = val.get_data_info(i)
        raw = cv2.imread(info['seg_map_path'], cv2.IMREAD_UNCHANGED)
        if (raw == 11).any():
            break
    else:
        pytest.fail('no void pixel in CamVid val annotations')
    assert raw.max() <= 11
    gt = val[i]['gt_seg_map']
    assert gt.shape == (360, 480)
    assert set(np.unique(gt).tolist()) <= set(range(11)) | {255}
    np.testing.assert_array_equal(gt == 255, raw == 11)
    np.testing.assert_array_equal(gt[raw < 11], raw[raw < 11])

    # A prediction that is right on every labelled pixel and says "sky" on
    # void scores 100 mIoU only if the metric ignores void too.
    metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = val.metainfo
    pred = np.where(gt == 255, 0, gt)
    metric.process({}, [dict(
        pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
        gt_sem_seg=dict(data=torch.from_numpy(gt.astype(np.int64))[None]))])
    result = metric.compute_metrics(metric.results)
    assert result['mIoU'] == pytest.approx(100.0)
