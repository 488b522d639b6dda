"""Peak memory and time of a decode head's upsample + loss, three ways.

Forward and backward of the loss of low-resolution logits (N, C, h, w)
against labels (N, H, W) (one ``CrossEntropyLoss``, ignore label 255 on a
few rows, plus the accuracy), through:

- ``today``: ``head_loss.plain_losses`` (``F.interpolate`` once in fp32,
  then cross-entropy and argmax accuracy under autograd);
- ``chunked``: ``mmpsp.models.losses.chunked_upsample_cross_entropy``;
- ``mmseg``: mmseg's own ``BaseDecodeHead.loss_by_feat`` (of an mmseg
  ``FCNHead``) with ``SegDataSample`` labels.

Memory: each variant runs in a fresh subprocess (this script with
``--variant``), so no variant inherits another's allocator or page state.
Two figures are printed:

- ``alloc``: the peak of torch's CPU allocator over one call, from the
  profiler's memory events (``profile_memory=True``: +bytes per allocation,
  -bytes per free, summed in time order). It counts exactly the tensors
  the call allocates, unaffected by malloc's caching; this is the figure
  the targets refer to. It is taken on the second call, after a warm-up.
- ``rss``: ``getrusage(RUSAGE_SELF).ru_maxrss`` (the process's high-water
  resident set) after the first call, minus the resident set just before
  it (``/proc/self/statm``): what the operating system saw, allocator
  slack and library workspaces included.

Time: median of ``--repeats`` calls per variant in this process, the
variants interleaved call by call so that load from other processes hits
all of them alike; ratios are against ``today``. No profiler is active
while timing.

Example::

    python tools/analysis_tools/loss_memory.py --batch 4 --classes 150 \\
        --in-size 64 --out-size 512 --repeats 7
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable, Dict, List

import torch
from memory_benchmark import allocator_peak, rss_bytes

import mmpsp  # noqa: F401  (makes mmseg importable on mmcv-lite)
from mmpsp.models.losses import chunked_upsample_cross_entropy

__all__ = ['allocator_peak', 'make_inputs', 'make_step', 'measure_memory']

VARIANTS = ('today', 'chunked', 'mmseg')
IGNORE = 255


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--classes', type=int, default=150)
    parser.add_argument('--in-size', type=int, default=64,
                        help='side of the low-resolution logits')
    parser.add_argument('--out-size', type=int, default=512,
                        help='side of the labels')
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--budget-mb', type=float, default=None,
                        help='max_chunk_bytes of the chunked path in MiB '
                        '(default: its own default)')
    parser.add_argument('--align-corners', action='store_true')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=VARIANTS)
    parser.add_argument('--variant', choices=VARIANTS,
                        help=argparse.SUPPRESS)  # the memory subprocess
    return parser.parse_args()


def plain_losses() -> Callable:
    from mmpsp.models.losses.head_loss import plain_losses as today
    return today


def make_inputs(args: argparse.Namespace):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(args.batch, args.classes, args.in_size,
                         args.in_size, generator=gen).requires_grad_()
    label = torch.randint(0, args.classes,
                          (args.batch, args.out_size, args.out_size),
                          generator=gen)
    label[:, :args.out_size // 32] = IGNORE
    return logits, label


def make_step(variant: str, args: argparse.Namespace, logits: torch.Tensor,
              label: torch.Tensor) -> Callable[[], None]:
    """One forward + backward of ``variant``; gradients land in
    ``logits.grad`` (reset each call)."""
    if variant == 'today':
        losses = plain_losses()

        def step():
            logits.grad = None
            values, _ = losses(logits, label[:, None], args.align_corners,
                               IGNORE, (1.0, ), (False, ))
            sum(values).backward()

        return step
    if variant == 'chunked':
        extra = ({} if args.budget_mb is None else dict(
            max_chunk_bytes=int(args.budget_mb * 2**20)))

        def step():
            logits.grad = None
            values, _ = chunked_upsample_cross_entropy(
                logits, label, args.align_corners, IGNORE, **extra)
            sum(values).backward()

        return step
    from mmengine.structures import PixelData
    from mmseg.models.decode_heads import FCNHead
    from mmseg.structures import SegDataSample
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        head = FCNHead(
            in_channels=8, channels=8, num_convs=0, concat_input=False,
            num_classes=args.classes, align_corners=args.align_corners,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0))
    samples = []
    for i in range(args.batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[i][None])
        samples.append(sample)

    def step():
        logits.grad = None
        losses = head.loss_by_feat(logits, samples)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()

    return step


def measure_memory(args: argparse.Namespace) -> Dict[str, int]:
    """In this (fresh) process: RSS growth of the first call, allocator
    peak of the second."""
    logits, label = make_inputs(args)
    step = make_step(args.variant, args, logits, label)
    before = rss_bytes()
    step()
    # ru_maxrss is in KiB on Linux.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return dict(alloc=allocator_peak(step), rss=max(rss, 0))


def memory_in_subprocess(variant: str, argv: List[str]) -> Dict[str, int]:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *argv, '--variant',
         variant], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.variant is not None:
        print(json.dumps(measure_memory(args)))
        return
    argv = [a for a in sys.argv[1:]]
    memory = {v: memory_in_subprocess(v, argv) for v in args.variants}

    logits, label = make_inputs(args)
    steps = {v: make_step(v, args, logits, label) for v in args.variants}
    for step in steps.values():
        step()  # warm-up
    times: Dict[str, List[float]] = {v: [] for v in args.variants}
    for _ in range(args.repeats):
        for variant, step in steps.items():
            start = time.perf_counter()
            step()
            times[variant].append(time.perf_counter() - start)

    medians = {v: statistics.median(t) for v, t in times.items()}
    base = medians.get('today')
    print(f'N={args.batch} C={args.classes} {args.in_size}x{args.in_size} -> '
          f'{args.out_size}x{args.out_size}, forward + backward, '
          f'{torch.get_num_threads()} threads, median of {args.repeats}')
    print(f'{"variant":<8} {"alloc MB":>9} {"rss MB":>8} {"time s":>8} '
          f'{"vs today":>9}')
    for v in args.variants:
        ratio = f'{medians[v] / base:.2f}x' if base else '-'
        print(f'{v:<8} {memory[v]["alloc"] / 2**20:>9.1f} '
              f'{memory[v]["rss"] / 2**20:>8.1f} {medians[v]:>8.3f} '
              f'{ratio:>9}')
    if 'today' in memory and 'chunked' in memory:
        print(f'chunked / today: alloc '
              f'{memory["chunked"]["alloc"] / memory["today"]["alloc"]:.3f}, '
              f'time {medians["chunked"] / base:.2f}')


if __name__ == '__main__':
    main()
