"""Peak memory and time of the loss path and of a whole training step.

``benchmark.py --memory`` runs this. Every variant runs in a fresh process
of its own (this file with ``--worker``), so no variant inherits another's
allocator state, and the parent drives the workers step by step over a
pipe. The timed steps are interleaved across the workers (one step of each
in turn, one process computing at a time), so load from other processes on
the machine hits all variants alike.

Three parts:

- ``loss``: the upsample + cross-entropy + accuracy of one head, forward
  and backward, from low-resolution logits (N, C, size/8, size/8) to labels
  (N, size, size), through ``loss_by_feat`` of an ``FCNHead`` without
  convolutions: mmpsp's with ``chunked_loss=False`` (``lean``, the
  full-resolution path), mmpsp's default (``chunked``), and mmseg's own
  (``mmseg``). Figure: the memory the call allocates above its inputs.
- ``step``: a whole training step (``model.train_step``: data
  preprocessor, forward, losses, backward, SGD step with momentum) of the
  segmentor a config builds: mmpsp's config (``mmpsp``), the same with
  ``chunked_loss=False`` on every head (``mmpsp-lean``), and mmseg's
  PSPNet built from mmseg's own installed config (``mmseg``). Figure: all
  tensor memory at the peak (weights, buffers, SGD momentum, activations,
  gradients). The step part also searches the largest batch within a
  memory budget (:func:`largest_batch`).
- ``saved``: what autograd saves for backward in mmpsp's training forward,
  by module (:func:`saved_activations`): where a step's peak comes from.

Time: the median over the timed steps of each worker's wall seconds and of
its CPU seconds (user + system, all its threads). On a machine shared with
other jobs, a process with one thread (``--threads 1``) spends CPU seconds
on its own work only; with more, a thread may spin while it waits for a
descheduled sibling.

Memory is counted the same way for both parts:

- on CPU, by torch's allocator accounting: the profiler's memory events
  (``profile_memory=True``: +bytes per allocation, -bytes per free, summed
  in time order) over one step, plus, for ``step``, the bytes of the
  tensors resident when it starts. It counts exactly the tensors, whatever
  malloc caches or the process imported, and it is the quantity that
  ``torch.cuda.max_memory_allocated`` reports on a GPU, so CPU and GPU
  figures mean the same. The high-water resident set of each worker
  (``ru_maxrss``, minus the resident set after imports) is printed beside
  it: what the operating system saw, allocator slack and oneDNN workspaces
  included;
- on CUDA, by ``torch.cuda.max_memory_allocated`` over the step.
"""
import argparse
import ctypes
import json
import os
import platform
import resource
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

# mmpsp's configs: beside tools/ in a clone, under mmpsp/.mim in a wheel.
CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs'
DEFAULT_CONFIG = CONFIG_ROOT / 'pspnet' / 'pspnet_r50-d8_ade20k.py'
# mmseg's own backbone and heads in an mmpsp config, as
# tools/reproduce_speed.sh runs mmseg's model.
MMSEG_TYPES = {
    'model.backbone.type': 'mmseg.ResNetV1c',
    'model.decode_head.type': 'mmseg.PSPHead',
    'model.auxiliary_head.type': 'mmseg.FCNHead',
}
IGNORE = 255
LOSS_VARIANTS = ('lean', 'chunked', 'mmseg')
STEP_VARIANTS = ('mmpsp', 'mmpsp-lean', 'mmseg')
# Each head's chunked loss off, as ``tools/train.py --no-chunked-loss``.
LEAN_OPTIONS = {
    'model.decode_head.chunked_loss': False,
    'model.auxiliary_head.chunked_loss': False,
}
# PSPNet's pool-scale-1 branch normalises one value per channel and image:
# batch norm needs at least two images.
MIN_STEP_BATCH = 2


def mmseg_config(name: str = 'pspnet_r50-d8_4xb4-80k_ade20k-512x512.py'
                 ) -> str:
    """Path of a PSPNet config shipped with the installed mmseg.

    Args:
        name (str): File name under mmseg's ``configs/pspnet``.

    Returns:
        str: The path.
    """
    import importlib.util
    spec = importlib.util.find_spec('mmseg')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'mmseg is not installed; pip install "mmsegmentation==1.2.2"')
    path = os.path.join(list(spec.submodule_search_locations)[0], '.mim',
                        'configs', 'pspnet', name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"mmseg's config {path} is missing; reinstall mmseg with its "
            'configs (pip install --force-reinstall --no-deps '
            '"mmsegmentation==1.2.2") or pass --mmseg-config')
    return path


@dataclass
class Spec:
    """What one worker process builds and runs."""
    part: str  # 'loss' or 'step'
    variant: str
    batch: int
    size: int
    device: str = 'cpu'
    classes: int = 150  # loss part only; the step's come from its config
    config: Optional[str] = None
    cfg_options: Dict = field(default_factory=dict)
    setting: str = 'fp32'
    threads: Optional[int] = None
    # Budget probe: SGD momentum buffers exist before the one measured
    # step, as from the second step on.
    probe: bool = False


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def allocator_peak(step: Callable[[], None]) -> int:
    """Peak of torch's CPU allocator bytes above the start, over ``step``.

    The profiler's memory events record every CPU allocation (+bytes) and
    free (-bytes) of torch's allocator; their running sum in time order is
    the live tensor memory allocated during ``step``.
    """
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        step()
    events = [
        e for e in p.profiler.kineto_results.events() if e.name() == '[memory]'
    ]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def tensor_bytes(tensors: Sequence[Optional[torch.Tensor]]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (None skipped)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None or not isinstance(t, torch.Tensor):
            continue
        storage = t.untyped_storage()
        if storage.data_ptr() in seen:
            continue
        seen.add(storage.data_ptr())
        total += storage.nbytes()
    return total


def build_segmentor(config: str, cfg_options: Optional[Dict],
                    size: int) -> torch.nn.Module:
    """A config's segmentor as a one-process run builds it.

    SyncBN becomes BN (one process, as ``adapt_to_machine`` does) and the
    data preprocessor pads to ``size`` x ``size``. Weights keep PyTorch's
    initialisation (no checkpoint is read).
    """
    from mmengine.registry import DefaultScope

    from mmpsp.apis import load_config, revert_sync_bn_in_config
    from mmpsp.registry import MODELS
    cfg = load_config(config, cfg_options)
    revert_sync_bn_in_config(cfg, 'one benchmark process')
    cfg.model.data_preprocessor.size = (size, size)
    cfg.model.pop('pretrained', None)
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpsp')):
        return MODELS.build(cfg.model)


def _loss_step(spec: Spec, device: torch.device):
    """(step, resident tensors) of the loss path alone."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mmpsp.registry import MODELS
    head_cfg = dict(
        in_channels=8, channels=8, num_convs=0, concat_input=False,
        num_classes=spec.classes, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
    if spec.variant == 'mmseg':
        head_cfg['type'] = 'mmseg.FCNHead'
    else:
        head_cfg.update(type='mmpsp.FCNHead',
                        chunked_loss=spec.variant == 'chunked')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        head = MODELS.build(head_cfg).to(device)
    gen = torch.Generator().manual_seed(0)
    low = spec.size // 8
    logits = torch.randn(spec.batch, spec.classes, low, low,
                         generator=gen).to(device).requires_grad_()
    label = torch.randint(0, spec.classes, (spec.batch, spec.size, spec.size),
                          generator=gen)
    label[:, :spec.size // 32] = IGNORE
    samples = []
    for i in range(spec.batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[i][None].to(device))
        samples.append(sample)

    def step():
        losses = head.loss_by_feat(logits, samples)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        # Dropped here, not at the start of the next step, so that a
        # measured step starts from the inputs alone.
        logits.grad = None

    return step, lambda: [logits] + [s.gt_sem_seg.data for s in samples]


def _train_step(spec: Spec, device: torch.device):
    """(step, resident tensors) of one training step of a segmentor."""
    from mmengine.optim import OptimWrapper
    from speed_benchmark import SETTINGS, make_batch, prepare

    from mmpsp.engine.optim_wrappers.bf16_autocast_optim_wrapper import (
        BF16AutocastOptimWrapper,
    )
    opts = SETTINGS[spec.setting]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = build_segmentor(spec.config, spec.cfg_options, spec.size)
    model = prepare(model, device, opts['channels_last'], opts['compile'])
    num_classes = model.decode_head.num_classes
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                weight_decay=5e-4)
    if spec.probe:
        for p in model.parameters():
            if p.requires_grad:
                optimizer.state[p]['momentum_buffer'] = torch.zeros_like(p)
    wrapper = (OptimWrapper(optimizer) if opts['dtype'] is None else
               BF16AutocastOptimWrapper(optimizer=optimizer))
    batch = make_batch(spec.batch, spec.size, num_classes, device)
    model.train()

    def resident():
        tensors = list(model.parameters()) + list(model.buffers())
        tensors += [p.grad for p in model.parameters()]
        for state in optimizer.state.values():
            tensors += [v for v in state.values()
                        if isinstance(v, torch.Tensor)]
        tensors += batch['inputs']
        tensors += [s.gt_sem_seg.data for s in batch['data_samples']]
        return tensors

    return lambda: model.train_step(batch, wrapper), resident


def saved_activations(spec: Spec) -> List[Tuple[str, int]]:
    """Bytes that autograd saves for backward in one training forward, by
    module.

    Runs the segmentor's ``loss`` (forward and losses, no backward) under
    ``torch.autograd.graph.saved_tensors_hooks`` and adds up the distinct
    storages saved, parameters left out, by the innermost active module
    two levels below the segmentor (``backbone.layer3``,
    ``decode_head.bottleneck``, ...). What is saved outside every module's
    forward, the losses for instance, is listed as ``(outside modules)``.
    These tensors stay alive until the backward reaches them, so they are
    most of a step's peak.

    Args:
        spec (Spec): A ``step`` spec.

    Returns:
        list[tuple[str, int]]: ``(module, bytes)``, in forward order.
    """
    device = torch.device(spec.device)
    from speed_benchmark import make_batch
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = build_segmentor(spec.config, spec.cfg_options,
                                spec.size).to(device)
    model.train()
    batch = make_batch(spec.batch, spec.size, model.decode_head.num_classes,
                       device)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set = set()
    stack: List[str] = []
    totals: Dict[str, int] = {}
    hooks = []

    def enter(name: str) -> Callable:
        def hook(module, args) -> None:
            stack.append(name)
        return hook

    def leave(module, args, output) -> None:
        stack.pop()

    for name, module in model.named_modules():
        if name and name.count('.') <= 1:
            hooks.append(module.register_forward_pre_hook(enter(name)))
            hooks.append(module.register_forward_hook(leave))

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in params and key not in seen:
            seen.add(key)
            where = stack[-1] if stack else '(outside modules)'
            totals[where] = totals.get(where, 0) + storage.nbytes()
        return t

    data = model.data_preprocessor(batch, True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = model.loss(**data)
    del losses
    for hook in hooks:
        hook.remove()
    return list(totals.items())


def _release_free_memory(device: torch.device) -> None:
    """Hand memory that a step freed back to the system or the GPU, so that
    idle workers do not crowd the one that runs: glibc's malloc keeps freed
    heap pages, torch's CUDA allocator keeps freed blocks."""
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        return
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(spec: Spec) -> None:
    """Build ``spec`` and answer commands from stdin, one JSON line each.

    Commands: ``warmup`` and ``time`` (seconds of one step), ``profile``
    (peak bytes of one step, see the module docstring), ``rss`` (the
    process's high-water resident set above the resident set after
    imports), ``quit``.
    """
    if spec.threads is not None:
        torch.set_num_threads(spec.threads)
    device = torch.device(spec.device)
    if device.type == 'cuda':
        # As the model benchmark runs both models.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    base_rss = rss_bytes()
    make = _loss_step if spec.part == 'loss' else _train_step
    step, resident = make(spec, device)

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    def reply(**values):
        print('RESULT ' + json.dumps(values), flush=True)

    reply(ready=True)
    for line in sys.stdin:
        command = line.strip()
        try:
            if command in ('warmup', 'time'):
                sync()
                start, cpu = time.perf_counter(), _cpu_seconds()
                step()
                sync()
                reply(s=time.perf_counter() - start,
                      cpu_s=_cpu_seconds() - cpu)
            elif command == 'profile':
                reply(**_profile(spec, device, step, resident, sync))
            elif command == 'rss':
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                # ru_maxrss is in KiB on Linux.
                reply(rss=max(peak * 1024 - base_rss, 0))
            elif command == 'quit':
                return
            else:
                reply(error=f'unknown command {command!r}')
        except torch.cuda.OutOfMemoryError:
            reply(oom=True)
        _release_free_memory(device)


def _profile(spec: Spec, device: torch.device, step: Callable[[], None],
             resident: Callable[[], list], sync: Callable[[], None]) -> dict:
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        sync()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync()
        peak = torch.cuda.max_memory_allocated(device)
        return dict(peak=peak - before if spec.part == 'loss' else peak)
    held = 0 if spec.part == 'loss' else tensor_bytes(resident())
    return dict(peak=held + allocator_peak(step))


class Worker:
    """A fresh process running :func:`worker` for one :class:`Spec`."""

    def __init__(self, spec: Spec, timeout_s: float) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self._stderr = tempfile.TemporaryFile(mode='w+')
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--worker',
             json.dumps(asdict(spec))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._proc.stdout, selectors.EVENT_READ)
        self._read()  # built

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(timeout=left):
                self.close()
                raise TimeoutError(
                    f'{self.spec.part} {self.spec.variant} (batch '
                    f'{self.spec.batch}) gave no answer within '
                    f'{self.timeout_s:.0f} s; raise --step-timeout or lower '
                    '--size/--batch-size')
            line = self._proc.stdout.readline()
            if not line:
                self._proc.wait()
                self._stderr.seek(0)
                tail = self._stderr.read()[-3000:]
                raise RuntimeError(
                    f'the {self.spec.part} {self.spec.variant} process '
                    f'(batch {self.spec.batch}) exited with code '
                    f'{self._proc.returncode}:\n{tail}')
            if line.startswith('RESULT '):
                values = json.loads(line[len('RESULT '):])
                if 'error' in values:
                    raise RuntimeError(values['error'])
                return values

    def ask(self, command: str) -> dict:
        self._proc.stdin.write(command + '\n')
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write('quit\n')
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._selector.close()
        self._stderr.close()


@dataclass
class Row:
    """One variant of one part."""
    part: str
    variant: str
    batch: int
    peak: Optional[int]  # bytes; None: out of memory
    rss: Optional[int]  # bytes, CPU only
    seconds: Optional[float]  # median step time
    # Median CPU seconds of the process per step (all its threads): on a
    # machine shared with other jobs less inflated by waiting than the
    # wall time.
    cpu_seconds: Optional[float] = None
    all_seconds: List[float] = field(default_factory=list)


def measure(specs: Sequence[Spec], repeats: int, timeout_s: float,
            log: Callable[[str], None] = print) -> List[Row]:
    """Peak memory and median step time of each spec, side by side.

    Each spec gets a fresh worker: one warm-up step, one measured step
    (memory), then ``repeats`` timed steps, the workers taking turns step
    by step.
    """
    workers: Dict[str, Worker] = {}
    try:
        for spec in specs:
            log(f'[{spec.part}] {spec.variant}: building (batch '
                f'{spec.batch})')
            workers[spec.variant] = Worker(spec, timeout_s)
        peaks, rss = {}, {}
        for name, w in workers.items():
            w.ask('warmup')
            answer = w.ask('profile')
            peaks[name] = None if answer.get('oom') else answer['peak']
            rss[name] = (w.ask('rss')['rss']
                         if w.spec.device == 'cpu' else None)
            log(f'[{w.spec.part}] {name}: peak '
                f'{_fmt_bytes(peaks[name])}')
        times: Dict[str, List[float]] = {name: [] for name in workers}
        cpu: Dict[str, List[float]] = {name: [] for name in workers}
        for round_ in range(repeats):
            for name, w in workers.items():
                if peaks[name] is None:
                    continue
                answer = w.ask('time')
                times[name].append(answer['s'])
                cpu[name].append(answer['cpu_s'])
            log(f'timed round {round_ + 1}/{repeats}: ' + ', '.join(
                f'{n} {t[-1]:.2f} s' for n, t in times.items() if t))
    finally:
        for w in workers.values():
            w.close()
    return [
        Row(w.spec.part, name, w.spec.batch, peaks[name], rss[name],
            statistics.median(times[name]) if times[name] else None,
            statistics.median(cpu[name]) if cpu[name] else None,
            times[name])
        for name, w in workers.items()
    ]


def probe_peak(spec: Spec, timeout_s: float) -> Optional[int]:
    """Peak bytes of one steady-state step of ``spec`` in a fresh process
    (None: out of device memory).

    On CUDA a warm-up step comes first (cuDNN's autotuning allocates
    workspaces that later steps do not); on CPU, where a step takes
    minutes, the SGD momentum buffers are allocated before the one
    measured step, so that it holds what every later step holds.
    """
    w = Worker(Spec(**{**asdict(spec), 'probe': True}), timeout_s)
    try:
        answer = {}
        if spec.device != 'cpu':
            answer = w.ask('warmup')
        if not answer.get('oom'):
            answer = w.ask('profile')
    finally:
        w.close()
    return None if answer.get('oom') else answer['peak']


def largest_batch(peak_of: Callable[[int], Optional[int]],
                  budget: int,
                  start: int = MIN_STEP_BATCH,
                  cap: int = 64,
                  known: Optional[Dict[int, Optional[int]]] = None,
                  skip_factor: float = 1.25
                  ) -> Tuple[Optional[int], Dict[int, Tuple[Optional[int],
                                                            str]]]:
    """The largest batch whose peak fits ``budget``: doubling, then
    bisection.

    Peak memory grows with the batch, so the search doubles from ``start``
    until a batch does not fit (or ``cap`` is reached), then bisects
    between the last batch that fits and the first that does not. A batch
    whose peak, extrapolated along the line through the two largest
    measured batches, exceeds ``skip_factor`` times the budget is counted
    as not fitting without being run (marked ``predicted``), so that the
    search never starts a step far beyond the budget.

    Args:
        peak_of (callable): Batch -> peak bytes, or None when it ran out of
            memory.
        budget (int): Bytes.
        start (int): First batch tried. Defaults to 2.
        cap (int): Largest batch tried. Defaults to 64.
        known (dict, optional): Batches already measured.
        skip_factor (float): See above. Defaults to 1.25.

    Returns:
        tuple: The largest batch that fits (None if not even ``start``),
        and every batch looked at: ``{batch: (peak, 'measured' |
        'predicted' | 'out of memory')}``.
    """
    seen: Dict[int, Tuple[Optional[int], str]] = {
        b: (p, 'measured' if p is not None else 'out of memory')
        for b, p in (known or {}).items()
    }

    def predicted(batch: int) -> Optional[float]:
        points = sorted((b, p) for b, (p, how) in seen.items()
                        if how == 'measured')
        if len(points) < 2:
            return None
        (b0, p0), (b1, p1) = points[-2:]
        return p1 + (p1 - p0) / (b1 - b0) * (batch - b1)

    def fits(batch: int) -> bool:
        if batch not in seen:
            guess = predicted(batch)
            if guess is not None and guess > skip_factor * budget:
                seen[batch] = (int(guess), 'predicted')
            else:
                peak = peak_of(batch)
                seen[batch] = (peak, 'measured' if peak is not None else
                               'out of memory')
        peak = seen[batch][0]
        return peak is not None and peak <= budget

    if not fits(start):
        return None, seen
    low, high = start, None
    while high is None and low < cap:
        nxt = min(2 * low, cap)
        if fits(nxt):
            low = nxt
        else:
            high = nxt
    if high is None:
        return low, seen
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low, seen


def _fmt_bytes(value: Optional[float], unit: str = 'MiB') -> str:
    if value is None:
        return 'OOM'
    scale = 2**30 if unit == 'GiB' else 2**20
    return f'{value / scale:.2f} {unit}' if unit == 'GiB' else \
        f'{value / scale:.1f} {unit}'


def cpu_description(cpuinfo: str = '/proc/cpuinfo') -> str:
    """The CPU a figure was measured on: model, cores and vector units.

    CPU times depend on the vector instructions torch uses (its CPU
    capability) and bfloat16 ones on native bf16 support, so every CPU
    figure comes with both.
    """
    from mmpsp.apis.run_options import NATIVE_BF16_FLAGS, read_cpuinfo

    model, flags = read_cpuinfo(cpuinfo)
    model = model or platform.processor() or 'unknown CPU'
    bf16 = sorted(flags.intersection(NATIVE_BF16_FLAGS))
    return (f'{model}, {os.cpu_count()} cores, torch CPU capability '
            f'{torch.backends.cpu.get_cpu_capability()}, native bf16: '
            f'{", ".join(bf16) if bf16 else "no"}')


def memory_method(device: str) -> str:
    if device == 'cpu':
        return ('peak = torch CPU allocator accounting (profiler memory '
                'events) over one step, plus the tensors resident at its '
                'start for the whole step; rss = high-water resident set of '
                'the variant\'s process above its resident set after imports '
                '(allocator slack and oneDNN workspaces included)')
    return 'peak = torch.cuda.max_memory_allocated over one step'


def format_rows(rows: List[Row], base: str, unit: str) -> str:
    """A markdown table with memory and time ratios against ``base``."""
    ref = next((r for r in rows if r.variant == base), None)
    lines = [f'| variant | batch | peak {unit} | rss {unit} | s/step | '
             f'cpu s/step | peak vs {base} | time vs {base} | '
             f'cpu time vs {base} |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        def ratio(attr: str) -> str:
            mine = getattr(r, attr)
            theirs = None if ref is None else getattr(ref, attr)
            if mine is None or not theirs:
                return 'n/a'
            return f'{mine / theirs:.3f}x' if attr == 'peak' else \
                f'{mine / theirs:.2f}x'

        def mem(v: Optional[int]) -> str:
            return 'n/a' if v is None else _fmt_bytes(v, unit).split()[0]

        def secs(v: Optional[float]) -> str:
            return 'n/a' if v is None else f'{v:.3f}'

        lines.append(f'| {r.variant} | {r.batch} | '
                     f'{mem(r.peak) if r.peak is not None else "OOM"} | '
                     f'{mem(r.rss)} | {secs(r.seconds)} | '
                     f'{secs(r.cpu_seconds)} | {ratio("peak")} | '
                     f'{ratio("seconds")} | {ratio("cpu_seconds")} |')
    return '\n'.join(lines)


def format_search(results: Dict[str, Tuple[Optional[int], dict]],
                  budget: int) -> str:
    lines = ['| variant | largest batch | batches looked at (peak GiB) |',
             '|---|---|---|']
    for variant, (best, seen) in results.items():
        looked = ', '.join(
            f'{b}: ' + ('OOM' if p is None else f'{p / 2**30:.2f}') +
            (' predicted' if how == 'predicted' else '')
            for b, (p, how) in sorted(seen.items()))
        lines.append(f'| {variant} | {"none" if best is None else best} | '
                     f'{looked} |')
    return '\n'.join(lines)


def _options_text(config: str, options: Dict) -> str:
    text = os.path.relpath(config) if os.path.isabs(config) else config
    if options:
        text += ' with ' + ' '.join(f'{k}={v}' for k, v in options.items())
    return text


def run_memory_benchmark(args: argparse.Namespace,
                         log: Callable[[str], None] = print) -> dict:
    """The memory mode of ``benchmark.py``: print and return its figures."""
    device = args.device
    threads = args.threads or torch.get_num_threads()
    report: dict = dict(device=device, threads=threads, loss=[], step=[],
                        search={})
    where = cpu_description() if device == 'cpu' else device
    header = (f'memory mode: {where}, torch {torch.__version__}, '
              f'{threads} threads; one fresh process per variant; timed '
              'steps interleaved across the variants, median of '
              f'{args.loss_repeats} (loss path) and {args.repeats} '
              '(training step); s/step = wall seconds, cpu s/step = the '
              "variant's process's CPU seconds (user + system, all threads)"
              '\n'
              f'{memory_method(device)}')
    print(header)
    if 'loss' in args.parts:
        specs = [Spec('loss', v, args.batch_size, args.size, device,
                      args.num_classes, threads=threads)
                 for v in args.loss_variants]
        rows = measure(specs, args.loss_repeats, args.step_timeout, log)
        report['loss'] = [asdict(r) for r in rows]
        low = args.size // 8
        print(f'\nloss path alone: N={args.batch_size} C={args.num_classes} '
              f'{low}x{low} -> {args.size}x{args.size}, forward + backward '
              '(peak above the inputs)')
        print(format_rows(rows, 'lean', 'MiB'))
    if 'step' in args.parts:
        config = args.config or str(DEFAULT_CONFIG)
        ours = {**(args.cfg_options or {}),
                **(args.mmpsp_cfg_options or {})}
        configs = {
            'mmpsp': (config, ours),
            'mmpsp-lean': (config, {**ours, **LEAN_OPTIONS}),
            'mmseg': (args.mmseg_config or mmseg_config(),
                      {**(args.cfg_options or {}),
                       **(args.mmseg_cfg_options or {})}),
        }
        specs = [Spec('step', v, args.batch_size, args.size, device,
                      config=configs[v][0], cfg_options=configs[v][1],
                      setting=args.setting, threads=threads)
                 for v in args.step_variants]
        rows = measure(specs, args.repeats, args.step_timeout, log)
        report['step'] = [asdict(r) for r in rows]
        print(f'\nwhole training step (forward, losses, backward, SGD '
              f'step), batch {args.batch_size}, {args.size}x{args.size}, '
              f'{args.setting}; mmpsp: {_options_text(*configs["mmpsp"])}; '
              f'mmseg: {_options_text(*configs["mmseg"])}')
        print(format_rows(rows, 'mmseg', 'GiB'))
        if args.budget_gb:
            budget = int(args.budget_gb * 2**30)
            for spec, row in zip(specs, rows):
                if spec.variant not in args.search_variants:
                    continue
                log(f'[search] {spec.variant}: batches within '
                    f'{args.budget_gb} GiB')

                def peak_of(batch: int, spec: Spec = spec) -> Optional[int]:
                    peak = probe_peak(Spec(**{**asdict(spec),
                                              'batch': batch}),
                                      args.step_timeout)
                    log(f'[search] {spec.variant} batch {batch}: '
                        f'{_fmt_bytes(peak, "GiB")}')
                    return peak

                report['search'][spec.variant] = largest_batch(
                    peak_of, budget, cap=args.max_batch,
                    known={row.batch: row.peak})
            print(f'\nlargest batch within {args.budget_gb} GiB (peak as '
                  'above, one fresh process per batch, SGD momentum '
                  f'present; doubling from {MIN_STEP_BATCH} then bisection, '
                  f'at most {args.max_batch})')
            print(format_search(report['search'], budget))
    if 'saved' in args.parts:
        config = args.config or str(DEFAULT_CONFIG)
        options = {**(args.cfg_options or {}),
                   **(args.mmpsp_cfg_options or {})}
        spec = Spec('step', 'mmpsp', args.batch_size, args.size, device,
                    config=config, cfg_options=options)
        saved = saved_activations(spec)
        _release_free_memory(torch.device(device))
        report['saved'] = saved
        total = sum(b for _, b in saved)
        print(f'\nsaved for backward by one training forward of mmpsp '
              f'({_options_text(config, options)}), batch '
              f'{args.batch_size}, {args.size}x{args.size}: '
              f'{total / 2**30:.2f} GiB (parameters excluded)')
        print('| module | saved MiB | share |\n|---|---|---|')
        for name, nbytes in saved:
            print(f'| {name} | {nbytes / 2**20:.1f} | '
                  f'{nbytes / total:.1%} |')
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--worker', required=True, help='a Spec as JSON')
    spec = Spec(**json.loads(parser.parse_args().worker))
    # The speed benchmark's helpers live next to this file.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import mmpsp  # noqa: F401  (makes mmseg importable on mmcv-lite)
    worker(spec)


if __name__ == '__main__':
    main()
