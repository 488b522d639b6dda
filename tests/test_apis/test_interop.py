"""mmpsp's PSPHead and FCNHead inside other mmseg models: the reuse configs
(transformer and lightweight backbones, default_scope='mmseg') build, train
a step, and run under mmseg's own tools/train.py."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmpsp.engine.checks import load_checkpoint_checked
from mmpsp.models.decode_heads.fcn_head import FCNHead
from mmpsp.models.decode_heads.psp_head import PSPHead

REUSE_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'reuse'
REUSE_CONFIGS = sorted(REUSE_DIR.glob('*.py'))
# Small crops keep a training step on CPU within a second or two; the
# configs themselves train at 512x512.
CROP = (64, 64)


def test_reuse_configs_exist():
    backbones = {
        Config.fromfile(str(path)).model.backbone.type
        for path in REUSE_CONFIGS
    }
    assert {'MixVisionTransformer', 'MobileNetV2'} <= backbones


def _load(path: Path) -> Config:
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = CROP
    return cfg


def _batch(num_classes: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(
            torch.from_numpy(
                rng.integers(0, 256, (3, *CROP), dtype=np.uint8)))
        label = rng.integers(0, num_classes, CROP)
        label[:8] = 255
        sample = SegDataSample(
            metainfo=dict(img_shape=CROP, pad_shape=CROP, ori_shape=CROP))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label)[None])
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('path', REUSE_CONFIGS, ids=lambda p: p.stem)
def test_reuse_config_trains_a_step(path):
    cfg = _load(path)
    assert cfg.default_scope == 'mmseg'
    assert cfg.custom_imports == dict(
        imports=['mmpsp'], allow_failed_imports=False)
    init_default_scope(cfg.default_scope)
    # As mmengine's Runner does outside distributed training.
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    assert type(model.decode_head) is PSPHead
    assert type(model.auxiliary_head) is FCNHead
    assert 'ResNet' not in type(model.backbone).__name__
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    watched = {
        'backbone': next(model.backbone.parameters()),
        'bottleneck': model.decode_head.bottleneck.conv.weight,
        'ppm': model.decode_head.psp_modules[0][1].conv.weight,
        'aux': model.auxiliary_head.conv_seg.weight,
    }
    before = {k: v.detach().clone() for k, v in watched.items()}
    model.train()
    log_vars = model.train_step(
        _batch(model.decode_head.num_classes), optim_wrapper)
    for key in ('loss', 'decode.loss_ce', 'aux.loss_ce'):
        assert torch.isfinite(log_vars[key]), key
    assert log_vars['decode.loss_ce'] > 0
    for key, value in watched.items():
        assert not torch.equal(value, before[key]), f'{key} did not train'
    model.eval()
    with torch.no_grad():
        logits = model.encode_decode(
            torch.randn(1, 3, 48, 80), [dict(img_shape=(48, 80))])
    assert logits.shape == (1, 150, 48, 80)


def _write_ade20k(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ('training', 'validation'):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(root / 'images' / split / f'{i}.jpg'),
                        rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
            # ADE20K labels: 0 = other (ignored), 1..150 = classes.
            cv2.imwrite(str(root / 'annotations' / split / f'{i}.png'),
                        rng.integers(0, 151, (48, 64), dtype=np.uint8))


def _mmseg_script(name: str) -> Path:
    import mmseg
    return Path(mmseg.__file__).parent / '.mim' / 'tools' / name


@pytest.mark.slow
def test_mmseg_train_script_runs_reuse_config(tmp_path, repo_root):
    """mmseg's tools/train.py, unchanged: custom_imports imports mmpsp when
    the config is read, before mmseg.models is imported."""
    data = tmp_path / 'ade'
    _write_ade20k(data)
    config = repo_root / 'configs/reuse/pspnet_m-v2-d8_4xb4-160k_ade20k-' \
        '512x512.py'
    options = [
        f'{loader}.{key}' for loader in ('train_dataloader',
                                         'val_dataloader', 'test_dataloader')
        for key in (f'dataset.data_root={data}', 'num_workers=0',
                    'persistent_workers=False')
    ] + [
        'model.backbone.init_cfg=None', 'train_cfg.max_iters=1',
        'train_cfg.val_interval=1', 'train_dataloader.batch_size=2',
        f'model.data_preprocessor.size={CROP}',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        f'train_dataloader.dataset.pipeline.3.crop_size={CROP}',
        'val_dataloader.dataset.pipeline.1.scale=(64,48)'
    ]
    work_dir = tmp_path / 'work'
    run = subprocess.run(
        [sys.executable, str(_mmseg_script('train.py')), str(config),
         '--work-dir', str(work_dir), '--cfg-options', *options],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert 'Iter(val) [2/2]' in log and 'mIoU' in log
    checkpoint = work_dir / 'iter_1.pth'
    assert checkpoint.is_file()
    # The checkpoint mmseg's script wrote fits the model the config builds.
    cfg = _load(config)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    report = load_checkpoint_checked(model, str(checkpoint))
    assert report.complete
    assert len(report.dataset_meta['classes']) == 150

    # mmseg's tools/test.py evaluates that checkpoint with the same config.
    test_options = [o for o in options if o.startswith('test_dataloader')]
    run = subprocess.run(
        [sys.executable, str(_mmseg_script('test.py')), str(config),
         str(checkpoint), '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', 'model.backbone.init_cfg=None',
         'test_dataloader.dataset.pipeline.1.scale=(64,48)', *test_options],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert 'Iter(test) [2/2]' in log and 'mIoU' in log
    assert 'do not match exactly' not in log  # mmengine's partial-load note


@pytest.mark.slow
def test_mmseg_test_script_runs_mmpsp_config(tmp_path, repo_root):
    """mmseg's tools/test.py with a plain mmpsp config
    (``default_scope='mmpsp'``): mmengine imports mmpsp.registry when it
    switches to that scope."""
    data = tmp_path / 'ade'
    _write_ade20k(data)
    config = (repo_root / 'configs' / 'pspnet' /
              'pspnet_r18-d8_4xb4-80k_ade20k-512x512.py')
    cfg = _load(config)
    init_default_scope(cfg.default_scope)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    checkpoint = tmp_path / 'r18.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    run = subprocess.run(
        [sys.executable, str(_mmseg_script('test.py')), str(config),
         str(checkpoint), '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', 'model.backbone.init_cfg=None',
         f'test_dataloader.dataset.data_root={data}',
         'test_dataloader.num_workers=0',
         'test_dataloader.persistent_workers=False',
         'test_dataloader.dataset.pipeline.1.scale=(64,48)'],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert 'Iter(test) [2/2]' in log and 'mIoU' in log
    assert 'do not match exactly' not in log  # mmengine's partial-load note
