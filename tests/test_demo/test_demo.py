"""`tools/demo.py` end to end on a tiny budget, and the demo's helpers."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmpsp.demo import build_demo_config, read_scalars, results_table
from mmpsp.demo.scenes import CLASSES

ITERS = 2
MODELS = {'PSPNet': 'pspnet', 'FCN': 'fcn'}


@pytest.fixture(scope='module')
def demo_out(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    cmd = [
        sys.executable,
        str(repo_root / 'tools' / 'demo.py'), '--out',
        str(out), '--iters',
        str(ITERS), '--batch-size', '2', '--num-train', '4', '--num-val',
        '4', '--size', '48'
    ]
    proc = subprocess.run(
        cmd, cwd=str(repo_root), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


@pytest.mark.slow
def test_demo_writes_data_in_mmseg_layout(demo_out):
    out, _ = demo_out
    for folder in ('images', 'annotations'):
        for split in ('train', 'val'):
            assert len(os.listdir(out / 'data' / folder / split)) == 4


@pytest.mark.slow
def test_demo_tables_have_every_class_for_both_models(demo_out):
    out, stdout = demo_out
    with open(out / 'results.json') as f:
        results = json.load(f)
    assert results['classes'] == list(CLASSES)
    assert set(results['models']) == set(MODELS)
    for name, model in results['models'].items():
        assert list(model['per_class_IoU']) == list(CLASSES)
        ious = [v for v in model['per_class_IoU'].values() if v is not None]
        assert all(0 <= v <= 100 for v in ious)
        assert model['mIoU'] == pytest.approx(np.mean(ious), abs=0.01)
        run = results['run']['models'][name]
        assert os.path.isfile(run['checkpoint'])
        assert os.path.isfile(run['config'])
    rows = (out / 'results.md').read_text().splitlines()
    for cls in CLASSES:
        assert sum(r.startswith(f'| {cls} |') for r in rows) == 1
    assert 'PSPNet: mIoU' in stdout and 'FCN: mIoU' in stdout


@pytest.mark.slow
def test_demo_miou_matches_the_runner_validation(demo_out):
    """The table's mIoU is IoUMetric's, from the same last-iteration model."""
    out, _ = demo_out
    with open(out / 'results.json') as f:
        results = json.load(f)
    for name, folder in MODELS.items():
        log_dirs = [
            d for d in (out / folder).iterdir()
            if (d / 'vis_data' / 'scalars.json').is_file()
        ]
        assert len(log_dirs) == 1
        curves = read_scalars(str(log_dirs[0] / 'vis_data' / 'scalars.json'))
        assert curves['miou_iter'][-1] == ITERS
        assert len(curves['loss']) >= 1
        assert results['models'][name]['mIoU'] == pytest.approx(
            curves['miou'][-1], abs=0.011)


@pytest.mark.slow
@pytest.mark.parametrize('name', ['curves.png', 'predictions.png'])
def test_demo_figures_are_images(demo_out, name):
    out, _ = demo_out
    img = cv2.imread(str(out / name))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    # A blank canvas would be a single colour.
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20


def test_build_demo_config_rescales_the_schedule(repo_root, tmp_path):
    cfg = build_demo_config(
        str(repo_root / 'configs' / 'fcn' / 'fcn_r18-d8_scenes-demo.py'),
        str(tmp_path / 'data'),
        str(tmp_path / 'work'),
        iters=50,
        batch_size=4,
        seed=7)
    assert cfg.train_cfg.max_iters == 50
    assert cfg.train_cfg.val_interval == 10
    assert cfg.default_hooks.checkpoint.interval == 50
    assert [s.end for s in cfg.param_scheduler] == [50]
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.randomness.seed == 7
    assert cfg.model.decode_head.type == 'FCNHead'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].dataset.data_root == str(tmp_path / 'data')


@pytest.mark.parametrize('kwargs, word', [(dict(batch_size=1), 'batch_size'),
                                          (dict(iters=0), 'iters=0')])
def test_build_demo_config_rejects_bad_budget(repo_root, tmp_path, kwargs,
                                              word):
    with pytest.raises(ValueError, match=word):
        build_demo_config(
            str(repo_root / 'configs' / 'pspnet' /
                'pspnet_r18-d8_scenes-demo.py'),
            str(tmp_path), str(tmp_path), **kwargs)


def test_results_table_marks_absent_classes():
    result = dict(IoU=[50.0, None], mIoU=50.0, mAcc=60.0, aAcc=70.0)
    table = results_table(['a', 'b'], {'m': result})
    assert '| a | 50.00 |' in table and '| b | n/a |' in table
    assert '| **mIoU** | 50.00 |' in table
