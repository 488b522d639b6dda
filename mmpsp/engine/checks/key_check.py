"""Unknown keys and types in a config's model, dataset and pipeline dicts.

A misspelt key (``pool_scale=`` for ``pool_scales``) otherwise surfaces
when the Runner builds the model, as ``TypeError: BaseDecodeHead.__init__()
got an unexpected keyword argument`` with no config key; a misspelt type as
a ``KeyError`` from the registry. :func:`check_config_keys` compares every
component dict with the signature of the class its ``type`` names (through
the class's base classes where it forwards ``**kwargs``) and names the key
path, the class and the closest accepted names.
"""
import difflib
import inspect
from typing import Iterator, List, Optional, Sequence, Set, Tuple

from mmengine.config import Config
from mmengine.registry import Registry
from mmengine.utils import import_modules_from_strings
from torch import nn

from .config_check import SPLITS, ConfigCheckError

# Keys of a model dict that hold further components (dicts with a type).
MODEL_CHILDREN = ('backbone', 'neck', 'decode_head', 'auxiliary_head',
                  'data_preprocessor', 'loss_decode', 'module')
# Keys every registry build accepts besides the class's arguments.
BUILD_KEYS = ('type', '_scope_')


def accepted_keys(cls: type) -> Optional[Set[str]]:
    """The keyword arguments ``cls(...)`` accepts, or None if any.

    Follows ``**kwargs`` up the base classes, as ``super().__init__
    (**kwargs)`` does, and stops at the first ``__init__`` without it.

    Args:
        cls (type): A registered class.

    Returns:
        set[str], optional: The names; None when every ``__init__`` up to
        ``nn.Module`` or ``object`` takes ``**kwargs`` (nothing to check).
    """
    keys: Set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        if klass in (object, nn.Module):
            return None
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        keys.update(p.name for p in params
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        var_kw = [p.name for p in params if p.kind == p.VAR_KEYWORD]
        if not var_kw:
            keys.discard('self')
            return keys
        if _reads_kwargs(init, var_kw[0]):
            return None
    return None


def _reads_kwargs(init, name: str) -> bool:
    """Whether ``__init__`` takes keys out of its ``**kwargs`` itself."""
    try:
        source = inspect.getsource(init)
    except (OSError, TypeError):
        return True  # cannot tell: do not check
    return any(f'{name}{use}' in source
               for use in ('.pop(', '.get(', '[', '.items(', '.keys('))


def _registered_names(registry: Registry) -> Set[str]:
    names: Set[str] = set()
    node: Optional[Registry] = registry
    while node is not None:
        names.update(node.module_dict)
        names.update(f'{scope}.{name}'
                     for scope, child in node.children.items()
                     for name in child.module_dict)
        node = node.parent
    return names


def _close(word: str, options: Sequence[str]) -> str:
    found = difflib.get_close_matches(word, sorted(options), n=3,
                                      cutoff=0.6)
    return (f"; did you mean {' or '.join(repr(f) for f in found)}?"
            if found else '')


def _model_nodes(node, path: str) -> Iterator[Tuple[str, dict]]:
    if isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _model_nodes(item, f'{path}[{index}]')
        return
    if not isinstance(node, dict) or not isinstance(node.get('type'), str):
        return
    yield path, node
    for key in MODEL_CHILDREN:
        if key in node:
            yield from _model_nodes(node[key], f'{path}.{key}')


def _dataset_nodes(cfg: Config,
                   splits: Sequence[str]) -> Iterator[Tuple[str, dict, str]]:
    """``(key path, dict, 'dataset' or 'transform')`` per split."""

    def walk(node, path):
        if not isinstance(node, dict) or not isinstance(
                node.get('type'), str):
            return
        yield path, node, 'dataset'
        for key in ('dataset', 'datasets'):
            child = node.get(key)
            items = child if isinstance(child, (list, tuple)) else [child]
            for index, item in enumerate(items):
                suffix = (f'.{key}[{index}]'
                          if isinstance(child, (list, tuple)) else f'.{key}')
                yield from walk(item, path + suffix)
        for index, step in enumerate(node.get('pipeline') or []):
            if isinstance(step, dict) and isinstance(step.get('type'), str):
                yield f'{path}.pipeline[{index}]', step, 'transform'

    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict):
            yield from walk(loader.get('dataset'),
                            f'{split}_dataloader.dataset')


def _check_node(path: str, node: dict, registry: Registry,
                scope: str) -> List[str]:
    with registry.switch_scope_and_registry(scope) as scoped:
        cls = scoped.get(node['type'])
    if cls is None:
        return [
            f"{path}.type={node['type']!r} is not a registered "
            f'{registry.name}' +
            _close(node['type'], _registered_names(scoped)) +
            ' (a module of your own: list it in custom_imports)'
        ]
    if not inspect.isclass(cls):
        return []
    keys = accepted_keys(cls)
    if keys is None:
        return []
    unknown = [k for k in node if k not in keys and k not in BUILD_KEYS]
    return [
        f'{path}.{key}: {cls.__name__} takes no argument {key!r}' +
        _close(key, keys) for key in unknown
    ]


def check_config_keys(cfg: Config,
                      splits: Sequence[str] = SPLITS) -> None:
    """Raise on an unknown key or type in the model, dataset or pipeline.

    Args:
        cfg (Config): The full config; not changed.
        splits (Sequence[str]): The splits whose datasets and pipelines
            are checked. Defaults to all three.

    Raises:
        ConfigCheckError: Lists every unknown key or type with its key
            path, the class and the closest accepted names.
    """
    from mmpsp.registry import DATASETS, MODELS, TRANSFORMS
    imports = cfg.get('custom_imports')
    if imports:
        # The Runner imports them too; their types must resolve here.
        import_modules_from_strings(**imports)
    scope = cfg.get('default_scope') or 'mmpsp'
    problems = []
    for path, node in _model_nodes(cfg.get('model'), 'model'):
        problems += _check_node(path, node, MODELS, scope)
    registries = dict(dataset=DATASETS, transform=TRANSFORMS)
    for path, node, kind in _dataset_nodes(cfg, splits):
        problems += _check_node(path, node, registries[kind], scope)
    if problems:
        source = f' ({cfg.filename})' if cfg.filename else ''
        raise ConfigCheckError(
            f'unknown keys in the config{source}:\n  ' +
            '\n  '.join(problems) + '\nRename or remove them in the config '
            'file, or pass the right name with --cfg-options; nothing was '
            'built or written')
