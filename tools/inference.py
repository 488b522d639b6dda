"""Segment images with a trained model: colour masks and overlays.

Example (after ``make demo``)::

    python tools/inference.py work_dirs/demo/data/images/val \
        --config work_dirs/demo/pspnet/pspnet_r18-d8_scenes-demo.py \
        --checkpoint work_dirs/demo/pspnet/iter_600.pth \
        --out work_dirs/demo/inference

The same as ``mmpsp infer CONFIG CHECKPOINT IMAGES... --out DIR``.
"""
import argparse
import sys

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)
from mmpsp.apis.cli import add_infer_options, infer


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Segment images: writes NAME_mask.png (palette colours) '
        'and NAME_overlay.png per input image.')
    parser.add_argument('images', nargs='+',
                        help='image files and/or folders of images')
    parser.add_argument('--config', required=True, help='model config')
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint trained with that config')
    add_infer_options(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return infer(args.images, args.config, args.checkpoint, args)


if __name__ == '__main__':
    sys.exit(main())
