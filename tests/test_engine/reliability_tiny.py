"""Tiny data and configs for the reliability tests in this folder.

The CamVid config shrunk to seconds on CPU (R18 with 8 base channels, 48x48
crops, no loader workers), dumped as one standalone file, and a runner for
the real tools in a subprocess.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'configs' / 'pspnet_r18-d8_camvid-360x480.py'
TOOLS = REPO / 'tools'
IMG_H, IMG_W = 60, 80
CROP = 48


def write_camvid(root: Path, n_train: int = 4, n_val: int = 2) -> Path:
    """Tiny CamVid-layout data: bands of classes and a void (11) strip."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 255, (12, 3))
    for split, n in (('train', n_train), ('val', n_val)):
        (root / 'images' / split).mkdir(parents=True, exist_ok=True)
        (root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            label = np.full((IMG_H, IMG_W), 3, np.uint8)
            label[:IMG_H // 3] = 0
            label[IMG_H // 3:2 * IMG_H // 3] = 1
            label[rng.integers(0, IMG_H, 4)] = rng.integers(0, 11)
            label[:, :6] = 11
            noise = rng.normal(0, 12, (IMG_H, IMG_W, 3))
            image = np.clip(palette[label] + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / 'images' / split / f'f{i}.jpg'), image)
            cv2.imwrite(str(root / 'annotations' / split / f'f{i}.png'),
                        label)
    return root


def tiny_config(data_root: Path, work_dir: Path, max_iters: int = 2,
                interval: int = 2) -> Config:
    """The CamVid config shrunk to seconds on CPU."""
    cfg = Config.fromfile(str(CONFIG))
    scale = (IMG_W, IMG_H)
    train = cfg.train_dataloader
    train.batch_size = 2
    train.dataset.pipeline[2].scale = scale
    train.dataset.pipeline[3].crop_size = (CROP, CROP)
    cfg.model.data_preprocessor.size = (CROP, CROP)
    cfg.model.backbone.update(stem_channels=8, base_channels=8)
    cfg.model.decode_head.update(in_channels=64, channels=8)
    cfg.model.auxiliary_head.update(in_channels=32, channels=8)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler[0].end = max_iters
    cfg.default_hooks.checkpoint.interval = interval
    cfg.default_hooks.logger.interval = 1
    cfg.randomness = dict(seed=0)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = str(data_root)
        loader.num_workers = 0
        loader.persistent_workers = False
        if split != 'train':
            loader.dataset.pipeline[1].scale = scale
    cfg.work_dir = str(work_dir)
    return cfg


def tiny_config_file(path: Path, data_root: Path, work_dir: Path,
                     **kwargs) -> Path:
    """Dump :func:`tiny_config` as one standalone file at ``path``."""
    tiny_config(data_root, work_dir, **kwargs).dump(str(path))
    return path


def run_tool(args: Sequence, env: Optional[Dict[str, str]] = None,
             expect_rc: Optional[int] = 0,
             timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a tool from the repository root; check its exit status.

    ``expect_rc=None`` accepts any status. The returned process has
    ``out``: stdout and stderr together.
    """
    proc = subprocess.run(
        [str(a) for a in args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
                 **(env or {})))
    proc.out = proc.stdout + proc.stderr
    if expect_rc is not None:
        assert proc.returncode == expect_rc, proc.out[-4000:]
    return proc


def python_tool(name: str, *args) -> List[str]:
    """``python tools/<name> ARGS`` as a command line."""
    return [sys.executable, str(TOOLS / name), *[str(a) for a in args]]
