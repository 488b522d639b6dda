"""Checks on a config's keys, before a Runner is built from it.

Building mmengine's Runner from a broken config fails late and obscurely
(a missing ``data_root`` surfaces as an assertion inside the dataset, a
head with the wrong ``num_classes`` trains without complaint). These checks
read only the config, name the key, the resolved path and the fix, and
warn when a config that inherits mmpsp's runtime lost the hooks it
declares.
"""
import ast
import logging
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger, print_log

from mmpsp.utils.config_tree import dataset_tree
from mmpsp.utils.errors import MMPSPError

# The hooks mmpsp's configs declare (configs/_base_/default_runtime.py and
# the schedules), and what a run loses without each.
DECLARED_HOOKS = {
    'NonFiniteLossHook': 'stops at the first non-finite loss',
    'LabelRangeHook': 'refuses label values the heads cannot train on',
    'IterationSeedHook': 'makes --resume repeat the uninterrupted run',
    'SpeedLeversHook': 'applies channels_last / torch.compile',
    'CheckpointCheckHook': 'refuses a load_from checkpoint that does not fit',
    'RankZeroBuffersHook': 'validates, with several processes, the batch-norm '
    'statistics the checkpoint saves',
}
DECLARED_CHECKPOINT_HOOK = 'AtomicCheckpointHook'
DEFAULT_IGNORE_INDEX = 255
SPLITS = ('train', 'val', 'test')


class ConfigCheckError(MMPSPError, ValueError):
    """A config cannot be trained or tested as it stands."""


class ConfigParseError(ConfigCheckError):
    """A config file (or one of its bases) is not valid Python."""


def _base_files(path: str, tree: ast.Module) -> List[str]:
    """The local ``_base_`` files a parsed config names."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], 'id', None) == '_base_'):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            names = [value] if isinstance(value, str) else list(value)
            return [
                osp.normpath(osp.join(osp.dirname(path), name))
                for name in names
                if isinstance(name, str) and '::' not in name
            ]
    return []


def config_parse_error(config: str,
                       error: SyntaxError) -> ConfigParseError:
    """The file and line of a config's syntax error, said once.

    mmengine parses the text without its file name, so Python reports the
    line of ``<unknown>``, and for a ``_base_`` file not even which one.
    The config and its local bases are parsed again here until the broken
    one is found.

    Args:
        config (str): The config path given to the tool.
        error (SyntaxError): What ``Config.fromfile`` raised.

    Returns:
        ConfigParseError: Names ``file:line``, the line and the message.
    """
    pending, seen = [osp.abspath(config)], set()
    while pending:
        path = pending.pop(0)
        if path in seen or not osp.isfile(path):
            continue
        seen.add(path)
        with open(path, encoding='utf-8') as f:
            text = f.read()
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError as found:
            error, where = found, path
            break
        pending += _base_files(path, tree)
    else:
        where = error.filename or config
    line = (error.text or '').rstrip()
    shown = f'\n    {line}' if line else ''
    return ConfigParseError(
        f'config {where}:{error.lineno}: {error.msg}{shown}\n'
        f'{where} is not valid Python; fix line {error.lineno} (or the '
        'bracket or quote opened before it)'
        + (f', which {config} inherits through _base_'
           if osp.abspath(config) != where else ''))


def _dataloader_keys(cfg: Config, splits: Sequence[str] = SPLITS):
    for key in (f'{split}_dataloader' for split in splits):
        loader = cfg.get(key)
        if loader:
            yield key, loader


def check_data_roots(cfg: Config, splits: Sequence[str] = SPLITS) -> None:
    """Raise :class:`ConfigCheckError` if a dataset's ``data_root`` is missing.

    Args:
        cfg (Config): The full config.
        splits (Sequence[str]): Splits to check. Defaults to all three.
    """
    for key, loader in _dataloader_keys(cfg, splits):
        for ds in dataset_tree(loader.get('dataset', {})):
            root = ds.get('data_root')
            if root and not osp.isdir(root):
                raise ConfigCheckError(
                    f'{key}.dataset.data_root={root!r} does not exist '
                    f'(resolved: {osp.abspath(root)}); prepare the dataset '
                    'there, or pass --data-root /path/to/data (every '
                    "dataset of the config) or --cfg-options "
                    f'{key}.dataset.data_root=/path/to/data (this one)')


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
        for ds in dataset_tree(loader.get('dataset', {})):
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


def _type_name(hook) -> str:
    hook_type = hook.get('type') if isinstance(hook, dict) else hook
    return str(getattr(hook_type, '__name__', hook_type)).split('.')[-1]


def missing_declared_hooks(cfg: Config) -> List[str]:
    """Name the hooks of mmpsp's runtime that ``cfg`` no longer declares.

    Only configs that inherit mmpsp's ``default_runtime.py`` (their
    ``default_scope`` is ``'mmpsp'``) are expected to declare them; a user
    config that sets ``custom_hooks = [...]`` replaces the base's list.

    Args:
        cfg (Config): The full config.

    Returns:
        list[str]: Each missing hook with what the run loses without it;
        empty when nothing is missing or the config is not mmpsp's.
    """
    if cfg.get('default_scope') != 'mmpsp':
        return []
    present = {_type_name(h) for h in cfg.get('custom_hooks') or []}
    missing = [f'custom_hooks: {name} ({why})'
               for name, why in DECLARED_HOOKS.items() if name not in present]
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    found = _type_name(checkpoint) if checkpoint else None
    if found and found != DECLARED_CHECKPOINT_HOOK:
        missing.append(
            f'default_hooks.checkpoint: {DECLARED_CHECKPOINT_HOOK} (writes '
            f'checkpoints atomically; the config has {found})')
    return missing


def warn_missing_hooks(cfg: Config,
                       logger: Optional[MMLogger] = None) -> List[str]:
    """Warn once, naming each declared hook the config lost.

    Args:
        cfg (Config): The full config.
        logger (MMLogger, optional): Where the warning goes.

    Returns:
        list[str]: What :func:`missing_declared_hooks` found.
    """
    missing = missing_declared_hooks(cfg)
    if missing:
        print_log(
            'this config inherits mmpsp\'s runtime but does not declare: '
            + '; '.join(missing) + '. The run goes on without them. To keep '
            'them, add to the base\'s list instead of replacing it: '
            'custom_hooks = _base_.custom_hooks + [...] '
            '(mmengine allows _base_. references in Python configs)',
            logger=logger or 'current', level=logging.WARNING)
    return missing
