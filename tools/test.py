"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``."""
import argparse

from mmengine.config import DictAction
from mmengine.dist import is_main_process

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)
from mmpsp.apis import build_test_config, run_test
from mmpsp.apis.launch import add_launch_args, set_local_rank


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a segmentor')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='directory for the log and the metrics json '
        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--out', help='directory to save predicted label maps (PNG)')
    parser.add_argument(
        '--show', action='store_true', help='show the predictions')
    parser.add_argument(
        '--show-dir',
        help='directory to save drawn predictions (under vis_data/vis_image)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each image stays up with --show')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation: the config\'s tta_pipeline '
        '(multi-scale + flip) and tta_model')
    add_launch_args(parser)
    args = parser.parse_args()
    set_local_rank(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    cfg = build_test_config(
        args.config,
        args.checkpoint,
        work_dir=args.work_dir,
        out=args.out,
        show=args.show,
        show_dir=args.show_dir,
        wait_time=args.wait_time,
        cfg_options=args.cfg_options,
        launcher=args.launcher,
        tta=args.tta)
    metrics = run_test(cfg)
    if is_main_process():
        print(' '.join(f'{name}: {value:.2f}'
                       for name, value in metrics.items()))


if __name__ == '__main__':
    main()
