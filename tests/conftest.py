"""Shared test fixtures. Importing mmpsp first makes mmseg importable on
mmcv-lite and registers every mmpsp module."""
import os
import sys
from pathlib import Path

import pytest

import mmpsp  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
# The measuring scripts are not part of the package; their tests import
# them from where they live.
sys.path.insert(0, str(REPO / 'tools' / 'analysis_tools'))
SHARED_DATA = Path(os.environ.get('MMPSP_SHARED_DATA',
                                  REPO.parent / 'shared' / 'data'))


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope='session')
def camvid_root() -> Path:
    root = SHARED_DATA / 'camvid'
    if not (root / 'images' / 'train').is_dir():
        pytest.skip(f'CamVid not found at {root} (set MMPSP_SHARED_DATA to '
                    'the folder holding camvid/)')
    return root
