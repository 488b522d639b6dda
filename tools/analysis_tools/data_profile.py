"""Where a config's training data pipeline spends its time, per transform.

``speed_benchmark.measure_data_pipeline`` times the whole loader
(can it keep up with the model?); :func:`profile_train_pipeline` times each
transform of ``train_dataloader.dataset.pipeline`` in this process, and can
time the same pipeline with mmpsp's fast transforms swapped back for mmseg's
originals in the same run, checking on the way that both give equal outputs.
"""
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose
from mmengine.registry import DATASETS, DefaultScope
from mmengine.structures import BaseDataElement

from mmpsp.apis.launch import load_config
from mmpsp.datasets import to_mmseg_pipeline


@dataclass
class PipelineProfile:
    """Mean cost per image of each transform of a training pipeline.

    Attributes:
        names (list[str]): Transform ``type`` strings, in pipeline order.
        ms (list[float]): Mean milliseconds per image, same order.
        samples (int): Images timed (warm-up excluded).
        mmseg_names (list[str], optional): The same pipeline with mmpsp's
            fast transforms swapped for mmseg's originals; None unless
            compared.
        mmseg_ms (list[float], optional): Their mean milliseconds per
            image, timed in the same run on the same images.
        identical (int, optional): Timed images on which both pipelines,
            seeded alike, gave equal outputs.
    """
    names: List[str]
    ms: List[float]
    samples: int
    mmseg_names: Optional[List[str]] = None
    mmseg_ms: Optional[List[float]] = None
    identical: Optional[int] = None


def _dataset_pipelines(dataset: ConfigDict,
                       key: str) -> Iterator[Tuple[str, list]]:
    """``(dotted key, pipeline)`` of every dataset inside wrappers such as
    ``ConcatDataset`` (``datasets``) and ``RepeatDataset`` (``dataset``)."""
    if 'datasets' in dataset:
        for i, child in enumerate(dataset.datasets):
            yield from _dataset_pipelines(child, f'{key}.datasets.{i}')
    elif 'dataset' in dataset:
        yield from _dataset_pipelines(dataset.dataset, f'{key}.dataset')
    else:
        yield f'{key}.pipeline', dataset.pipeline


def _first_dataset(dataset: ConfigDict) -> ConfigDict:
    while 'datasets' in dataset or 'dataset' in dataset:
        dataset = (dataset.datasets[0]
                   if 'datasets' in dataset else dataset.dataset)
    return dataset


def mmseg_pipeline_options(config: str,
                           cfg_options: Optional[dict] = None) -> dict:
    """``--cfg-options`` that give a config mmseg's original transforms.

    Every training pipeline (wrapped datasets included) is replaced by
    :func:`mmpsp.datasets.to_mmseg_pipeline` of itself, so a loader
    benchmark can time the config as mmseg would run it.

    Args:
        config (str): Config file.
        cfg_options (dict, optional): Overrides to keep, e.g. the
            dataset's ``data_root``. Defaults to None.

    Returns:
        dict: ``cfg_options`` plus one ``...pipeline`` key per dataset.
    """
    cfg = load_config(config, cfg_options)
    options = dict(cfg_options or {})
    for key, pipeline in _dataset_pipelines(cfg.train_dataloader.dataset,
                                            'train_dataloader.dataset'):
        options[key] = to_mmseg_pipeline(pipeline)
    return options


@contextmanager
def _opencv_threads(cfg: Config) -> Iterator[None]:
    """OpenCV's thread count as the Runner sets it from ``env_cfg``."""
    threads = cfg.get('env_cfg', {}).get('mp_cfg', {}).get(
        'opencv_num_threads')
    before = cv2.getNumThreads()
    if threads is not None:
        cv2.setNumThreads(threads)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _same(a: Any, b: Any) -> bool:
    """Equal values, dtypes and structure, arrays compared element-wise."""
    if isinstance(a, BaseDataElement) and isinstance(b, BaseDataElement):
        return _same(a.to_dict(), b.to_dict())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and bool(a == b)


def profile_train_pipeline(config: str,
                           samples: int = 100,
                           warmup: int = 5,
                           cfg_options: Optional[dict] = None,
                           compare_mmseg: bool = False,
                           seed: int = 0) -> PipelineProfile:
    """Mean milliseconds per image of each training transform.

    Builds ``train_dataloader.dataset`` without its pipeline (the first
    dataset of a ``ConcatDataset``) and applies the transforms one at a
    time to images ``0, 1, ...`` (cycling), in this process, with OpenCV's
    thread count set as the Runner sets it. Before each image, ``random``
    and ``numpy.random`` are seeded with ``seed + index``.

    With ``compare_mmseg``, each image also goes through the pipeline with
    mmpsp's fast transforms swapped for mmseg's originals
    (:func:`mmpsp.datasets.to_mmseg_pipeline`), seeded alike; the two
    pipelines alternate which goes first, and their final outputs are
    compared.

    Args:
        config (str): Config file.
        samples (int): Timed images. Defaults to 100.
        warmup (int): Untimed images first. Defaults to 5.
        cfg_options (dict, optional): ``--cfg-options`` pairs, e.g. the
            dataset's ``data_root``. Defaults to None.
        compare_mmseg (bool): Also time mmseg's originals. Defaults to
            False.
        seed (int): Base seed. Defaults to 0.

    Returns:
        PipelineProfile: The figures.
    """
    if samples < 1:
        raise ValueError(f'samples={samples}; time at least 1 image')
    cfg = load_config(config, cfg_options)
    dataset_cfg = _first_dataset(cfg.train_dataloader.dataset)
    pipelines = {'mmpsp': dataset_cfg.pipeline}
    if compare_mmseg:
        pipelines['mmseg'] = to_mmseg_pipeline(dataset_cfg.pipeline)
    scope = cfg.get('default_scope', 'mmpsp')
    with DefaultScope.overwrite_default_scope(scope):
        dataset = DATASETS.build({**dataset_cfg, 'pipeline': []})
        transforms = {
            name: Compose(pipeline).transforms
            for name, pipeline in pipelines.items()
        }
    seconds = {name: np.zeros(len(t)) for name, t in transforms.items()}
    identical = 0
    with _opencv_threads(cfg):
        for index in range(warmup + samples):
            order = list(transforms)
            if index % 2:
                order.reverse()
            outputs: Dict[str, Any] = {}
            for name in order:
                results = dataset[index % len(dataset)]
                random.seed(seed + index)
                np.random.seed(seed + index)
                for step, transform in enumerate(transforms[name]):
                    start = time.perf_counter()
                    results = transform(results)
                    if index >= warmup:
                        seconds[name][step] += time.perf_counter() - start
                    if results is None:
                        raise ValueError(
                            f'{config}: {pipelines[name][step]["type"]} '
                            f'dropped image {index % len(dataset)}; the '
                            'profile needs pipelines that keep every image')
                outputs[name] = results
            if compare_mmseg and index >= warmup:
                identical += _same(outputs['mmpsp'], outputs['mmseg'])

    def per_image(name: str) -> List[float]:
        return [float(1000 * s / samples) for s in seconds[name]]

    profile = PipelineProfile(
        names=[t['type'] for t in pipelines['mmpsp']],
        ms=per_image('mmpsp'),
        samples=samples)
    if compare_mmseg:
        profile.mmseg_names = [t['type'] for t in pipelines['mmseg']]
        profile.mmseg_ms = per_image('mmseg')
        profile.identical = identical
    return profile


def format_profile(profile: PipelineProfile) -> str:
    """Markdown table: transform, ms/image, share of the total; with a
    comparison, mmseg's ms/image and mmseg / mmpsp per row."""
    total = sum(profile.ms)
    compare = profile.mmseg_ms is not None
    header = '| transform | ms/image | share |'
    if compare:
        header += " mmseg's transform ms/image | mmseg / mmpsp |"
    lines = [header, '|' + '---|' * header.count(' |')]

    def row(name: str, ms: float, ref: Optional[float]) -> str:
        line = f'| {name} | {ms:.2f} | {100 * ms / total:.0f}% |'
        if ref is not None:
            line += f' {ref:.2f} | {ref / ms:.2f}x |'
        return line

    for i, (name, ms) in enumerate(zip(profile.names, profile.ms)):
        ref = profile.mmseg_ms[i] if compare else None
        if compare and profile.mmseg_names[i] != name:
            name = f'{name} (vs {profile.mmseg_names[i]})'
        lines.append(row(name, ms, ref))
    lines.append(row('total', total, sum(profile.mmseg_ms)
                     if compare else None))
    if compare:
        lines.append(
            f'\noutputs equal to the mmseg pipeline\'s on '
            f'{profile.identical}/{profile.samples} images (same seeds)')
    return '\n'.join(lines)
