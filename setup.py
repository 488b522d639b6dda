"""Install mmpsp: ``pip install .`` (wheel) or ``pip install -e .`` (clone).

mmcv: ``mmcv-lite`` by default (pure Python, installs in seconds); with
``MMPSP_MMCV=full`` in the environment the install asks for full ``mmcv``
instead. Both packages install the ``mmcv`` module, so one install holds one
of them (README, "Install choices").

OpenMMLab layout: the wheel carries ``configs/``, ``tools/`` and
``model-index.yml`` under ``mmpsp/.mim/`` (as mmseg's wheel does), where
``_base_ = 'mmpsp::...'`` and openmim find them. An editable install links
``mmpsp/.mim`` to the clone's files instead, so edits show at once.
"""
import os
import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent.resolve()
MMCV_CHOICES = {'lite': 'mmcv', 'full': 'mmcv_full'}


def read_requirements(name: str) -> list:
    """Requirements of ``requirements/<name>.txt``, ``-r`` files included."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    requirements = []
    for line in map(str.strip, lines):
        if line.startswith('-r '):
            requirements += read_requirements(Path(line[3:].strip()).stem)
        elif line and not line.startswith('#'):
            requirements.append(line)
    return requirements


def mmcv_requirements() -> list:
    choice = os.environ.get('MMPSP_MMCV', 'lite')
    if choice not in MMCV_CHOICES:
        raise SystemExit(
            f'MMPSP_MMCV={choice!r}: expected one of '
            f'{sorted(MMCV_CHOICES)} (lite: mmcv-lite, the default; full: '
            'mmcv with compiled ops)')
    return read_requirements(MMCV_CHOICES[choice])


def read_version() -> str:
    text = (HERE / 'mmpsp' / '__init__.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


def _place(src: Path, dst: Path, link: bool) -> None:
    """Copy ``src`` (file or folder) to ``dst``, or link it relatively."""
    if link:
        dst.symlink_to(os.path.relpath(src, dst.parent),
                       target_is_directory=src.is_dir())
    elif src.is_dir():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
            '__pycache__', '*.py[cod]'))
    else:
        shutil.copy2(src, dst)


def write_mim_tree(root: Path, mim: Path, link: bool) -> None:
    """Fill ``mim`` with ``root``'s configs, tools and model index.

    Links (``link=True``, editable installs) or copies (wheels).
    """
    if mim.is_symlink() or mim.is_file():
        mim.unlink()
    elif mim.exists():
        shutil.rmtree(mim)
    mim.mkdir(parents=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        _place(root / name, mim / name, link)


class BuildPy(build_py):
    """build_py that also writes ``mmpsp/.mim`` (copies, or links if editable).
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            write_mim_tree(HERE, HERE / 'mmpsp' / '.mim', link=True)
        else:
            write_mim_tree(HERE, Path(self.build_lib) / 'mmpsp' / '.mim',
                           link=False)


setup(
    name='mmpsp',
    version=read_version(),
    description='PSPNet (pyramid scene parsing network) for MMSegmentation',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=False,
    cmdclass={'build_py': BuildPy},
    install_requires=read_requirements('runtime') + mmcv_requirements(),
    extras_require={
        'export': read_requirements('export'),
        'tests': read_requirements('tests'),
    },
    entry_points={
        'console_scripts': ['mmpsp = mmpsp.apis.cli:main'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.10',
        'Programming Language :: Python :: 3.11',
        'Programming Language :: Python :: 3.12',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
)
