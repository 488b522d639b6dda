"""Train a segmentor: ``python tools/train.py CONFIG [options]``."""
import argparse

from mmengine.config import DictAction

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)
from mmpsp.apis import build_train_config, run_train
from mmpsp.apis.launch import add_launch_args, set_local_rank


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--work-dir',
        help='directory for logs and checkpoints '
        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--amp',
        nargs='?',
        const='auto',
        default=None,
        choices=['auto', 'fp16', 'bf16'],
        help='mixed precision; alone: float16 with dynamic loss scale on '
        'CUDA, bfloat16 autocast on CPU; bf16: bfloat16 autocast without '
        'loss scaling (Ampere or newer GPUs, or CPU)')
    parser.add_argument(
        '--channels-last',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='channels_last memory layout (same math; faster on recent '
        'GPUs, with --amp most of all). Default: the config\'s '
        'SpeedLeversHook, on in mmpsp configs')
    parser.add_argument(
        '--compile',
        action='store_true',
        default=None,
        help='torch.compile the network and the full-resolution loss '
        '(same math; compiling costs minutes up front)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or alone: from the latest checkpoint '
        'in the work dir')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs, e.g. '
        'train_cfg.max_iters=1000 "model.data_preprocessor.size=(64,64)"')
    add_launch_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    cfg = build_train_config(
        args.config,
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        amp=args.amp,
        resume=args.resume,
        launcher=args.launcher,
        channels_last=args.channels_last,
        compile=args.compile)
    run_train(cfg)


if __name__ == '__main__':
    main()
