"""Benchmark mmpsp's PSPNet against mmseg's own, side by side in one run.

Examples (``B=tools/analysis_tools/benchmark.py``,
``CAMVID=configs/pspnet/pspnet_r18-d8_camvid-360x480.py``)::

    # GPU: R50-D8, 150 classes, 512x512, batch 16, every setting
    python $B --device cuda
    # a CPU smoke run at small size
    python $B --device cpu --depth 18 --size 64 \\
        --batch-size 2 --steps 2 --warmup 1 --settings fp32
    # the data pipeline of a config alone (can it keep up with the model?)
    python $B --data $CAMVID --workers 0 1 2 \\
        --cfg-options train_dataloader.dataset.data_root=...
    # where its time goes, per transform, beside mmseg's original transforms
    python $B --data $CAMVID --per-transform --compare-mmseg \\
        --cfg-options ...
    # end-to-end s/iter (data loading included) and val metrics of runs
    python $B --log work_dirs/run_a work_dirs/run_b
    # peak memory and time of the loss path and of a whole training step
    # (mmpsp's config next to mmseg's own), one process per variant, and
    # the largest batch within 8 GB
    python $B --memory --budget-gb 8
"""
import argparse
import json
import os

import torch
from data_profile import (
    format_profile,
    mmseg_pipeline_options,
    profile_train_pipeline,
)
from memory_benchmark import (
    LOSS_VARIANTS,
    STEP_VARIANTS,
    cpu_description,
    run_memory_benchmark,
)
from mmengine.config import DictAction
from speed_benchmark import (
    DEPTH_CONFIGS,
    SETTINGS,
    format_table,
    measure_data_pipeline,
    run_benchmark,
    speedup_summary,
    summarise_training_log,
)

import mmpsp  # noqa: F401  (makes mmseg importable on mmcv-lite)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--depth', type=int, default=50, choices=[18, 50, 101],
        help='picks mmpsp\'s ADE20K config of that depth; mmseg\'s model is '
        'the same config with mmseg\'s backbone and head types')
    parser.add_argument('--num-classes', type=int, default=150)
    parser.add_argument('--size', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=None,
                        help='training batch (default: 16, 4 with --memory)')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--infer-steps', type=int, default=20)
    parser.add_argument(
        '--settings', nargs='+', default=None, choices=list(SETTINGS),
        help='default: all on CUDA, fp32 on CPU')
    parser.add_argument('--models', nargs='+', default=['mmseg', 'mmpsp'],
                        choices=['mmseg', 'mmpsp'])
    parser.add_argument('--json', help='also write the rows to this file')
    parser.add_argument(
        '--data', metavar='CONFIG',
        help='measure this config\'s training data loader instead of the '
        'models')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2],
                        help='worker counts for --data')
    parser.add_argument('--batches', type=int, default=20,
                        help='timed batches for --data')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides for --data, and with '
                        '--memory for both models\' configs')
    parser.add_argument(
        '--per-transform', action='store_true',
        help='with --data: ms/image of each training transform, in this '
        'process, instead of the loader table')
    parser.add_argument('--samples', type=int, default=100,
                        help='timed images for --per-transform')
    parser.add_argument(
        '--compare-mmseg', action='store_true',
        help='with --data: also time the pipeline with mmpsp\'s Fast* '
        'transforms swapped back for mmseg\'s originals, in the same run')
    parser.add_argument(
        '--log', nargs='+', metavar='WORK_DIR',
        help='summarise these training runs instead: mean s/iter from '
        'their logs (data loading included) and the last val metrics; '
        'ratios are against the first')
    parser.add_argument('--skip-iters', type=int, default=100,
                        help='warm-up iterations left out with --log')
    memory = parser.add_argument_group(
        'memory mode', 'peak memory and time of the loss path and of a '
        'whole training step, one fresh process per variant')
    memory.add_argument('--memory', action='store_true',
                        help='run the memory mode')
    memory.add_argument(
        '--parts', nargs='+', default=['loss', 'step'],
        choices=['loss', 'step', 'saved'],
        help='saved: what autograd keeps for backward in mmpsp\'s training '
        'forward, by module')
    memory.add_argument('--loss-variants', nargs='+',
                        default=list(LOSS_VARIANTS), choices=LOSS_VARIANTS)
    memory.add_argument('--step-variants', nargs='+',
                        default=['mmpsp', 'mmseg'], choices=STEP_VARIANTS)
    memory.add_argument(
        '--config',
        help='mmpsp\'s config (memory mode default: '
        'configs/pspnet/pspnet_r50-d8_ade20k.py; model benchmark default: the '
        'ADE20K config of --depth)')
    memory.add_argument('--mmpsp-cfg-options', nargs='+', action=DictAction,
                        help='overrides for the mmpsp variants alone')
    memory.add_argument(
        '--mmseg-config',
        help='mmseg\'s config for the training step (default: '
        'pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py of the installed '
        'mmseg); or mmpsp\'s config with --mmseg-cfg-options naming '
        'mmseg\'s types')
    memory.add_argument('--mmseg-cfg-options', nargs='+', action=DictAction,
                        help='overrides for the mmseg variant alone')
    memory.add_argument('--setting', default='fp32', choices=list(SETTINGS),
                        help='the training step\'s setting')
    memory.add_argument(
        '--threads', type=int,
        help='torch threads of every variant\'s process (default: '
        'torch\'s). With 1 on a machine shared with other jobs, a '
        'process\'s CPU seconds are its work alone: no thread waits for a '
        'descheduled sibling')
    memory.add_argument('--repeats', type=int, default=3,
                        help='timed training steps per variant')
    memory.add_argument('--loss-repeats', type=int, default=7,
                        help='timed loss-path calls per variant')
    memory.add_argument(
        '--budget-gb', type=float,
        help='also search the largest training batch whose peak fits this '
        'many GiB')
    memory.add_argument('--search-variants', nargs='+',
                        default=['mmpsp', 'mmseg'], choices=STEP_VARIANTS,
                        help='step variants searched with --budget-gb')
    memory.add_argument('--max-batch', type=int, default=64,
                        help='largest batch the search tries')
    memory.add_argument('--step-timeout', type=float, default=3600,
                        help='seconds one step may take before the run '
                        'stops')
    args = parser.parse_args()
    for option in ('config', 'mmseg_config'):
        path = getattr(args, option)
        if path is not None and not os.path.isfile(path):
            parser.error(f'--{option.replace("_", "-")} {path}: no such file '
                         f'(resolved: {os.path.abspath(path)}); pass a config '
                         'file such as configs/pspnet/pspnet_r50-d8_ade20k.py')
    if args.batch_size is None:
        args.batch_size = 4 if args.memory else 16
    if (args.per_transform or args.compare_mmseg) and not args.data:
        parser.error('--per-transform and --compare-mmseg need --data CONFIG')
    return args


def benchmark_transforms(args: argparse.Namespace) -> None:
    print(f'training transforms of {args.data} ({args.samples} images after '
          '5 warm-up, one process)')
    print(format_profile(profile_train_pipeline(
        args.data, args.samples, cfg_options=args.cfg_options,
        compare_mmseg=args.compare_mmseg)))


def benchmark_data_vs_mmseg(args: argparse.Namespace) -> None:
    print(f'data pipeline of {args.data} (train_dataloader, '
          f'{args.batches} batches after 3 warm-up), mmpsp\'s transforms '
          'and mmseg\'s originals')
    print('| workers | batch | mmpsp s/batch | mmpsp img/s | mmseg s/batch | '
          'mmseg img/s | mmpsp / mmseg |\n|---|---|---|---|---|---|---|')
    originals = mmseg_pipeline_options(args.data, args.cfg_options)
    for workers in args.workers:
        ours = measure_data_pipeline(args.data, workers, args.batches,
                                     cfg_options=args.cfg_options)
        ref = measure_data_pipeline(args.data, workers, args.batches,
                                    cfg_options=originals)
        print(f"| {workers} | {ours['batch_size']} | "
              f"{ours['s_per_batch']:.4f} | {ours['img_s']:.1f} | "
              f"{ref['s_per_batch']:.4f} | {ref['img_s']:.1f} | "
              f"{ours['img_s'] / ref['img_s']:.2f}x |")


def benchmark_data(args: argparse.Namespace) -> None:
    if args.per_transform:
        benchmark_transforms(args)
        return
    if args.compare_mmseg:
        benchmark_data_vs_mmseg(args)
        return
    print(f'data pipeline of {args.data} (train_dataloader, '
          f'{args.batches} batches after 3 warm-up)')
    print('| workers | batch | s/batch | img/s |\n|---|---|---|---|')
    for workers in args.workers:
        row = measure_data_pipeline(args.data, workers, args.batches,
                                    cfg_options=args.cfg_options)
        print(f"| {row['num_workers']} | {row['batch_size']} | "
              f"{row['s_per_batch']:.4f} | {row['img_s']:.1f} |")


def benchmark_logs(args: argparse.Namespace) -> None:
    runs = [summarise_training_log(d, args.skip_iters) for d in args.log]
    print(f'training runs, iterations after {args.skip_iters} (data '
          'loading included, validation excluded)')
    print('| run | iters | s/iter | data s/iter | s/iter vs first | mIoU |'
          '\n|---|---|---|---|---|---|')
    for work_dir, run in zip(args.log, runs):
        miou = run['val'].get('mIoU')
        print(f"| {work_dir} | {run['iters']} | {run['s_per_iter']:.4f} | "
              f"{run['data_s_per_iter']:.4f} | "
              f"{run['s_per_iter'] / runs[0]['s_per_iter']:.2f}x | "
              f"{'n/a' if miou is None else f'{miou:.2f}'} |")


def main() -> None:
    args = parse_args()
    if args.memory:
        report = run_memory_benchmark(args)
        if args.json:
            with open(args.json, 'w') as f:
                json.dump(report, f, indent=2)
        return
    if args.log:
        benchmark_logs(args)
        return
    if args.data:
        benchmark_data(args)
        return
    device = torch.device(args.device)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise SystemExit('--device cuda: no CUDA device is visible; '
                             'use --device cpu')
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_description()
    settings = args.settings or (list(SETTINGS)
                                 if device.type == 'cuda' else ['fp32'])
    model = (args.config if args.config else
             f'PSPNet R{args.depth}-D8 ({DEPTH_CONFIGS[args.depth].name})')
    print(f'device: {name}, torch {torch.__version__}; {model}, '
          f'{args.num_classes} classes, {args.size}x{args.size}, train '
          f'batch {args.batch_size}, inference batch 1')
    rows = run_benchmark(settings, device, args.depth, args.num_classes,
                         args.size, args.batch_size, args.steps, args.warmup,
                         args.infer_steps, tuple(args.models),
                         config=args.config)
    print(format_table(rows))
    summary = speedup_summary(rows)
    if summary:
        print(summary)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump([row.__dict__ for row in rows], f, indent=2)


if __name__ == '__main__':
    main()
