"""The ``mmpsp`` command: ``mmpsp train|test|infer|check|export|demo ...``.

Installed as a console script (``pip install .`` or ``pip install -e .``),
so it works from any directory. ``train``, ``test`` and ``infer`` are defined
here and ``tools/train.py``, ``tools/test.py`` and ``tools/inference.py`` are
thin wrappers over the same functions; ``check``, ``export`` and ``demo`` run
``tools/check_dataset.py``, ``tools/deployment/pytorch2onnx.py`` and
``tools/demo.py`` (installed under ``mmpsp/.mim/tools``) with the remaining
arguments. A config may be named ``mmpsp::pspnet/NAME.py`` (an installed
config) instead of a path.

Examples::

    mmpsp train mmpsp::pspnet/pspnet_r18-d8_camvid-360x480.py \\
        --data-root data/camvid
    mmpsp test my_config.py work_dirs/my_config/iter_6000.pth
    mmpsp infer my_config.py iter_6000.pth images/ --out masks/
"""
import argparse
import os
import os.path as osp
import runpy
import sys
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

from mmengine.config import DictAction

from mmpsp.utils.config_scope import mim_dir, resolve_config_name

if TYPE_CHECKING:
    from mmengine.config import Config

# Subcommands that run an installed tool script with the other arguments.
TOOL_COMMANDS = {
    'check': ('check_dataset.py',
              "check a config's image and label files before training"),
    'export': (osp.join('deployment', 'pytorch2onnx.py'),
               'export a trained segmentor to ONNX (pip install '
               '"mmpsp[export]")'),
    'demo': ('demo.py', 'train and evaluate PSPNet against an FCN baseline '
             'on generated scenes, on CPU'),
}


class CfgOptionsAction(DictAction):
    """``--cfg-options KEY=VALUE ...`` that names an item without ``=``.

    mmengine's ``DictAction`` fails on ``train_cfg.max_iters`` (no value)
    with ``ValueError: not enough values to unpack`` from inside argparse.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        """Check every item, then parse them as ``DictAction`` does."""
        for item in values:
            key, sep, _ = item.partition('=')
            if not sep or not key:
                raise argparse.ArgumentError(
                    self, f'{item!r} is not KEY=VALUE; write e.g. '
                    f"{(key or 'train_cfg.max_iters')}=1000 (quote values "
                    'with spaces or brackets: "model.data_preprocessor.'
                    'size=(64,64)")')
        super().__call__(parser, namespace, values, option_string)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options`` and ``--data-root``, shared by train and test."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, key=value pairs, e.g. '
        'train_cfg.max_iters=1000 "model.data_preprocessor.size=(64,64)"')
    parser.add_argument(
        '--data-root',
        help="dataset folder: sets data_root of every dataset in the "
        "config's train, val and test loaders (wrapped ones included)")


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mmpsp train`` and ``tools/train.py``."""
    parser.add_argument(
        'config', help='config file path, or mmpsp::pspnet/NAME.py')
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
        'CUDA, bfloat16 autocast on CPU (fast only on CPUs with native '
        'bf16: AVX512-BF16 or AMX); bf16: bfloat16 autocast without loss '
        'scaling (Ampere or newer GPUs, or CPU)')
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
        '--no-chunked-loss',
        action='store_true',
        help='compute every mmpsp head\'s loss from full-resolution logits '
        '(chunked_loss=False) instead of the chunked exact path that never '
        'holds them: same math, more memory')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CHECKPOINT',
        help='resume from CHECKPOINT, or alone: from the latest checkpoint '
        'in the work dir')
    from mmpsp.apis.launchers import add_launch_args
    add_common_args(parser)
    add_launch_args(parser)


def add_test_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``mmpsp test`` and ``tools/test.py``."""
    parser.add_argument(
        'config', help='config file path, or mmpsp::pspnet/NAME.py')
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
        help='directory to save drawn predictions (under '
        'vis_data/vis_image): every test image (the config\'s '
        'visualization interval is set to 1)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each image stays up with --show')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation: the config\'s tta_pipeline '
        '(multi-scale + flip) and tta_model')
    from mmpsp.apis.launchers import add_launch_args
    add_common_args(parser)
    add_launch_args(parser)


def add_infer_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``mmpsp infer`` and ``tools/inference.py``."""
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'),
                        help='device (default: %(default)s)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='mask weight in the overlay (%(default)s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, key=value pairs, e.g. '
        'model.test_cfg.mode=slide')


def set_data_root(cfg: 'Config', data_root: str,
                  source: str = '--data-root') -> List[str]:
    """Point every dataset of the config's loaders at ``data_root``.

    Sets ``data_root`` of each dataset in ``train_dataloader``,
    ``val_dataloader`` and ``test_dataloader``, wrapped datasets (Repeat,
    Concat, ...) included; a wrapper's own ``data_root`` is left alone. A
    config's top-level ``data_root`` variable has already been copied into
    those datasets when the file was read, which is why
    ``--cfg-options data_root=...`` changes nothing.

    Args:
        cfg (Config): The full config; changed in place.
        data_root (str): The dataset folder.
        source (str): The option that asked for it, for the log line.
            Defaults to ``'--data-root'``.

    Returns:
        list[str]: The dotted keys set, e.g.
        ``['train_dataloader.dataset.data_root', ...]``.
    """
    from mmengine.logging import print_log

    from mmpsp.utils.config_tree import LOADER_KEYS

    changed = []
    for key in LOADER_KEYS:
        loader = cfg.get(key)
        if not isinstance(loader, dict) or loader.get('dataset') is None:
            continue
        for path, node in _leaf_datasets(loader['dataset'],
                                         f'{key}.dataset'):
            node['data_root'] = data_root
            changed.append(f'{path}.data_root')
    print_log(f'{source} {data_root}: set {", ".join(changed) or "none"}',
              logger='current')
    return changed


def apply_data_root(cfg: 'Config', args: argparse.Namespace) -> None:
    """``--data-root``, or ``--cfg-options data_root=...``, to every dataset.

    A top-level ``data_root`` in ``--cfg-options`` would otherwise change
    only the variable, which the datasets copied when the file was read.
    """
    if args.data_root:
        set_data_root(cfg, args.data_root)
    elif 'data_root' in (args.cfg_options or {}):
        set_data_root(cfg, args.cfg_options['data_root'],
                      source='--cfg-options data_root=')


def _leaf_datasets(dataset: dict, path: str):
    """``(dotted key, dict)`` of each dataset that wraps no other one."""
    inner = dataset.get('datasets', dataset.get('dataset'))
    if isinstance(inner, dict):
        yield from _leaf_datasets(inner, f'{path}.dataset')
    elif isinstance(inner, (list, tuple)):
        for index, child in enumerate(inner):
            yield from _leaf_datasets(child, f'{path}.datasets.{index}')
    else:
        yield path, dataset


def draw_every_image(cfg: 'Config',
                     cfg_options: Optional[dict] = None) -> None:
    """Make ``--show-dir`` draw every test image, and say so.

    mmseg's visualization hook draws every ``interval``-th image (50 in
    mmseg's runtime), so a test set smaller than that wrote nothing. An
    interval given with ``--cfg-options`` is kept.

    Args:
        cfg (Config): From :func:`~.test.build_test_config` with a
            visualization hook; changed in place.
        cfg_options (dict, optional): The ``--cfg-options`` pairs.
    """
    from mmengine.logging import print_log

    key = 'default_hooks.visualization.interval'
    hook = cfg.default_hooks.visualization
    if key in (cfg_options or {}):
        print_log(f'--show-dir: drawing every {hook.get("interval")}-th '
                  f'test image ({key} from --cfg-options)', logger='current')
        return
    hook['interval'] = 1
    print_log(f'--show-dir: drawing every test image ({key}=1; pass '
              f'--cfg-options {key}=N for every N-th)', logger='current')


def note_progress(cfg: 'Config', stage: str) -> Optional[str]:
    """Say up front when the first progress line will show.

    mmengine's ``LoggerHook`` writes a line every ``interval`` iterations
    (50 in mmpsp's schedules) and every ``interval`` val/test images, so a
    shorter run or a smaller split shows none until it ends. The run is
    left as the config declares it; the message names the option that
    changes it.

    Args:
        cfg (Config): The full config.
        stage (str): ``'train'`` or ``'test'``.

    Returns:
        str, optional: The message logged, None without a logger hook.
    """
    from mmengine.logging import print_log

    logger = (cfg.get('default_hooks') or {}).get('logger')
    if not isinstance(logger, dict):
        return None
    interval = logger.get('interval', 10)
    option = ('--cfg-options default_hooks.logger.interval=N for a line '
              'every N')
    if stage == 'train':
        max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
        if max_iters is not None and max_iters < interval:
            message = (f'progress: train_cfg.max_iters={max_iters} is less '
                       f'than the log interval {interval}, so no training '
                       f'line will show; pass {option}')
        else:
            message = (f'progress: a training line every {interval} '
                       f'iterations, the first at iteration {interval}; '
                       f'validation and test every {interval} images; '
                       f'pass {option}')
    else:
        message = (f'progress: a line every {interval} test images, then '
                   f'the metrics; pass {option}')
    print_log(message, logger='current')
    return message


def train(args: argparse.Namespace) -> None:
    """Run ``mmpsp train`` / ``tools/train.py`` with parsed arguments."""
    from mmpsp.apis.launchers import set_local_rank
    from mmpsp.apis.train import build_train_config, run_train

    set_local_rank(args.local_rank)
    cfg = build_train_config(
        resolve_config_name(args.config),
        work_dir=args.work_dir,
        cfg_options=args.cfg_options,
        amp=args.amp,
        resume=args.resume,
        launcher=args.launcher,
        channels_last=args.channels_last,
        compile=args.compile)
    apply_data_root(cfg, args)
    if args.no_chunked_loss:
        from mmpsp.models.losses import set_chunked_loss
        set_chunked_loss(cfg, False, reason='--no-chunked-loss')
    note_progress(cfg, 'train')
    run_train(cfg)


def test(args: argparse.Namespace) -> Dict[str, float]:
    """Run ``mmpsp test`` / ``tools/test.py``; print and return metrics."""
    from mmengine.dist import is_main_process

    from mmpsp.apis.launchers import set_local_rank
    from mmpsp.apis.test import build_test_config, run_test

    set_local_rank(args.local_rank)
    cfg = build_test_config(
        resolve_config_name(args.config),
        args.checkpoint,
        work_dir=args.work_dir,
        out=args.out,
        show=args.show,
        show_dir=args.show_dir,
        wait_time=args.wait_time,
        cfg_options=args.cfg_options,
        launcher=args.launcher,
        tta=args.tta)
    apply_data_root(cfg, args)
    if args.show_dir:
        draw_every_image(cfg, args.cfg_options)
    note_progress(cfg, 'test')
    metrics = run_test(cfg)
    if is_main_process():
        print(' '.join(f'{name}: {value:.2f}'
                       for name, value in metrics.items()))
    return metrics


def infer(images: Sequence[str], config: str, checkpoint: str,
          args: argparse.Namespace) -> int:
    """Segment ``images``; the options are :func:`add_infer_options`'."""
    from mmengine.config import Config

    from mmpsp.apis.inference import segment_images

    cfg = Config.fromfile(resolve_config_name(config))
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    written = segment_images(images, cfg, checkpoint, args.out,
                             args.device, args.opacity)
    print(f'{len(written)} image(s) segmented; masks and overlays in '
          f'{args.out}')
    return 0


def run_tool(script: str, argv: Sequence[str]) -> int:
    """Run an installed ``tools/`` script as ``python SCRIPT ARGV``.

    Args:
        script (str): Path under ``tools/``, e.g. ``'demo.py'``.
        argv (Sequence[str]): Its arguments; ``mmpsp::<path>`` ones become
            the installed config's path.

    Returns:
        int: Its exit status.
    """
    path = osp.join(mim_dir(), 'tools', script)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} is missing: this mmpsp install has no tools/ folder; '
            'reinstall it (pip install mmpsp, or pip install -e . in a '
            'clone)')
    saved = sys.argv
    # Installed configs by name, as train/test/infer take them.
    sys.argv = [path, *map(resolve_config_name, argv)]
    try:
        runpy.run_path(path, run_name='__main__')
    except SystemExit as done:
        code = done.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``mmpsp`` parser with one subcommand per tool."""
    parser = argparse.ArgumentParser(
        prog='mmpsp',
        description='PSPNet for MMSegmentation: train, test, segment '
        'images, check data, export, demo. Configs are paths or '
        'mmpsp::pspnet/NAME.py.')
    from mmpsp import __version__
    parser.add_argument('--version', action='version',
                        version=f'mmpsp {__version__}')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                     required=True)
    add_train_args(commands.add_parser(
        'train', help='train a segmentor', description='Train a segmentor'))
    add_test_args(commands.add_parser(
        'test', help='evaluate a checkpoint',
        description='Test (and evaluate) a segmentor'))
    infer_parser = commands.add_parser(
        'infer', help='segment images: colour masks and overlays',
        description='Segment images: writes NAME_mask.png and '
        'NAME_overlay.png per input image')
    infer_parser.add_argument(
        'config', help='model config, or mmpsp::pspnet/NAME.py')
    infer_parser.add_argument('checkpoint',
                              help='checkpoint trained with that config')
    infer_parser.add_argument('images', nargs='+',
                              help='image files and/or folders of images')
    add_infer_options(infer_parser)
    for name, (script, text) in TOOL_COMMANDS.items():
        tool = commands.add_parser(
            name, help=f'{text} (mmpsp {name} --help: its options)',
            add_help=False, prefix_chars='\0')
        tool.add_argument('args', nargs=argparse.REMAINDER)
        tool.set_defaults(script=script)
    return parser


COMMANDS: Dict[str, Callable[[argparse.Namespace], Optional[object]]] = {
    'train': train,
    'test': test,
    'infer': lambda a: infer(a.images, a.config, a.checkpoint, a),
}


def run_command(command: str, args: argparse.Namespace) -> int:
    """Run ``train``, ``test`` or ``infer``; return the exit status.

    A mistake the user can fix (an mmpsp error, a missing file) ends in one
    line naming it and the fix, and status 2: a traceback would add nothing.
    In a process of a multi-process job the error propagates instead, so
    that the fail-fast hook names the rank and ends the whole job.
    """
    from mmpsp.utils.errors import MMPSPError
    if int(os.environ.get('WORLD_SIZE', '1')) > 1:
        COMMANDS[command](args)
        return 0
    try:
        COMMANDS[command](args)
    except (MMPSPError, FileNotFoundError) as error:
        print(f'mmpsp {command}: error: {type(error).__name__}: {error}',
              file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``mmpsp`` console script."""
    args = build_parser().parse_args(argv)
    if args.command in TOOL_COMMANDS:
        return run_tool(args.script, args.args)
    return run_command(args.command, args)


if __name__ == '__main__':
    sys.exit(main())
