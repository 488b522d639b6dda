"""Training entry point behind ``tools/train.py``."""
import os.path as osp
import warnings
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner, find_latest_checkpoint
from torch import nn

from mmpsp.engine.checks import check_before_run, check_pretrained
from mmpsp.engine.checks.checkpoint_check import newest_loadable_checkpoint

from .launch import adapt_to_machine, load_config
from .run_options import add_speed_levers, enable_amp
from .work_dir import WorkDirLock, check_work_dir

# ``--resume`` without a path.
RESUME_LATEST = 'auto'


class NothingToResumeWarning(UserWarning):
    """``--resume`` found no checkpoint and training starts from scratch."""


class SkippedCheckpointWarning(UserWarning):
    """``--resume`` passed over checkpoints that do not load."""


def resolve_resume(cfg: Config, resume: Optional[str]) -> Optional[str]:
    """Point ``cfg`` at the checkpoint to resume from.

    Args:
        cfg (Config): The full config with ``work_dir`` set; changed in
            place (``resume``, ``load_from``).
        resume (str, optional): ``'auto'`` for the latest checkpoint in
            ``cfg.work_dir``, or a checkpoint path. None follows the
            config: ``resume=True`` with ``load_from`` resumes from that
            file, without it as ``'auto'``. When ``'auto'`` finds nothing,
            training starts fresh and ``load_from`` (if any) is kept as
            the initial weights.

    Returns:
        str or None: The checkpoint training resumes from, None when it
        starts fresh.
    """
    if resume is None:
        if not cfg.get('resume'):
            return None
        if cfg.get('load_from') is None:
            # The config asks for mmengine's silent auto-resume.
            resume = RESUME_LATEST
        else:
            resume = cfg.load_from
    if resume != RESUME_LATEST:
        if '://' not in resume and not osp.isfile(resume):
            raise FileNotFoundError(
                f'checkpoint to resume from {resume!r} does not exist '
                f'(resolved: {osp.abspath(resume)}); pass an existing .pth '
                'to --resume (or load_from), or --resume alone for the '
                f'latest one in {cfg.work_dir}')
        cfg.resume = True
        cfg.load_from = resume
        return resume
    # The newest checkpoint that loads: a run killed mid-save (without
    # AtomicCheckpointHook), a full disk or a copied work dir leave a
    # latest file that does not, next to older ones that do.
    named = find_latest_checkpoint(cfg.work_dir)
    latest, skipped = newest_loadable_checkpoint(cfg.work_dir, named)
    if latest is None:
        # None loads: the Runner's load of the latest one raises the safe
        # loader's error, which names the file and says why.
        latest, skipped = named, []
    if skipped:
        warnings.warn(
            f'--resume: passed over {len(skipped)} checkpoint(s) that do '
            f'not load: {"; ".join(skipped)}. Resuming from {latest}, the '
            'newest one that loads; the iterations after it are trained '
            'again. The files passed over are left as they are (move or '
            'delete them once checked); the next checkpoint of this run '
            'replaces one of the same name.',
            SkippedCheckpointWarning,
            stacklevel=2)
    if latest is None:
        # The config's load_from (weights to fine-tune from) still
        # initialises the fresh run, as it would have without --resume.
        init = cfg.get('load_from')
        warnings.warn(
            f'--resume: no checkpoint to resume from in work_dir '
            f'{osp.abspath(cfg.work_dir)} (no last_checkpoint file and no '
            '*.pth); training starts from iteration 0'
            + (f' with the weights of load_from={init!r}' if init else '') +
            '. Pass --work-dir of the interrupted run or --resume PATH to '
            'resume.',
            NothingToResumeWarning,
            stacklevel=2)
        cfg.resume = False
        return None
    cfg.resume = True
    cfg.load_from = latest
    print_log(f'--resume: latest checkpoint in {cfg.work_dir} is {latest}',
              logger='current')
    return latest


def build_train_config(config: str,
                       work_dir: Optional[str] = None,
                       cfg_options: Optional[Dict] = None,
                       amp: Optional[str] = None,
                       resume: Optional[str] = None,
                       launcher: str = 'none',
                       channels_last: Optional[bool] = None,
                       compile: Optional[bool] = None) -> Config:
    """Build the config ``tools/train.py`` trains with.

    Args:
        config (str): Path of the config file.
        work_dir (str, optional): Overrides the config's ``work_dir``;
            default ``work_dirs/<config stem>``. Defaults to None.
        cfg_options (dict, optional): ``--cfg-options`` pairs.
            Defaults to None.
        amp (str, optional): Mixed precision: ``'auto'``, ``'fp16'`` or
            ``'bf16'`` (see :func:`~.run_options.enable_amp`); True means
            ``'auto'``. Defaults to None (full precision).
        resume (str, optional): ``'auto'`` (latest checkpoint in the
            work_dir), a checkpoint path, or None. Defaults to None.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or
            ``'mpi'``. Defaults to ``'none'``.
        channels_last (bool, optional): Train in channels_last memory
            layout (see :mod:`mmpsp.engine.hooks.speed_levers_hook`); None
            keeps the config's choice (on in mmpsp configs). Defaults to
            None.
        compile (bool, optional): ``torch.compile`` the network and the
            heads' losses; None keeps the config's choice (off).
            Defaults to None.

    Returns:
        Config: The config, ready for :func:`run_train`.
    """
    cfg = load_config(config, cfg_options, work_dir, launcher)
    check_work_dir(cfg.work_dir)
    if amp:
        enable_amp(cfg, 'auto' if amp is True else amp)
    add_speed_levers(cfg, channels_last, compile)
    resolve_resume(cfg, resume)
    return cfg


def build_train_runner(cfg: Config) -> Runner:
    """Check the config, adapt it to this machine and build its Runner.

    The run is the config's: hooks and loader settings are those it
    declares. Only :func:`~.launch.adapt_to_machine` changes it, for what
    depends on the machine, and logs each change.

    Args:
        cfg (Config): From :func:`build_train_config`, or any mmengine
            training config.

    Returns:
        Runner: Ready for ``runner.train()``.
    """
    adapt_to_machine(cfg)
    # Before datasets and workers start: offline, mmengine would fail only
    # when it initialises the weights, with a traceback naming no config key.
    check_pretrained(cfg)
    check_before_run(cfg)
    return Runner.from_cfg(cfg)


def run_train(cfg: Config) -> nn.Module:
    """Train a config: :func:`build_train_runner`, then ``train()``.

    The run holds the work dir's lock (:class:`~.work_dir.WorkDirLock`)
    from before the Runner writes anything until training ends: a second
    run in the same work dir is refused, naming this one's pid.

    Args:
        cfg (Config): From :func:`build_train_config`, or any mmengine
            training config.

    Returns:
        nn.Module: The trained model.
    """
    check_work_dir(cfg.work_dir)
    with WorkDirLock(cfg.work_dir, cfg.filename):
        return build_train_runner(cfg).train()
