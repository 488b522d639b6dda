"""Segment images with a trained model: colour masks and overlays.

Example (after ``make demo``)::

    python tools/inference.py work_dirs/demo/data/images/val \
        --config work_dirs/demo/pspnet/pspnet_r18-d8_scenes-demo.py \
        --checkpoint work_dirs/demo/pspnet/iter_600.pth \
        --out work_dirs/demo/inference
"""
import argparse
import sys

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)
from mmpsp.apis.inference import segment_images


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Segment images: writes NAME_mask.png (palette colours) '
        'and NAME_overlay.png per input image.')
    parser.add_argument('images', nargs='+',
                        help='image files and/or folders of images')
    parser.add_argument('--config', required=True, help='model config')
    parser.add_argument('--checkpoint', required=True,
                        help='checkpoint trained with that config')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'),
                        help='device (default: %(default)s)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='mask weight in the overlay (%(default)s)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    written = segment_images(args.images, args.config, args.checkpoint,
                             args.out, args.device, args.opacity)
    print(f'{len(written)} image(s) segmented; masks and overlays in '
          f'{args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
