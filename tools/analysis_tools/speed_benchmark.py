"""Side-by-side speed and memory of mmpsp's PSPNet and mmseg's own.

Both models are built from the same mmpsp config (``--depth`` picks its
ADE20K R18/R50/R101-D8 config), mmseg's with ``type`` of the backbone and
both heads set to ``mmseg.ResNetV1c``, ``mmseg.PSPHead`` and
``mmseg.FCNHead`` (as ``--cfg-options`` of ``tools/reproduce_speed.sh``
do), with the same weights (mmseg's state dict copied into mmpsp's), and
measured in the same process on the same device, one setting at a time:
a training step through ``model.train_step`` (data preprocessor, forward,
losses, backward, optimizer step; inputs already on the device, so no data
loading), one model after the other so that each has the device's memory
to itself, then batch-1 inference through ``model.test_step``, the models
interleaved call by call.
"""
import glob
import json
import os.path as osp
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from memory_benchmark import CONFIG_ROOT, MMSEG_TYPES, build_segmentor
from mmengine.optim import OptimWrapper
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmpsp.engine.hooks.speed_levers_hook import apply_speed_levers
from mmpsp.engine.optim_wrappers.bf16_autocast_optim_wrapper import (
    BF16AutocastOptimWrapper,
)

# Settings both models run under. ``compile`` wraps the backbone and the
# heads in torch.compile and, for mmpsp's heads, the full-resolution loss too.
SETTINGS = {
    'fp32': dict(dtype=None, channels_last=False, compile=False),
    'fp32+cl': dict(dtype=None, channels_last=True, compile=False),
    'bf16': dict(dtype=torch.bfloat16, channels_last=False, compile=False),
    'bf16+cl': dict(dtype=torch.bfloat16, channels_last=True, compile=False),
    'bf16+cl+compile': dict(dtype=torch.bfloat16, channels_last=True,
                            compile=True),
}


@dataclass
class Measurement:
    """One model under one setting."""
    model: str
    setting: str
    train_img_s: float
    infer_fps: float
    peak_mem_gib: Optional[float]


# mmpsp's ADE20K config per backbone depth.
DEPTH_CONFIGS = {
    18: CONFIG_ROOT / 'pspnet' / 'pspnet_r18-d8_4xb4-80k_ade20k-512x512.py',
    50: CONFIG_ROOT / 'pspnet' / 'pspnet_r50-d8_ade20k.py',
    101: CONFIG_ROOT / 'pspnet' / 'pspnet_r101-d8_4xb4-80k_ade20k-512x512.py',
}


def build_pspnet_pair(config: str, num_classes: int,
                      size: int) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """mmseg's PSPNet and mmpsp's from one config, with the same weights.

    Args:
        config (str): An mmpsp PSPNet config.
        num_classes (int): Classes of both heads.
        size (int): Square crop the data preprocessors pad to.

    Returns:
        tuple[nn.Module, nn.Module]: ``(mmseg_model, mmpsp_model)``, the
        second loaded from the first's state dict with ``strict=True``.
    """
    options = {'model.decode_head.num_classes': num_classes,
               'model.auxiliary_head.num_classes': num_classes}
    reference = build_segmentor(config, {**options, **MMSEG_TYPES}, size)
    model = build_segmentor(config, options, size)
    model.load_state_dict(reference.state_dict(), strict=True)
    return reference, model


def make_batch(batch_size: int, size: int, num_classes: int,
               device: torch.device, seed: int = 0) -> dict:
    """Random uint8 images and labels (5 % ignored) as a data loader gives.

    Args:
        batch_size (int): Images in the batch.
        size (int): Square crop size.
        num_classes (int): Labels are drawn from ``[0, num_classes)``.
        device (torch.device): Where the tensors live.
        seed (int): Generator seed. Defaults to 0.

    Returns:
        dict: ``inputs`` (list of (3, size, size) uint8 tensors) and
        ``data_samples`` (list of SegDataSample with ``gt_sem_seg``).
    """
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch_size):
        image = torch.randint(0, 256, (3, size, size), generator=gen,
                              dtype=torch.uint8)
        label = torch.randint(0, num_classes, (1, size, size), generator=gen)
        label[torch.rand(label.shape, generator=gen) < 0.05] = 255
        sample = SegDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=label.to(device))
        inputs.append(image.to(device))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], steps: int, warmup: int,
           device: torch.device) -> float:
    """Mean seconds per call after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def prepare(model: torch.nn.Module, device: torch.device, channels_last: bool,
            compile: bool) -> torch.nn.Module:
    """Move a segmentor to ``device`` and apply the setting's levers."""
    return apply_speed_levers(model.to(device), channels_last, compile)


def _tensor_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's parameters, gradients and buffers."""
    tensors = list(model.parameters()) + list(model.buffers())
    tensors += [p.grad for p in model.parameters() if p.grad is not None]
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_training(model: torch.nn.Module,
                     setting: str,
                     batch_size: int,
                     size: int,
                     num_classes: int,
                     device: torch.device,
                     steps: int,
                     warmup: int,
                     others: Sequence[torch.nn.Module] = ()
                     ) -> Tuple[float, Optional[float]]:
    """Training img/s and peak memory of one model.

    Args:
        model (nn.Module): A segmentor with a data preprocessor, prepared
            by :func:`prepare`.
        setting (str): A key of :data:`SETTINGS`.
        batch_size (int): Training batch size.
        size (int): Square crop size.
        num_classes (int): Classes of the model's heads.
        device (torch.device): The device to run on.
        steps (int): Timed training steps.
        warmup (int): Untimed steps first.
        others (Sequence[nn.Module]): Models resident on the device
            meanwhile; their tensors are left out of the peak memory.
            Defaults to ().

    Returns:
        tuple: img/s, and peak GPU memory in GiB (None on CPU). The
        model's gradients are dropped afterwards.
    """
    opts = SETTINGS[setting]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                weight_decay=5e-4)
    if opts['dtype'] is None:
        wrapper = OptimWrapper(optimizer)
    else:
        # bfloat16 needs no loss scaling; this wrapper runs on CPU too.
        wrapper = BF16AutocastOptimWrapper(optimizer=optimizer)
    batch = make_batch(batch_size, size, num_classes, device)
    model.train()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step_s = _timed(lambda: model.train_step(batch, wrapper), steps, warmup,
                    device)
    peak = None
    if device.type == 'cuda':
        resident = sum(_tensor_bytes(m) for m in others)
        peak = (torch.cuda.max_memory_allocated(device) - resident) / 2**30
    model.zero_grad(set_to_none=True)
    return batch_size / step_s, peak


def measure_inference(models: Dict[str, torch.nn.Module], setting: str,
                      size: int, num_classes: int, device: torch.device,
                      steps: int, warmup: int) -> Dict[str, float]:
    """Batch-1 inference fps of several models, interleaved call by call.

    Each round times one ``test_step`` of every model in turn, and each
    model's figure is its median round. Drifts of the machine (clock,
    other load) then hit all models alike instead of whichever ran last.

    Args:
        models (dict[str, nn.Module]): Prepared segmentors by row label.
        setting (str): A key of :data:`SETTINGS`.
        size (int): Square image size.
        num_classes (int): Classes of the models' heads.
        device (torch.device): The device to run on.
        steps (int): Timed rounds.
        warmup (int): Untimed rounds first.

    Returns:
        dict[str, float]: fps by row label.
    """
    opts = SETTINGS[setting]
    one = make_batch(1, size, num_classes, device, seed=1)
    autocast = torch.autocast(device.type, dtype=opts['dtype'],
                              enabled=opts['dtype'] is not None)
    times: Dict[str, List[float]] = {name: [] for name in models}
    for model in models.values():
        model.eval()
    with torch.no_grad(), autocast:
        for round_ in range(warmup + steps):
            for name, model in models.items():
                _sync(device)
                start = time.perf_counter()
                model.test_step(one)
                _sync(device)
                if round_ >= warmup:
                    times[name].append(time.perf_counter() - start)
    return {name: 1.0 / statistics.median(t) for name, t in times.items()}


def format_table(rows: List[Measurement]) -> str:
    """Markdown table: one line per setting, mmseg and mmpsp side by side."""
    by_setting: Dict[str, Dict[str, Measurement]] = {}
    for row in rows:
        by_setting.setdefault(row.setting, {})[row.model] = row

    def mem(m: Optional[Measurement]) -> str:
        if m is None or m.peak_mem_gib is None:
            return 'n/a'
        return f'{m.peak_mem_gib:.1f}'

    lines = [
        '| setting | mmseg train img/s | mmpsp train img/s | ratio | '
        'mmseg mem GiB | mmpsp mem GiB | mmseg infer fps | mmpsp infer fps '
        '| ratio |', '|' + '---|' * 9
    ]
    for setting, pair in by_setting.items():
        ref, ours = pair.get('mmseg'), pair.get('mmpsp')

        def ratio(attr: str) -> str:
            if ref is None or ours is None:
                return 'n/a'
            return f'{getattr(ours, attr) / getattr(ref, attr):.2f}x'

        def fig(m: Optional[Measurement], attr: str) -> str:
            return 'n/a' if m is None else f'{getattr(m, attr):.2f}'

        lines.append(
            f'| {setting} | {fig(ref, "train_img_s")} | '
            f'{fig(ours, "train_img_s")} | {ratio("train_img_s")} | '
            f'{mem(ref)} | {mem(ours)} | {fig(ref, "infer_fps")} | '
            f'{fig(ours, "infer_fps")} | {ratio("infer_fps")} |')
    return '\n'.join(lines)


def run_benchmark(settings: List[str],
                  device: torch.device,
                  depth: int = 50,
                  num_classes: int = 150,
                  size: int = 512,
                  batch_size: int = 16,
                  steps: int = 20,
                  warmup: int = 3,
                  infer_steps: int = 20,
                  models: tuple = ('mmseg', 'mmpsp'),
                  log: Callable[[str], None] = print,
                  config: Optional[str] = None) -> List[Measurement]:
    """Measure both PSPNets under each setting, in this process.

    Each setting gets freshly built models holding the same weights
    (mmseg's initialization copied into mmpsp's), so no setting inherits
    another's compiled or converted state.

    Args:
        settings (list[str]): Keys of :data:`SETTINGS`.
        device (torch.device): Device to run on.
        depth (int): ResNetV1c depth (18, 50, 101). Defaults to 50.
        num_classes (int): Classes. Defaults to 150 (ADE20K).
        size (int): Square crop size. Defaults to 512.
        batch_size (int): Training batch size. Defaults to 16.
        steps (int): Timed training steps. Defaults to 20.
        warmup (int): Untimed steps before timing. Defaults to 3.
        infer_steps (int): Timed batch-1 inference calls. Defaults to 20.
        models (tuple[str]): Which of 'mmseg', 'mmpsp' to run.
        log (callable): Progress printer. Defaults to ``print``.
        config (str, optional): The mmpsp config both models are built
            from. Defaults to None (:data:`DEPTH_CONFIGS` of ``depth``).

    Returns:
        list[Measurement]: One per model and setting.
    """
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f'unknown setting(s) {unknown}; choose from '
                         f'{list(SETTINGS)}')
    if any(SETTINGS[s]['dtype'] is torch.bfloat16 for s in settings) and (
            device.type == 'cuda' and not torch.cuda.is_bf16_supported()):
        raise ValueError(f'{torch.cuda.get_device_name(device)} has no bf16; '
                         'run with --settings fp32')
    if config is None:
        if depth not in DEPTH_CONFIGS:
            raise ValueError(f'depth={depth!r} has no ADE20K config; use one '
                             f'of {sorted(DEPTH_CONFIGS)} or pass a config')
        config = str(DEPTH_CONFIGS[depth])
    rows = []
    for setting in settings:
        opts = SETTINGS[setting]
        pair = dict(zip(('mmseg', 'mmpsp'),
                        build_pspnet_pair(config, num_classes, size)))
        prepared, trained = {}, {}
        for name in models:
            log(f'[{setting}] {name} training ...')
            model = pair.pop(name)
            prepared[name] = prepare(model, device, opts['channels_last'],
                                     opts['compile'])
            others = [m for k, m in prepared.items() if k != name]
            trained[name] = measure_training(prepared[name], setting,
                                             batch_size, size, num_classes,
                                             device, steps, warmup, others)
            log(f'[{setting}] {name}: {trained[name][0]:.2f} img/s train')
        fps = measure_inference(prepared, setting, size, num_classes, device,
                                infer_steps, max(1, warmup // 2))
        for name in models:
            log(f'[{setting}] {name}: {fps[name]:.2f} fps inference')
            rows.append(Measurement(name, setting, trained[name][0],
                                    fps[name], trained[name][1]))
        del prepared
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return rows


def speedup_summary(rows: List[Measurement]) -> str:
    """mmpsp's best training throughput over mmseg's best, one line."""
    best = {}
    for row in rows:
        if row.model not in best or row.train_img_s > best[row.model][0]:
            best[row.model] = (row.train_img_s, row.setting)
    if len(best) < 2:
        return ''
    (ours, ours_s), (ref, ref_s) = best['mmpsp'], best['mmseg']
    return (f'best training throughput: mmpsp {ours:.2f} img/s ({ours_s}) '
            f'vs mmseg {ref:.2f} img/s ({ref_s}) = {ours / ref:.2f}x')


def measure_data_pipeline(config: str,
                          num_workers: int,
                          batches: int = 20,
                          warmup: int = 3,
                          cfg_options: Optional[dict] = None) -> dict:
    """Throughput of a config's training data loader alone.

    Builds ``train_dataloader`` exactly as the Runner does (same dataset,
    pipeline, sampler, batch size), with ``num_workers`` workers, and times
    ``batches`` batches after ``warmup`` (worker start-up excluded).

    Args:
        config (str): Config file.
        num_workers (int): Loader worker processes.
        batches (int): Timed batches. Defaults to 20.
        warmup (int): Untimed batches first. Defaults to 3.
        cfg_options (dict, optional): ``--cfg-options`` pairs, e.g. the
            dataset's ``data_root``. Defaults to None.

    Returns:
        dict: ``num_workers``, ``batch_size``, ``s_per_batch``, ``img_s``.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from mmpsp.apis.launch import load_config
    cfg = load_config(config, cfg_options)
    loader_cfg = cfg.train_dataloader
    loader_cfg.num_workers = num_workers
    loader_cfg.persistent_workers = num_workers > 0
    scope = cfg.get('default_scope', 'mmpsp')
    with DefaultScope.overwrite_default_scope(scope):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    batch_size = loader_cfg.batch_size
    batches_iter = iter(loader)
    try:
        for _ in range(warmup):
            next(batches_iter)
        start = time.perf_counter()
        for _ in range(batches):
            next(batches_iter)
    except StopIteration:
        # Only a finite sampler ends; mmseg's training configs use
        # InfiniteSampler.
        raise ValueError(
            f'{config}: train_dataloader ran out after fewer than '
            f'{warmup + batches} batches ({warmup} warm-up + {batches} '
            f'timed); lower --batches, use more data or an InfiniteSampler'
        ) from None
    seconds = (time.perf_counter() - start) / batches
    return dict(num_workers=num_workers, batch_size=batch_size,
                s_per_batch=seconds, img_s=batch_size / seconds)


def summarise_training_log(work_dir: str, skip_iters: int = 100) -> dict:
    """End-to-end iteration time and the last validation of a training run.

    Reads the ``vis_data/scalars.json`` that mmengine's LocalVisBackend
    writes under each run's timestamp folder (the newest one in
    ``work_dir``). Its training rows hold ``time`` and ``data_time``
    averaged over each logging interval, so a run's mean is everything a
    step costs: data loading, copy, forward, backward, optimizer step,
    logging and checkpoint hooks. Validation time is logged apart and is
    left out.

    Args:
        work_dir (str): The run's ``--work-dir``.
        skip_iters (int): Rows up to this iteration are warm-up (cuDNN
            autotuning, worker start, compilation) and left out. Defaults
            to 100.

    Returns:
        dict: ``log`` (the file read), ``iters`` (last logged iteration),
        ``s_per_iter`` (mean ``time``), ``data_s_per_iter`` (mean
        ``data_time``), ``timed_rows`` (rows averaged) and ``val`` (the
        last validation row's metrics, empty without one).
    """
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    if not logs:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir}; pass the '
            '--work-dir of a run that logged at least one interval (with '
            "mmpsp's default_runtime, vis_backends=[LocalVisBackend])")
    log = logs[-1]
    train, val = [], {}
    with open(log) as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{log}:{number} is not a JSON row ({e}); '
                                 'the run may still be writing it') from None
            if 'iter' in row and 'time' in row:
                train.append(row)
            elif 'mIoU' in row or 'aAcc' in row:
                val = {k: v for k, v in row.items()
                       if k not in ('step', 'time', 'data_time')}
    timed = [row for row in train if row['iter'] > skip_iters]
    if not timed:
        last = train[-1]['iter'] if train else 0
        raise ValueError(
            f'{log}: no training row after iteration {skip_iters} (last '
            f'logged: {last}); lower skip_iters or train longer')
    return dict(
        log=log,
        iters=train[-1]['iter'],
        s_per_iter=sum(r['time'] for r in timed) / len(timed),
        data_s_per_iter=sum(r['data_time'] for r in timed) / len(timed),
        timed_rows=len(timed),
        val=val)
