"""Tiny configs for the reliability tests in this folder.

The CamVid config shrunk to seconds on CPU (R18 with 8 base channels, 48x48
crops, no loader workers) as a Config to edit before dumping it, and a
runner for the real tools that returns the process whatever its exit
status. The data (:func:`write_camvid`) comes from ``tests/data_factories``.
"""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from data_factories import (
    CONFIG,
    CROP,
    IMG_H,
    IMG_W,
    REPO,
    TOOLS,
    write_camvid,
)
from mmengine.config import Config

__all__ = [
    'CONFIG', 'CROP', 'IMG_H', 'IMG_W', 'REPO', 'TOOLS', 'python_tool',
    'run_tool', 'tiny_config', 'tiny_config_file', 'write_camvid'
]


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
