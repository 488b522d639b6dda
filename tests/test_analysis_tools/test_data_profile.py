"""Per-transform profile of a training pipeline, beside mmseg's originals."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from data_profile import (
    _same,
    format_profile,
    mmseg_pipeline_options,
    profile_train_pipeline,
)
from mmengine.config import Config
from mmseg.structures import SegDataSample

BENCHMARK = (Path(__file__).resolve().parents[2] / 'tools' /
             'analysis_tools' / 'benchmark.py')

CAMVID = 'configs/pspnet/pspnet_r18-d8_camvid-360x480.py'
CAMVID_TYPES = [
    'LoadImageFromFile', 'LoadAnnotations', 'RandomResize',
    'mmpsp.FastRandomCrop', 'RandomFlip', 'mmpsp.FastPhotoMetricDistortion',
    'PackSegInputs'
]


def test_profile_on_camvid_matches_mmseg(camvid_root, repo_root):
    profile = profile_train_pipeline(
        str(repo_root / CAMVID), samples=4, warmup=1,
        cfg_options={'train_dataloader.dataset.data_root': str(camvid_root)},
        compare_mmseg=True)
    assert profile.names == CAMVID_TYPES
    assert profile.mmseg_names[3] == 'RandomCrop'
    assert profile.mmseg_names[5] == 'PhotoMetricDistortion'
    assert profile.samples == 4
    assert all(ms > 0 for ms in profile.ms + profile.mmseg_ms)
    # Seeded alike, the whole pipeline gives the same tensors and labels.
    assert profile.identical == 4

    table = format_profile(profile).splitlines()
    rows = [line for line in table if line.startswith('| ')][1:]
    assert len(rows) == len(CAMVID_TYPES) + 1
    assert rows[3].startswith('| mmpsp.FastRandomCrop (vs RandomCrop) |')
    cells = rows[-1].strip('|').split('|')
    assert cells[0].strip() == 'total' and cells[2].strip() == '100%'
    assert float(cells[1]) == round(sum(profile.ms), 2)
    assert table[-1].endswith('on 4/4 images (same seeds)')


@pytest.mark.slow
def test_per_transform_tool_on_camvid(camvid_root, repo_root):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK), '--data',
         str(repo_root / CAMVID), '--per-transform', '--samples', '2',
         '--cfg-options',
         f'train_dataloader.dataset.data_root={camvid_root}'],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.strip('|').split('|') for line in proc.stdout.splitlines()
            if line.startswith('| ') and 'ms/image' not in line]
    assert [r[0].strip() for r in rows] == CAMVID_TYPES + ['total']
    assert all(float(r[1]) > 0 for r in rows)


@pytest.mark.slow
def test_loader_tool_compares_with_mmseg_on_camvid(camvid_root, repo_root):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK), '--data',
         str(repo_root / CAMVID), '--compare-mmseg', '--workers', '0',
         '--batches', '1', '--cfg-options',
         f'train_dataloader.dataset.data_root={camvid_root}'],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = [line for line in proc.stdout.splitlines()
           if line.startswith('| 0 |')]
    assert len(row) == 1
    cells = [float(x.strip().rstrip('x')) for x in row[0].strip('|')
             .split('|')]
    assert cells[:2] == [0, 8] and all(c > 0 for c in cells[2:])


def test_mmseg_options_swap_every_training_pipeline(repo_root):
    config = str(repo_root / 'configs' / 'pspnet' /
                 'pspnet_r50-d8_4xb4-30k_voc12aug-473x473_paper.py')
    options = mmseg_pipeline_options(config, {'train_cfg.max_iters': 10})
    assert options['train_cfg.max_iters'] == 10
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    datasets = cfg.train_dataloader.dataset.datasets
    assert len(datasets) == 2  # train + aug, both swapped
    for dataset in datasets:
        types = [t.type for t in dataset.pipeline]
        assert 'RandomCrop' in types
        assert not any('Fast' in t for t in types)
        assert dataset.pipeline[types.index('RandomCrop')].cat_max_ratio \
            == 0.75


def test_outputs_compared_by_value_and_dtype():
    sample = SegDataSample(metainfo=dict(flip=True))
    other = SegDataSample(metainfo=dict(flip=False))
    image = torch.zeros(3, 2, 2, dtype=torch.uint8)
    assert _same(dict(inputs=image, data_samples=sample),
                 dict(inputs=image.clone(), data_samples=sample.clone()))
    assert not _same(dict(inputs=image, data_samples=sample),
                     dict(inputs=image, data_samples=other))
    assert not _same(dict(inputs=image), dict(inputs=image + 1))
    assert not _same(np.zeros(2, np.uint8), np.zeros(2, np.int64))
