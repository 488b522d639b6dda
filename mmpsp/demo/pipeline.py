"""The scenes demo end to end: data, training, evaluation, report."""
import os
import os.path as osp
import time
from typing import Dict, Optional

import cv2
from mmengine.config import Config
from mmengine.logging import print_log

from mmpsp.apis.train import build_train_runner
from mmpsp.demo.scenes import CLASSES, PALETTE, generate_scenes_demo

from .report import (
    evaluate_segmentor,
    plot_curves,
    plot_predictions,
    read_scalars,
    write_results,
)

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def build_demo_config(config: str,
                      data_root: str,
                      work_dir: str,
                      iters: Optional[int] = None,
                      batch_size: Optional[int] = None,
                      seed: Optional[int] = None) -> Config:
    """Load a scenes-demo config and point it at a data and work folder.

    Args:
        config (str): Path of a config built on
            ``configs/_base_/datasets/scenes_demo.py``.
        data_root (str): Folder written by
            :func:`~mmpsp.datasets.generate_scenes_demo`.
        work_dir (str): Where logs and the checkpoint go.
        iters (int, optional): Training iterations; rescales the poly
            schedule, the validation interval (five validations per run) and
            the checkpoint interval (last iteration only). ``None`` keeps
            the config's. Defaults to ``None``.
        batch_size (int, optional): Training batch size (>= 2: BatchNorm
            after the 1x1 pooled PSP branch needs two values per channel).
            ``None`` keeps the config's. Defaults to ``None``.
        seed (int, optional): Training seed; ``None`` keeps the config's.
            Defaults to ``None``.

    Returns:
        Config: The adjusted config.
    """
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    # mmengine keeps one visualizer per name for the whole process: with the
    # config's fixed name a second model's curves would land in the first
    # one's log. Unnamed, the Runner names it after its own experiment.
    if cfg.get('visualizer'):
        cfg.visualizer.pop('name', None)
    for key in LOADERS:
        cfg[key].dataset.data_root = data_root
    if iters is not None:
        if iters < 1:
            raise ValueError(f'iters={iters}; train for at least 1 '
                             'iteration')
        cfg.train_cfg.max_iters = iters
        cfg.train_cfg.val_interval = max(1, iters // 5)
        cfg.default_hooks.checkpoint.interval = iters
        cfg.default_hooks.logger.interval = max(1, min(10, iters // 5))
        for scheduler in cfg.param_scheduler:
            scheduler.end = iters
    if batch_size is not None:
        if batch_size < 2:
            raise ValueError(
                f'batch_size={batch_size}; PSPNet trains with BatchNorm '
                'after the 1x1 pooled branch, which needs batch_size >= 2')
        cfg.train_dataloader.batch_size = batch_size
    if seed is not None:
        cfg.randomness = dict(seed=seed)
    return cfg


def train_and_evaluate(cfg: Config, keep: int = 0) -> Dict:
    """Train a config as ``tools/train.py`` does, then score it per class.

    Args:
        cfg (Config): A config from :func:`build_demo_config`.
        keep (int): Validation predictions to return for figures.
            Defaults to 0.

    Returns:
        dict: :func:`~mmpsp.demo.report.evaluate_segmentor` output plus
        ``curves`` (:func:`~mmpsp.demo.report.read_scalars`),
        ``checkpoint``, ``config`` (the dumped config) and ``train_s``.
    """
    runner = build_train_runner(cfg)
    start = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - start
    num_classes = len(runner.val_dataloader.dataset.metainfo['classes'])
    result = evaluate_segmentor(
        runner.model, runner.val_dataloader, num_classes, keep=keep)
    result.update(
        curves=read_scalars(
            osp.join(runner.log_dir, 'vis_data', 'scalars.json')),
        checkpoint=osp.join(cfg.work_dir,
                            f'iter_{cfg.train_cfg.max_iters}.pth'),
        config=osp.join(cfg.work_dir, osp.basename(cfg.filename)),
        train_s=round(train_s, 1))
    return result


def run_demo(out: str,
             configs: Dict[str, str],
             iters: Optional[int] = None,
             batch_size: Optional[int] = None,
             num_train: int = 320,
             num_val: int = 80,
             size: int = 128,
             seed: int = 0,
             num_figures: int = 6) -> Dict[str, Dict]:
    """Generate the scenes set, train every config on it and report.

    Writes into ``out``: ``data/`` (the generated set), one work folder per
    model (log, config, checkpoint), ``results.json`` and ``results.md``
    (per-class IoU of every model), ``curves.png`` (training loss and
    validation mIoU) and ``predictions.png`` (val images, ground truth and
    each model's prediction overlay).

    Args:
        out (str): Output folder.
        configs (dict[str, str]): Model name (a column of the table; its
            lower case names the work folder) to config path, trained in
            order.
        iters (int, optional): See :func:`build_demo_config`.
        batch_size (int, optional): See :func:`build_demo_config`.
        num_train (int): Generated training images. Defaults to 320.
        num_val (int): Generated validation images. Defaults to 80.
        size (int): Generated image size. Defaults to 128.
        seed (int): Seed of data and training. Defaults to 0.
        num_figures (int): Val images in ``predictions.png``. Defaults
            to 6.

    Returns:
        dict[str, dict]: Model name to :func:`train_and_evaluate` output.
    """
    data_root = osp.join(out, 'data')
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    generate_scenes_demo(data_root, num_train, num_val, size, seed)
    data_s = time.perf_counter() - start
    print_log(
        f'scenes demo: {num_train} train / {num_val} val images '
        f'({size}x{size}) written to {data_root} in {data_s:.1f} s',
        logger='current')
    results = {}
    for name, config in configs.items():
        print_log(f'scenes demo: training {name} ({config})',
                  logger='current')
        work_dir = osp.join(out, name.lower())
        cfg = build_demo_config(config, data_root, work_dir, iters,
                                batch_size, seed)
        results[name] = train_and_evaluate(cfg, keep=num_figures)

    run = dict(
        seed=seed,
        data=dict(num_train=num_train, num_val=num_val, size=size,
                  generate_s=round(data_s, 1)),
        models={
            name: dict(config=r['config'], checkpoint=r['checkpoint'],
                       train_s=r['train_s'])
            for name, r in results.items()
        })
    write_results(osp.join(out, 'results'), CLASSES, results, run)
    plot_curves({n: r['curves'] for n, r in results.items()},
                osp.join(out, 'curves.png'))
    first = next(iter(results.values()))
    images = [
        cv2.imread(s['img_path'])[..., ::-1] for s in first['samples']
    ]
    plot_predictions(images, [s['gt'] for s in first['samples']], {
        n: [s['pred'] for s in r['samples']]
        for n, r in results.items()
    }, CLASSES, PALETTE, osp.join(out, 'predictions.png'))
    return results
