"""Install mmpsp: ``pip install -e .`` (see README for the mmcv choice)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt``, comments dropped."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [
        line.strip() for line in lines
        if line.strip() and not line.startswith(('#', '-'))
    ]


def read_version() -> str:
    text = (HERE / 'mmpsp' / '__init__.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


setup(
    name='mmpsp',
    version=read_version(),
    description='PSPNet (pyramid scene parsing network) for MMSegmentation',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    install_requires=read_requirements('runtime'),
    extras_require={
        # mmcv-lite and full mmcv both install the `mmcv` package: choose one.
        'lite': read_requirements('mmcv'),
        'full': ['mmcv>=2.0.0,<2.2.0'],
        'tests': read_requirements('tests'),
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
)
