"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``.

The same command as ``mmpsp test`` (``mmpsp/apis/cli.py``).
"""
import argparse
import sys

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)
from mmpsp.apis.cli import add_test_args, run_command


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a segmentor')
    add_test_args(parser)
    return parser.parse_args()


def main() -> int:
    return run_command('test', parse_args())


if __name__ == '__main__':
    sys.exit(main())
