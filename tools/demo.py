"""Train and evaluate PSPNet end to end on a laptop CPU (`make demo`).

Generates the synthetic scenes-demo set, trains the PSPNet demo config and,
with the same budget, its FCN baseline (no pyramid pooling), then writes the
per-class IoU table, training curves and prediction overlays to ``--out``.
"""
import argparse
import os.path as osp
import sys
import time

import mmpsp  # noqa: F401  (before mmseg: mmcv-lite stand-in, registries)

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                   'configs')
PSPNET = osp.join(CONFIGS, 'pspnet', 'pspnet_r18-d8_scenes-demo.py')
FCN = osp.join(CONFIGS, 'fcn', 'fcn_r18-d8_scenes-demo.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/demo',
                        help='output folder (default: %(default)s)')
    parser.add_argument('--config', default=PSPNET,
                        help='PSPNet config (default: %(default)s)')
    parser.add_argument('--baseline-config', default=FCN,
                        help='no-PPM baseline config (default: %(default)s)')
    parser.add_argument('--no-baseline', action='store_true',
                        help='train PSPNet only (about half the time)')
    parser.add_argument('--iters', type=int,
                        help='training iterations per model '
                        '(default: the config\'s, 600)')
    parser.add_argument('--batch-size', type=int,
                        help='training batch size (default: the config\'s, '
                        '8)')
    parser.add_argument('--num-train', type=int, default=320,
                        help='generated training images (%(default)s)')
    parser.add_argument('--num-val', type=int, default=80,
                        help='generated validation images (%(default)s)')
    parser.add_argument('--size', type=int, default=128,
                        help='generated image size (%(default)s)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of data and training (%(default)s)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # After parsing: --help and argument errors answer without torch.
    from mmpsp.demo import results_table, run_demo
    from mmpsp.demo.scenes import CLASSES

    configs = {'PSPNet': args.config}
    if not args.no_baseline:
        configs['FCN'] = args.baseline_config
    start = time.perf_counter()
    results = run_demo(
        args.out,
        configs,
        iters=args.iters,
        batch_size=args.batch_size,
        num_train=args.num_train,
        num_val=args.num_val,
        size=args.size,
        seed=args.seed)
    total = time.perf_counter() - start
    print('\nPer-class IoU (%) on the scenes-demo val split:\n')
    print(results_table(CLASSES, results))
    print(' | '.join(f'{name}: mIoU {r["mIoU"]:.2f}'
                     for name, r in results.items()))
    print(f'Total {total / 60:.1f} min. Results in {args.out}: '
          'results.md, results.json, curves.png, predictions.png')
    first = next(iter(results.values()))
    images = osp.join(args.out, 'data', 'images', 'val')
    print('Segment your own images with:\n'
          f'  python tools/inference.py {images}'
          f' --config {first["config"]} --checkpoint {first["checkpoint"]}'
          f' --out {osp.join(args.out, "inference")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
