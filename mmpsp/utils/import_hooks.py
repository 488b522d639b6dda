"""Run a function when a module is first imported, not before.

``import mmpsp`` must make mmseg work on mmcv-lite, load checkpoints with
``weights_only=True`` and resolve ``mmpsp::`` config names, yet importing
torch, mmcv and mmengine's runner up front costs seconds, which every
``mmpsp --help`` would pay. :func:`when_imported` defers each change to the
moment its module is imported, by anyone: the change is then in place
before the importer sees the module.
"""
import contextlib
import importlib.abc
import sys
import threading
import types
from typing import (
    Callable,
    ContextManager,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
)

Hook = Callable[[types.ModuleType], None]
Around = Callable[[], ContextManager]


class _HookedLoader:
    """Runs the module with its own loader, inside the contexts and then
    with the hooks registered for it at that moment; anything else
    (``get_source`` for tracebacks, resources) goes to that loader."""

    def __init__(self, loader, finder: '_ImportHookFinder',
                 name: str) -> None:
        self._loader = loader
        self._finder = finder
        self._name = name

    def __getattr__(self, name: str):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # Taken now, not when the spec was found: a spec may be looked up
        # (importlib.util.find_spec) without the module being imported.
        hooks, around = self._finder.take(self._name)
        with contextlib.ExitStack() as stack:
            for context in around:
                stack.enter_context(context())
            self._loader.exec_module(module)
        for hook in hooks:
            hook(module)


class _ImportHookFinder(importlib.abc.MetaPathFinder):
    """Finds the modules that have hooks with the other finders and wraps
    their loaders."""

    def __init__(self) -> None:
        self.hooks: Dict[str, List[Hook]] = {}
        self.around: Dict[str, List[Around]] = {}
        self._lock = threading.Lock()

    def find_spec(self, fullname: str, path: Optional[Sequence[str]],
                  target: Optional[types.ModuleType] = None):
        if fullname not in self.hooks and fullname not in self.around:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None:
            spec.loader = _HookedLoader(spec.loader, self, fullname)
        return spec

    def take(self, name: str) -> Tuple[List[Hook], List[Around]]:
        """The hooks and contexts of ``name``, removed: they run once."""
        with self._lock:
            return self.hooks.pop(name, []), self.around.pop(name, [])


_FINDER = _ImportHookFinder()


def _finder() -> _ImportHookFinder:
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return _FINDER


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once module ``name`` has been imported.

    Now, if it already has been; else right after its code has run, inside
    the import statement that loads it, so the importer gets the module
    with the hook applied.

    Args:
        name (str): Full module name, e.g. ``'mmengine.runner'``.
        hook (Callable[[ModuleType], None]): Called with the module.
    """
    module = sys.modules.get(name)
    if module is not None:
        hook(module)
        return
    _finder().hooks.setdefault(name, []).append(hook)


def while_importing(name: str, context: Around) -> None:
    """Run the code of module ``name``, when it is imported, inside
    ``context()``; nothing happens if it already has been.

    Args:
        name (str): Full module name.
        context (Callable[[], ContextManager]): Makes the context manager,
            e.g. one that filters a warning the module gives at import.
    """
    if name not in sys.modules:
        _finder().around.setdefault(name, []).append(context)
