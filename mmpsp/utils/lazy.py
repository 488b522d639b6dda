"""Package attributes imported on first use (PEP 562).

``mmpsp``, ``mmpsp.apis`` and ``mmpsp.utils`` re-export names whose modules
import torch, mmengine's runner or mmseg. Importing those only when a name
is used keeps ``mmpsp --help`` and ``import mmpsp`` to a fraction of a
second, while ``from mmpsp.apis import run_train`` works as before.
"""
import importlib
import sys
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(
    package: str, exports: Dict[str, str]
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for lazy re-exports.

    Args:
        package (str): The package's ``__name__``.
        exports (dict[str, str]): Each exported name and the relative
            module that defines it, e.g. ``{'run_train': '.train'}``. A name
            mapped to its own module (``{'models': '.models'}``) is that
            submodule.

    Returns:
        tuple: ``(__getattr__, __dir__)`` to assign in the package.
    """

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            raise AttributeError(
                f'module {package!r} has no attribute {name!r}')
        module = importlib.import_module(source, package)
        value = module if source == f'.{name}' else getattr(module, name)
        # Found by plain attribute lookup from now on.
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
