"""Walk the nested dicts and lists of a config (or of built datasets)."""
from typing import Any, Iterator, Tuple

LOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def walk_dicts(node: Any, path: str) -> Iterator[Tuple[str, dict]]:
    """Yield ``(dotted key, dict)`` for ``node`` and every dict inside it.

    Args:
        node: A config value: a dict, a list/tuple, or anything else.
        path (str): The dotted key of ``node``, e.g. ``'model'``. List
            items get their index, ``'model.decode_head.0'``.

    Yields:
        tuple[str, dict]: The dotted key of each dict and the dict.
    """
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk_dicts(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from walk_dicts(value, f'{path}.{index}')


def _children(dataset: Any) -> list:
    """The datasets a wrapper (Repeat/Concat/ClassBalanced) holds, or []."""
    getter = dataset.get if isinstance(dataset, dict) else (
        lambda name: getattr(dataset, name, None))
    inner = getter('datasets')
    if inner is None:
        inner = getter('dataset')
    if inner is None:
        return []
    return list(inner) if isinstance(inner, (list, tuple)) else [inner]


def dataset_tree(dataset: Any) -> Iterator[Any]:
    """Yield a dataset (config or object) and every dataset nested in it.

    Args:
        dataset: A dataset config dict or a built dataset.

    Yields:
        The dataset itself, then its wrapped datasets, depth first.
    """
    if dataset is None or (isinstance(dataset, dict) and not dataset):
        return
    yield dataset
    for child in _children(dataset):
        yield from dataset_tree(child)


def leaf_datasets(dataset: Any) -> Iterator[Any]:
    """Yield the real datasets (configs or objects) inside any wrappers.

    Args:
        dataset: A dataset config dict or a built dataset.

    Yields:
        The datasets that wrap no other dataset.
    """
    for node in dataset_tree(dataset):
        if not _children(node):
            yield node
