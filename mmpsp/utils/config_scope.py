"""Let configs inherit mmpsp's configs as ``_base_ = 'mmpsp::...'``.

mmengine resolves ``scope::path`` only for the scopes in its table
``mmengine.config.utils.MODULE2PACKAGE`` and then reads
``<package dir>/.mim/configs/<path>``. :func:`register_config_scope` adds
``mmpsp`` to that table when mmengine's config module is imported (now, if
it already is); ``import mmpsp`` calls it, so every mmpsp entry point (the
``mmpsp`` command, ``tools/*.py``, the Python API) resolves such bases.

The table maps a scope to the name mmengine looks up with
``pkg_resources.get_distribution`` first. For an editable install that lookup
answers ``site-packages/mmpsp``, a folder that does not exist (setuptools'
editable finder serves the clone instead). The value here is therefore the
module ``mmpsp.registry``, which is no distribution's name: mmengine falls back
to ``importlib.util.find_spec`` and takes the folder of that module, which is
the imported ``mmpsp`` package both from a wheel and from a clone.

What mmengine 0.10 still cannot do, and why:

- a name after ``::`` must contain a folder (mmengine matches
  ``\\w*::\\w*/\\w*``): ``mmpsp::_base_/models/pspnet_r50-d8.py`` and
  ``mmpsp::pspnet/pspnet_r50-d8_ade20k.py`` resolve,
  ``mmpsp::pspnet_r50-d8_ade20k.py`` does not;
- ``mmpsp::`` resolves only in a process that has imported ``mmpsp`` before
  parsing the config. mmseg's unchanged ``tools/train.py`` parses the config
  first and imports ``custom_imports`` afterwards, so there a config with an
  ``mmpsp::`` base fails; run it with ``mmpsp train`` or ``tools/train.py``.
"""
import os.path as osp
import types

from .import_hooks import when_imported

SCOPE = 'mmpsp'
# A module directly inside the mmpsp package and not a distribution name: see
# the module docstring.
LOOKUP_MODULE = 'mmpsp.registry'


def _add_scope(config_utils: types.ModuleType) -> None:
    config_utils.MODULE2PACKAGE.setdefault(SCOPE, LOOKUP_MODULE)


def register_config_scope() -> None:
    """Make ``mmpsp::`` config names resolvable in this process."""
    when_imported('mmengine.config.utils', _add_scope)


def mim_dir() -> str:
    """Folder of the configs and tools that ``mmpsp::`` names resolve in.

    ``<mmpsp>/.mim``: a copy of the clone's ``configs/`` and ``tools/`` in a
    wheel; links to them in an editable install (``pip install -e .``).
    """
    return osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.mim')


def resolve_config_name(name: str) -> str:
    """Path of a config named ``mmpsp::<path>``; other names pass unchanged.

    For command lines: ``mmpsp train mmpsp::pspnet/NAME.py`` runs an installed
    config as ``Config.fromfile`` would load it as a base.

    Args:
        name (str): a config path, or ``mmpsp::<path inside configs/>``.

    Returns:
        str: a file path.
    """
    prefix = f'{SCOPE}::'
    if not name.startswith(prefix):
        return name
    return osp.join(mim_dir(), 'configs', name[len(prefix):])
