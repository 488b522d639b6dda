"""Testing entry point behind ``tools/test.py``."""
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.runner import Runner

from mmpsp.engine.checks import check_before_run
from mmpsp.utils.errors import ConfigKeyError

from .launch import adapt_to_machine, load_config
from .work_dir import check_work_dir


def enable_visualization(cfg: Config,
                         show: bool = False,
                         show_dir: Optional[str] = None,
                         wait_time: float = 2.) -> None:
    """Turn on the visualization hook so test predictions are drawn.

    Args:
        cfg (Config): The full config; changed in place.
        show (bool): Show each drawn image in a window. Defaults to False.
        show_dir (str, optional): Save drawn images under
            ``<show_dir>/vis_data/vis_image``. Defaults to None.
        wait_time (float): Seconds each shown image stays up.
            Defaults to 2.
    """
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if hook is None:
        raise ConfigKeyError(
            '--show/--show-dir need default_hooks.visualization in the '
            "config; add visualization=dict(type='SegVisualizationHook') to "
            'default_hooks')
    hook['draw'] = True
    if show:
        hook['show'] = True
        hook['wait_time'] = wait_time
    if show_dir:
        if cfg.get('visualizer') is None:
            raise ConfigKeyError(
                '--show-dir needs a visualizer in the config; add '
                "visualizer=dict(type='SegLocalVisualizer', "
                "vis_backends=[dict(type='LocalVisBackend')])")
        cfg.visualizer['save_dir'] = show_dir


def enable_tta(cfg: Config) -> None:
    """Swap in the config's test-time augmentation.

    The test pipeline becomes ``cfg.tta_pipeline`` and the model is wrapped
    in ``cfg.tta_model`` (mmseg's ``SegTTAModel``, which averages the
    predictions of the augmented views).

    Args:
        cfg (Config): The full config; changed in place.
    """
    missing = [key for key in ('tta_pipeline', 'tta_model') if key not in cfg]
    if missing:
        raise ConfigKeyError(
            f'--tta needs {missing} in {cfg.filename}; inherit a dataset '
            'base that defines tta_pipeline (configs/_base_/datasets/) and '
            "set tta_model=dict(type='SegTTAModel')")
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def save_predictions(cfg: Config, out_dir: str) -> None:
    """Make every test metric write its predicted label maps to ``out_dir``.

    Args:
        cfg (Config): The full config; changed in place.
        out_dir (str): Directory for ``<image stem>.png`` label maps.
    """
    evaluator = cfg.get('test_evaluator')
    metrics = evaluator if isinstance(evaluator, list) else [evaluator]
    if not metrics or any(not isinstance(m, dict) for m in metrics):
        raise ConfigKeyError(
            f'--out needs test_evaluator in the config as a dict or a list '
            f'of dicts, got {evaluator!r}; add '
            "test_evaluator=dict(type='IoUMetric', iou_metrics=['mIoU'])")
    for metric in metrics:
        metric['output_dir'] = out_dir


def build_test_config(config: str,
                      checkpoint: str,
                      work_dir: Optional[str] = None,
                      out: Optional[str] = None,
                      show: bool = False,
                      show_dir: Optional[str] = None,
                      wait_time: float = 2.,
                      cfg_options: Optional[Dict] = None,
                      launcher: str = 'none',
                      tta: bool = False) -> Config:
    """Build the config ``tools/test.py`` evaluates with.

    Args:
        config (str): Path of the config file.
        checkpoint (str): Checkpoint to evaluate (path or URL).
        work_dir (str, optional): Where logs and metrics go; default
            ``work_dirs/<config stem>``. Defaults to None.
        out (str, optional): Directory to save predicted label maps.
            Defaults to None.
        show (bool): Show drawn predictions. Defaults to False.
        show_dir (str, optional): Save drawn predictions. Defaults to None.
        wait_time (float): Seconds each shown image stays up.
            Defaults to 2.
        cfg_options (dict, optional): ``--cfg-options`` pairs.
            Defaults to None.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or
            ``'mpi'``. Defaults to ``'none'``.
        tta (bool): Test-time augmentation. Defaults to False.

    Returns:
        Config: The config, ready for :func:`run_test`.
    """
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'checkpoint {checkpoint!r} does not exist (resolved: '
            f'{osp.abspath(checkpoint)}); pass a .pth written by '
            'tools/train.py, e.g. work_dirs/<config>/iter_6000.pth')
    cfg = load_config(config, cfg_options, work_dir, launcher)
    check_work_dir(cfg.work_dir)
    if out is not None:
        check_work_dir(out, '--out')
    cfg.load_from = checkpoint
    cfg.resume = False
    # Testing needs no training parts. Without them mmseg's visualization
    # hook (which reads runner.iter) cannot make the Runner build the train
    # loop, i.e. list and load the whole train set, or fail without it.
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler'):
        cfg[key] = None
    if show or show_dir:
        enable_visualization(cfg, show, show_dir, wait_time)
    if tta:
        enable_tta(cfg)
    if out is not None:
        save_predictions(cfg, out)
    return cfg


def run_test(cfg: Config) -> Dict[str, float]:
    """Check the config, adapt it to this machine and evaluate.

    The config's ``CheckpointCheckHook`` (declared in mmpsp's runtime)
    refuses a checkpoint that does not fit the model.

    Args:
        cfg (Config): From :func:`build_test_config`.

    Returns:
        dict[str, float]: The metrics, e.g. ``{'aAcc': .., 'mIoU': ..,
        'mAcc': ..}`` (percent).
    """
    # Only the test split is read: a missing train set must not block it.
    adapt_to_machine(cfg)
    check_before_run(cfg, splits=('test',))
    return Runner.from_cfg(cfg).test()
