"""Check a config's dataset files: ``python tools/check_dataset.py CONFIG``.

Exit status 0: no errors (warnings may be printed); 1: errors, each with
the files concerned and the fix.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)
from mmpsp.apis.cli import add_common_args, apply_data_root
from mmpsp.engine import ConfigCheckError, check_dataset
from mmpsp.engine.checks.data_check import ON_CORRUPT, SPLITS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check the image and label files a config trains on')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=SPLITS, default='train')
    parser.add_argument(
        '--max-samples',
        type=int,
        default=None,
        help='decode at most N evenly spread samples (default: all)')
    parser.add_argument(
        '--on-corrupt',
        choices=ON_CORRUPT,
        default='stop',
        help='at an unreadable file: stop, or log it, skip it and go on')
    add_common_args(parser)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not osp.isfile(args.config):
        print(f'error: config file {args.config!r} does not exist '
              f'(resolved: {osp.abspath(args.config)})', file=sys.stderr)
        return 1
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    apply_data_root(cfg, args)
    try:
        report = check_dataset(
            cfg,
            args.split,
            max_samples=args.max_samples,
            on_corrupt=args.on_corrupt)
    except ConfigCheckError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(report.format())
    return 1 if report.errors else 0


if __name__ == '__main__':
    sys.exit(main())
