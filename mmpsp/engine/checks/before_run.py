"""Every check that runs before a Runner is built, in one call.

The config checks (:mod:`.config_check`) read only keys; the data check
(:mod:`.data_check`) decodes a bounded sample of the files. Both name the
key or file and the fix. Nothing here changes the config: what a run does
is declared in its config files.
"""
from typing import Optional, Sequence

from mmengine.config import Config
from mmengine.logging import MMLogger, print_log

from .config_check import (
    SPLITS,
    ConfigCheckError,
    check_class_counts,
    check_data_roots,
    check_ignore_index,
    warn_missing_hooks,
)
from .data_check import DataCheckError, check_dataset
from .key_check import check_config_keys

# What the check decodes by default: enough files to catch an encoding
# mistake (they are systematic) in seconds, never a full pass.
DATA_CHECK_DEFAULTS = dict(
    splits=('train', 'val'), max_samples=64, time_budget=60.,
    on_corrupt='stop')


def check_data(cfg: Config,
               logger: Optional[MMLogger] = None,
               splits: Optional[Sequence[str]] = None) -> None:
    """Check a bounded sample of each split's files (``cfg.data_check``).

    Args:
        cfg (Config): The full config. ``data_check`` (optional) overrides
            :data:`DATA_CHECK_DEFAULTS`; ``data_check.max_samples=0``
            keeps only the cheap checks that read no file.
        logger (MMLogger, optional): Where warnings go.
        splits (Sequence[str], optional): Overrides ``data_check.splits``.

    Raises:
        DataCheckError: A split has errors; the message lists them all.
    """
    opts = dict(DATA_CHECK_DEFAULTS, **(cfg.get('data_check') or {}))
    unknown = set(opts) - set(DATA_CHECK_DEFAULTS)
    if unknown:
        raise ConfigCheckError(
            f'data_check has unknown keys {sorted(unknown)}; use '
            f'{sorted(DATA_CHECK_DEFAULTS)}')
    for split in splits or opts['splits']:
        if not (cfg.get(f'{split}_dataloader') or {}).get('dataset'):
            continue
        report = check_dataset(
            cfg, split, max_samples=opts['max_samples'],
            on_corrupt=opts['on_corrupt'], time_budget=opts['time_budget'],
            logger=logger)
        print_log(f'data check: {report.format()}',
                  logger=logger or 'current')
        if report.errors:
            raise DataCheckError(
                f'data check failed, fix before running (full list: '
                f'python tools/check_dataset.py CONFIG --split {split}):\n'
                + '\n'.join(i.format() for i in report.errors))


def check_before_run(cfg: Config,
                     check_files: bool = True,
                     splits: Optional[Sequence[str]] = None) -> None:
    """Check a config and its data before a runner is built from it.

    Runs the config checks (unknown keys and types first), warns when a
    config that inherits mmpsp's runtime lost a declared hook, and, unless
    ``check_files=False``, checks a bounded sample of the data files
    (:func:`check_data`).

    Args:
        cfg (Config): The full config, after ``--cfg-options`` are merged.
            Not changed.
        check_files (bool): Whether to decode a sample of the data files.
            Defaults to True.
        splits (Sequence[str], optional): Only these splits' folders and
            files are checked, e.g. ``('test',)`` for an evaluation run.
            Defaults to None: every split's ``data_root``, and the files of
            ``data_check.splits`` (train and val).

    Raises:
        ConfigCheckError: The config or its data cannot be trained on.
    """
    check_config_keys(cfg, splits or SPLITS)
    check_data_roots(cfg, splits or SPLITS)
    check_class_counts(cfg)
    check_ignore_index(cfg)
    warn_missing_hooks(cfg)
    if check_files:
        check_data(cfg, splits=splits)
