"""Export a trained segmentor (PSPNet) to ONNX at a fixed input size.

Example::

    python tools/deployment/pytorch2onnx.py \\
        configs/pspnet/pspnet_r18-d8_camvid-360x480.py \\
        work_dirs/iter_6000.pth \\
        --shape 360 480 --out pspnet.onnx --verify
"""
import argparse
import sys

import mmpsp  # noqa: F401  (before mmseg.models, see mmpsp/mmcv_lite.py)
from mmpsp.apis.cli import CfgOptionsAction
from mmpsp.deploy import (
    DEFAULT_OPSET,
    OUTPUTS,
    build_segmentor,
    check_export_settings,
    export_onnx,
    export_torchscript,
    verify_onnx,
)
from mmpsp.utils.errors import MMPSPError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a segmentor to ONNX at a fixed input size')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (mmseg or mmpsp)')
    parser.add_argument('--shape', type=int, nargs=2, required=True,
                        metavar=('H', 'W'), help='input height and width')
    parser.add_argument('--out', required=True, help='.onnx file to write')
    parser.add_argument('--output', choices=OUTPUTS, default='logits',
                        help='graph output: logits (N, K, H, W) float32 or '
                        'mask (N, H, W) int64 class map')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help='ONNX opset version')
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch on a random '
                        'image (max |logit diff| <= 1e-4, same class on '
                        '>= 99.9%% of pixels)')
    parser.add_argument('--torchscript', metavar='FILE.pt',
                        help='also write a torch.jit.trace module')
    parser.add_argument('--dynamic-export', action='store_true',
                        help='dynamic input shapes (not supported, see '
                        'docs/interop.md)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings, key=value')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        # Settings first: no need to build the model to refuse them.
        check_export_settings(args.shape, args.dynamic_export)
        model = build_segmentor(args.config, args.checkpoint,
                                args.cfg_options)
        wrapper, _ = export_onnx(model, args.shape, args.out, args.output,
                                 args.opset, dynamic=args.dynamic_export)
        print(f'wrote {args.out} (input image 1x3x{args.shape[0]}x'
              f'{args.shape[1]}, output {args.output})')
        if args.verify:
            result = verify_onnx(args.out, wrapper)
            # A mask output has no logits to compare (NaN in the result).
            logits = ('' if args.output == 'mask' else
                      f'max |logit diff| {result["max_abs_diff"]:.3g} '
                      f'(max |logit| {result["max_abs_logit"]:.3g}), ')
            print(f'onnxruntime vs PyTorch: {logits}same class on '
                  f'{result["argmax_agreement"]:.4%} of pixels')
        if args.torchscript:
            export_torchscript(model, args.shape, args.torchscript,
                               args.output)
            print(f'wrote {args.torchscript}')
    except (MMPSPError, FileNotFoundError) as error:
        # Settings, checkpoints and files the user named: the message says
        # what to change, a traceback would add nothing.
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
