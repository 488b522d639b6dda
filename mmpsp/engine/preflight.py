"""Checks on a config before a runner is built from it.

Building mmengine's Runner from a broken config fails late and obscurely
(a missing ``data_root`` surfaces as an assertion inside the dataset). These
checks run first and name the key, the resolved path and the fix.
"""
import os.path as osp

from mmengine.config import Config


class ConfigCheckError(ValueError):
    """A config cannot be trained or tested as it stands."""


def _dataloader_keys(cfg: Config):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader:
            yield key, loader


def check_data_roots(cfg: Config) -> None:
    """Raise :class:`ConfigCheckError` when a dataset's ``data_root`` is missing.

    Args:
        cfg (Config): The full config.
    """
    for key, loader in _dataloader_keys(cfg):
        dataset = loader.get('dataset', {})
        # Wrappers (RepeatDataset, ConcatDataset) nest the real dataset.
        nested = dataset.get('dataset') or dataset.get('datasets') or []
        for ds in ([dataset] + (nested if isinstance(nested, list) else
                                [nested])):
            root = ds.get('data_root') if hasattr(ds, 'get') else None
            if root and not osp.isdir(root):
                raise ConfigCheckError(
                    f'{key}.dataset.data_root={root!r} does not exist '
                    f'(resolved: {osp.abspath(root)}); prepare the dataset '
                    'there or pass --cfg-options '
                    f'{key}.dataset.data_root=/path/to/data')


def preflight(cfg: Config) -> None:
    """Run every check that needs only the config, before a runner exists.

    Args:
        cfg (Config): The full config, after ``--cfg-options`` are merged.
    """
    check_data_roots(cfg)
