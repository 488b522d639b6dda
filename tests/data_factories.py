"""Data factories and tool runners shared by several test modules.

Written once here; test modules import them from this module (never from
each other), and ``conftest.py`` serves the common ones as fixtures.

Two tiny datasets:

- :func:`write_camvid`: CamVid's layout and 12 label values (11 = void), for
  the real configs shrunk by :func:`tiny_options` / :func:`tiny_config_file`
  and run through ``tools/*.py`` with :func:`run_tool`;
- :func:`write_dataset`: a 5-class dataset (:data:`CLASSES`) in mmseg's
  ``BaseSegDataset`` layout, for the data checks, with :func:`dataset_cfg`.
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.config import Config, DictAction
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'pspnet' / 'pspnet_r18-d8_camvid-360x480.py'
TOOLS = REPO / 'tools'
IMG_H, IMG_W = 60, 80
CROP = 48
METRIC_LINE = re.compile(r'^aAcc: ([\d.]+) mIoU: ([\d.]+) mAcc: ([\d.]+)$',
                         re.M)


def write_camvid(root: Path, n_train: int = 4, n_val: int = 2) -> Path:
    """Write a tiny dataset in CamVid's layout: horizontal bands of classes
    (sky, building, road), a void (11) strip and random class rows."""
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


def tiny_options(data_root: Path,
                 max_iters: int = 2,
                 interval: int = 2,
                 image_scale: Sequence[int] = (IMG_W, IMG_H)) -> List[str]:
    """``--cfg-options`` that shrink the CamVid config to seconds on CPU."""
    scale = f'({image_scale[0]},{image_scale[1]})'
    options = [
        'train_dataloader.batch_size=2',
        f'train_dataloader.dataset.pipeline.2.scale={scale}',
        f'train_dataloader.dataset.pipeline.3.crop_size=({CROP},{CROP})',
        f'model.data_preprocessor.size=({CROP},{CROP})',
        'model.backbone.stem_channels=8', 'model.backbone.base_channels=8',
        'model.decode_head.in_channels=64', 'model.decode_head.channels=8',
        'model.auxiliary_head.in_channels=32',
        'model.auxiliary_head.channels=8',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={max_iters}',
        f'param_scheduler.0.end={max_iters}',
        f'default_hooks.checkpoint.interval={interval}',
        'default_hooks.logger.interval=1',
        'randomness.seed=0',
    ]
    for split in ('train', 'val', 'test'):
        options += [f'{split}_dataloader.dataset.data_root={data_root}',
                    f'{split}_dataloader.num_workers=0']
    for split in ('val', 'test'):
        options.append(f'{split}_dataloader.dataset.pipeline.1.scale={scale}')
    return options


def options_dict(options: Sequence[str]) -> Dict:
    """Parse ``key=value`` strings the way ``--cfg-options`` does."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def tiny_config_file(path: Path, data_root: Path, work_dir: Path,
                     custom_imports: Optional[List[str]] = None,
                     custom_hooks: Optional[List[dict]] = None,
                     **kwargs) -> Path:
    """Dump the shrunk CamVid config as one standalone file at ``path``."""
    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict(options_dict(tiny_options(data_root, **kwargs)))
    cfg.work_dir = str(work_dir)
    if custom_imports:
        cfg.custom_imports = dict(imports=custom_imports,
                                  allow_failed_imports=False)
    if custom_hooks:
        # After the config's own hooks (mmpsp.SpeedLeversHook).
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + custom_hooks
    cfg.dump(str(path))
    return path


def run_tool(args: Sequence[str],
             env: Optional[Dict[str, str]] = None,
             expect_rc: int = 0,
             timeout: int = 300) -> str:
    """Run a tool from the repository root; return stdout + stderr."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
                 **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == expect_rc, out[-4000:]
    return out


def metrics_of(output: str) -> List[float]:
    """The ``aAcc mIoU mAcc`` figures tools/test.py prints (last line)."""
    found = METRIC_LINE.findall(output)
    assert found, output[-3000:]
    return [float(v) for v in found[-1]]


def load_state(path: Path) -> Dict[str, torch.Tensor]:
    return torch.load(str(path), map_location='cpu')['state_dict']


# The 5-class dataset of the data-check tests.
CLASSES = ('sky', 'road', 'car', 'tree', 'person')
PALETTE = [[128, 128, 128], [128, 64, 128], [64, 0, 128], [128, 128, 0],
           [220, 20, 60]]
NUM = len(CLASSES)
H, W = 20, 24


def label_map(seed: int, low: int = 0, high: int = NUM) -> np.ndarray:
    """A (H, W) uint8 label map with every value in [low, high)."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(low, high, size=(H, W), dtype=np.uint8)
    lab.flat[:high - low] = np.arange(low, high)
    return lab


def write_dataset(root: Path, n: int = 4, split: str = 'train') -> Path:
    """Write ``n`` clean image/label pairs under ``root``."""
    img_dir = root / 'images' / split
    ann_dir = root / 'annotations' / split
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
        Image.fromarray(img).save(img_dir / f'f{i}.png')
        Image.fromarray(label_map(i)).save(ann_dir / f'f{i}.png')
    return root


def dataset_cfg(root: Path, split: str = 'train', **kwargs) -> dict:
    ds = dict(
        type='BaseSegDataset',
        data_root=str(root),
        data_prefix=dict(
            img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
        img_suffix='.png',
        seg_map_suffix='.png',
        metainfo=dict(classes=CLASSES, palette=PALETTE),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')
        ])
    ds.update(kwargs)
    return ds
