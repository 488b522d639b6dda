"""Train a segmentor: ``python tools/train.py CONFIG [options]``.

The same command as ``mmpsp train`` (``mmpsp/apis/cli.py``).
"""
import argparse
import sys

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)
from mmpsp.apis.cli import add_train_args, run_command


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    add_train_args(parser)
    return parser.parse_args()


def main() -> int:
    return run_command('train', parse_args())


if __name__ == '__main__':
    sys.exit(main())
