"""Checks on a config before a runner is built from it.

Building mmengine's Runner from a broken config fails late and obscurely
(a missing ``data_root`` surfaces as an assertion inside the dataset, an
empty dataset hangs the infinite sampler, a head with the wrong
``num_classes`` trains without complaint). :func:`preflight` runs first,
names the key, the resolved path and the fix, switches the run to
crash-safe checkpoints and training guards, and checks a bounded sample of
the data files.
"""
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger, print_log

# What preflight decodes by default: enough files to catch an encoding
# mistake (they are systematic) in seconds, never a full pass.
DATA_CHECK_DEFAULTS = dict(
    splits=('train', 'val'), max_samples=64, time_budget=60.,
    on_corrupt='stop')
# Hooks that preflight adds to ``custom_hooks`` unless already there.
GUARD_HOOKS = ('NonFiniteLossHook', 'LabelRangeHook')
DEFAULT_IGNORE_INDEX = 255
SPLITS = ('train', 'val', 'test')


class ConfigCheckError(ValueError):
    """A config cannot be trained or tested as it stands."""


def _dataloader_keys(cfg: Config, splits: Sequence[str] = SPLITS):
    for key in (f'{split}_dataloader' for split in splits):
        loader = cfg.get(key)
        if loader:
            yield key, loader


def _dataset_cfgs(dataset) -> Iterator:
    """Yield the dataset config and those nested in wrappers."""
    if not hasattr(dataset, 'get'):
        return
    yield dataset
    # Wrappers (RepeatDataset, ConcatDataset) nest the real dataset.
    nested = dataset.get('dataset') or dataset.get('datasets') or []
    for ds in nested if isinstance(nested, list) else [nested]:
        yield from _dataset_cfgs(ds)


def check_data_roots(cfg: Config, splits: Sequence[str] = SPLITS) -> None:
    """Raise :class:`ConfigCheckError` if a dataset's ``data_root`` is missing.

    Args:
        cfg (Config): The full config.
        splits (Sequence[str]): Splits to check. Defaults to all three.
    """
    for key, loader in _dataloader_keys(cfg, splits):
        for ds in _dataset_cfgs(loader.get('dataset', {})):
            root = ds.get('data_root')
            if root and not osp.isdir(root):
                raise ConfigCheckError(
                    f'{key}.dataset.data_root={root!r} does not exist '
                    f'(resolved: {osp.abspath(root)}); prepare the dataset '
                    'there or pass --cfg-options '
                    f'{key}.dataset.data_root=/path/to/data')


def _heads(cfg: Config) -> List[Tuple[str, ConfigDict]]:
    """``(config key, head config)`` for the decode and auxiliary heads."""
    model = cfg.get('model') or {}
    # --tta wraps the segmentor config in tta_model's ``module``.
    if 'decode_head' not in model and isinstance(model.get('module'), dict):
        model = model['module']
    found = []
    for name in ('decode_head', 'auxiliary_head'):
        head = model.get(name)
        if isinstance(head, (list, tuple)):
            found += [(f'model.{name}[{i}]', h) for i, h in enumerate(head)]
        elif head:
            found.append((f'model.{name}', head))
    return found


def _dataset_classes(ds_cfg) -> Optional[tuple]:
    """Class names a dataset config trains on, or None if unknown."""
    from mmpsp.registry import DATASETS
    meta = ds_cfg.get('metainfo') or {}
    if meta.get('classes'):
        return tuple(meta['classes'])
    ds_type = ds_cfg.get('type')
    cls = ds_type if isinstance(ds_type, type) else None
    if isinstance(ds_type, str):
        cls = DATASETS.get(ds_type)
    classes = (getattr(cls, 'METAINFO', None) or {}).get('classes')
    return tuple(classes) if classes else None


def check_class_counts(cfg: Config) -> Optional[int]:
    """Check that every head and dataset agree on the number of classes.

    A head with more outputs than the dataset has classes trains and
    evaluates without complaint (the extra classes read NaN in the table);
    one with fewer crashes only when a label exceeds it.

    Args:
        cfg (Config): The full config.

    Returns:
        int or None: The agreed number of classes; None if the config
        names none.

    Raises:
        ConfigCheckError: They disagree; the message lists each key.
    """
    counts = [(f'{key}.num_classes', head['num_classes'])
              for key, head in _heads(cfg) if 'num_classes' in head]
    for key, loader in _dataloader_keys(cfg):
        for ds in _dataset_cfgs(loader.get('dataset', {})):
            if ds.get('dataset') or ds.get('datasets'):
                continue  # the wrapper's classes are its children's
            classes = _dataset_classes(ds)
            if classes:
                counts.append(
                    (f'{key}.dataset ({ds.get("type")}) classes',
                     len(classes)))
    values = {n for _, n in counts}
    if len(values) > 1:
        listing = ', '.join(f'{k}={n}' for k, n in counts)
        from_data = [n for k, n in counts if k.endswith(' classes')]
        want = from_data[0] if from_data else max(values)
        raise ConfigCheckError(
            f'num_classes disagree: {listing}. Set every head to the '
            f'dataset\'s {want} classes, e.g. --cfg-options '
            f'model.decode_head.num_classes={want} '
            f'model.auxiliary_head.num_classes={want}')
    return values.pop() if values else None


def head_ignore_index(cfg: Config) -> int:
    """The label value the decode head's loss ignores.

    Args:
        cfg (Config): The full config.

    Returns:
        int: ``model.decode_head.ignore_index`` (mmseg's default, 255, when
        unset).
    """
    heads = _heads(cfg)
    if not heads:
        return DEFAULT_IGNORE_INDEX
    return heads[0][1].get('ignore_index', DEFAULT_IGNORE_INDEX)


def check_ignore_index(cfg: Config) -> None:
    """Check that the losses and the evaluators ignore the same value.

    If the evaluator does not skip the value the loss ignores, pixels that
    were never trained count against every class: a quietly lower mIoU.

    Args:
        cfg (Config): The full config.

    Raises:
        ConfigCheckError: They differ; the message lists each key.
    """
    values = [(f'{key}.ignore_index',
               head.get('ignore_index', DEFAULT_IGNORE_INDEX))
              for key, head in _heads(cfg)]
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        for metric in metrics:
            if (hasattr(metric, 'get')
                    and 'IoUMetric' in str(metric.get('type'))):
                values.append((f'{key}.ignore_index',
                               metric.get('ignore_index',
                                          DEFAULT_IGNORE_INDEX)))
    if len({v for _, v in values}) > 1:
        listing = ', '.join(f'{k}={v}' for k, v in values)
        raise ConfigCheckError(
            f'ignore_index differs: {listing}. Set the same value on every '
            'head and evaluator (the value your labels use for unlabelled '
            'pixels)')


def use_safe_checkpoints(cfg: Config) -> bool:
    """Make ``default_hooks.checkpoint`` an :class:`AtomicCheckpointHook`.

    mmengine's ``CheckpointHook`` writes in place and deletes the oldest
    checkpoint before the new one exists; the subclass keeps every
    argument and changes only how files reach the disk.

    Args:
        cfg (Config): The full config, changed in place.

    Returns:
        bool: Whether the hook type was changed.
    """
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not hook:
        return False
    hook_type = hook.get('type')
    name = getattr(hook_type, '__name__', hook_type)
    if name in ('CheckpointHook', 'mmengine.CheckpointHook'):
        hook['type'] = 'mmpsp.AtomicCheckpointHook'
        return True
    return False


def add_guard_hooks(cfg: Config) -> List[str]:
    """Append mmpsp's training guards to ``custom_hooks``.

    Args:
        cfg (Config): The full config, changed in place.

    Returns:
        list[str]: Hook types added (those not already configured).
    """
    hooks = list(cfg.get('custom_hooks') or [])
    present = {
        str(getattr(h.get('type'), '__name__', h.get('type'))).split('.')[-1]
        for h in hooks
    }
    added = [name for name in GUARD_HOOKS if name not in present]
    hooks += [dict(type=f'mmpsp.{name}') for name in added]
    cfg.custom_hooks = hooks
    return added


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
    from .data_check import DataCheckError, check_dataset
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


def preflight(cfg: Config,
              check_files: bool = True,
              splits: Optional[Sequence[str]] = None) -> None:
    """Check a config and make its run crash-safe, before a runner exists.

    Runs the config checks, switches checkpoints to atomic writes, adds the
    non-finite-loss and label-range guards, makes a failing rank exit at
    once in a multi-process job (``cfg.launcher`` other than ``'none'``, or
    ``WORLD_SIZE > 1``) and, unless ``check_files=False``, checks a
    bounded sample of the data files (:func:`check_data`).

    Args:
        cfg (Config): The full config, after ``--cfg-options`` are merged;
            changed in place.
        check_files (bool): Whether to decode a sample of the data files.
            Defaults to True.
        splits (Sequence[str], optional): Only these splits' folders and
            files are checked, e.g. ``('test',)`` for an evaluation run.
            Defaults to None: every split's ``data_root``, and the files of
            ``data_check.splits`` (train and val).

    Raises:
        ConfigCheckError: The config or its data cannot be trained on.
    """
    from .dist_guard import install_fail_fast
    check_data_roots(cfg, splits or SPLITS)
    check_class_counts(cfg)
    check_ignore_index(cfg)
    use_safe_checkpoints(cfg)
    add_guard_hooks(cfg)
    # Under Slurm or MPI, WORLD_SIZE is exported only later (by
    # prepare_launch or mmengine's launcher): the launcher says it already.
    install_fail_fast(force=cfg.get('launcher', 'none') != 'none')
    if check_files:
        check_data(cfg, splits=splits)
