"""The wheel, installed outside the clone, trains and tests a user config.

Builds mmpsp's wheel from the clone's files (tracked and new, not ignored),
installs it into a fresh virtual environment and, from a folder outside the
clone, trains a user config that inherits ``mmpsp::`` bases for 2 CPU
iterations with the installed ``mmpsp train`` and evaluates the checkpoint
with ``mmpsp test``.

So that this takes seconds and no download, the fresh environment is made
from the base interpreter without pip, the wheel is installed into it by
this environment's pip (``--no-deps``), and a ``.pth`` file then appends
this environment's site-packages (torch, mmengine, mmcv, mmseg) to its
path. Such an appended folder's own ``.pth`` files are not run, so the
editable install of the clone is not importable there: ``mmpsp`` is the
wheel's, which the test checks.
"""
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
IMG_H, IMG_W = 60, 80
USER_CONFIG = """\
_base_ = ['mmpsp::pspnet/pspnet_r18-d8_camvid-360x480.py']
crop_size = (48, 48)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(80, 60), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='mmpsp.FastRandomCrop', crop_size=crop_size,
         cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(80, 60), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(stem_channels=8, base_channels=8),
    decode_head=dict(in_channels=64, channels=8),
    auxiliary_head=dict(in_channels=32, channels=8))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=2, val_interval=2)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2,
         by_epoch=False)
]
default_hooks = dict(
    checkpoint=dict(interval=2), logger=dict(interval=1))
randomness = dict(seed=0)
"""


def _write_camvid(root: Path) -> None:
    """A tiny set in CamVid's layout: bands of sky, building and road."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 255, (12, 3))
    for split, count in (('train', 4), ('val', 2)):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(count):
            label = np.full((IMG_H, IMG_W), 3, np.uint8)
            label[:IMG_H // 3] = 0
            label[IMG_H // 3:2 * IMG_H // 3] = 1
            label[:, :6] = 11
            image = np.clip(palette[label] + rng.normal(0, 12, (
                IMG_H, IMG_W, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / 'images' / split / f'f{i}.jpg'), image)
            cv2.imwrite(str(root / 'annotations' / split / f'f{i}.png'),
                        label)


def _run(args, cwd: Path, env: dict, timeout: int = 600):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f'{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n'
        f'{result.stderr[-3000:]}')
    return result


def _clone_files(dest: Path) -> None:
    """Copy what a clone would hold (tracked and new files) to ``dest``."""
    names = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others',
         '--exclude-standard'], cwd=REPO, capture_output=True, check=True,
        timeout=60).stdout.split(b'\0')
    dest.mkdir()
    for name in filter(None, names):
        source = REPO / os.fsdecode(name)
        if source.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    if not (REPO / '.git').exists():
        pytest.skip('not a git clone: the wheel is built from its files')
    root = tmp_path_factory.mktemp('wheel')
    _clone_files(root / 'src')
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
          '--no-build-isolation', root / 'src', '-w', root / 'dist'],
         cwd=root, env=dict(os.environ))
    wheels = list((root / 'dist').glob('mmpsp-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_carries_configs_tools_and_model_index(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(p.relative_to(REPO).as_posix()
                     for p in (REPO / 'configs').rglob('*')
                     if p.is_file() and '__pycache__' not in p.parts)
    missing = [c for c in configs if f'mmpsp/.mim/{c}' not in names]
    assert not missing
    assert 'mmpsp/.mim/tools/train.py' in names
    assert 'mmpsp/.mim/model-index.yml' in names
    # Nothing but the clone's configs: openmim finds a config by file name
    # and refuses a name found twice.
    shipped = sorted(n[len('mmpsp/.mim/'):] for n in names
                     if n.startswith('mmpsp/.mim/configs/'))
    assert shipped == configs
    entry_points = zipfile.ZipFile(wheel).read(
        'mmpsp-{}.dist-info/entry_points.txt'.format(
            wheel.name.split('-')[1])).decode()
    assert 'mmpsp = mmpsp.apis.cli:main' in entry_points


def test_sdist_builds_and_carries_configs(tmp_path):
    if not (REPO / '.git').exists():
        pytest.skip('not a git clone')
    _clone_files(tmp_path / 'src')
    _run([sys.executable, 'setup.py', '-q', 'sdist', '-d', tmp_path / 'dist'],
         cwd=tmp_path / 'src', env=dict(os.environ))
    (sdist, ) = (tmp_path / 'dist').glob('mmpsp-*.tar.gz')
    names = tarfile.open(sdist).getnames()
    prefix = sdist.name[:-len('.tar.gz')]
    for name in ('configs/pspnet/metafile.yaml', 'tools/train.py',
                 'model-index.yml', 'requirements/export.txt',
                 'configs/_base_/default_runtime.py'):
        assert f'{prefix}/{name}' in names, name
    assert not [n for n in names if '/mmpsp/.mim' in n]


@pytest.mark.slow
def test_installed_wheel_trains_and_tests_from_elsewhere(wheel, tmp_path):
    venv = tmp_path / 'venv'
    base = Path(sys.base_prefix) / 'bin' / 'python3'
    if sys.base_prefix == sys.prefix or not base.exists():
        pytest.skip('needs to run inside a virtual environment')
    _run([base, '-m', 'venv', '--without-pip', venv], cwd=tmp_path,
         env=dict(os.environ))
    python = venv / 'bin' / 'python'
    _run([sys.executable, '-m', 'pip', '--python', python, 'install', '-q',
          '--no-deps', '--no-index', wheel], cwd=tmp_path,
         env=dict(os.environ))
    site = _run([python, '-c',
                 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                cwd=tmp_path, env=dict(os.environ)).stdout.strip()
    (Path(site) / 'mmpsp_test_dependencies.pth').write_text(
        sysconfig.get_paths()['purelib'] + '\n')

    user = tmp_path / 'user'
    user.mkdir()
    _write_camvid(user / 'camvid')
    (user / 'my_pspnet.py').write_text(USER_CONFIG)
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env['PATH'] = f'{venv / "bin"}{os.pathsep}{os.defpath}'

    where = _run([python, '-c', 'import mmpsp; print(mmpsp.__file__)'],
                 cwd=user, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    mmpsp = venv / 'bin' / 'mmpsp'
    train = _run([mmpsp, 'train', 'my_pspnet.py', '--work-dir', 'work',
                  '--data-root', 'camvid'], cwd=user, env=env)
    log = train.stdout + train.stderr
    assert '--data-root camvid: set train_dataloader.dataset.data_root' in log
    checkpoint = user / 'work' / 'iter_2.pth'
    assert checkpoint.is_file(), log[-3000:]
    dumped = (user / 'work' / 'my_pspnet.py').read_text()
    assert 'base_channels=8' in dumped

    test = _run([mmpsp, 'test', 'my_pspnet.py', checkpoint, '--work-dir',
                 'work_test', '--data-root', 'camvid'], cwd=user, env=env)
    metrics = test.stdout.strip().splitlines()[-1].split()
    assert metrics[0] == 'aAcc:' and metrics[2] == 'mIoU:', test.stdout
    assert 0 <= float(metrics[3]) <= 100


@pytest.mark.slow
def test_openmim_trains_and_tests_an_installed_config_by_name(wheel,
                                                              tmp_path):
    """``mim train mmpsp NAME.py`` finds the wheel's config and tools.

    openmim comes from the package index; without one the test skips.
    """
    venv = tmp_path / 'venv'
    base = Path(sys.base_prefix) / 'bin' / 'python3'
    if sys.base_prefix == sys.prefix or not base.exists():
        pytest.skip('needs to run inside a virtual environment')
    _run([base, '-m', 'venv', venv], cwd=tmp_path, env=dict(os.environ))
    python = venv / 'bin' / 'python'
    site = _run([python, '-c',
                 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                cwd=tmp_path, env=dict(os.environ)).stdout.strip()
    (Path(site) / 'mmpsp_test_dependencies.pth').write_text(
        sysconfig.get_paths()['purelib'] + '\n')
    _run([python, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index',
          wheel], cwd=tmp_path, env=dict(os.environ))
    got = subprocess.run([python, '-m', 'pip', 'install', '-q', 'openmim'],
                         cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    if got.returncode != 0:
        pytest.skip(f'openmim could not be installed: {got.stderr[-500:]}')

    user = tmp_path / 'user'
    user.mkdir()
    _write_camvid(user / 'camvid')
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env['PATH'] = f'{venv / "bin"}{os.pathsep}{os.defpath}'
    name = 'pspnet_r18-d8_camvid-360x480.py'
    mim = venv / 'bin' / 'mim'
    train = _run([
        mim, 'train', 'mmpsp', name, '--work-dir', 'work', '--data-root',
        'camvid', '--cfg-options', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'train_dataloader.batch_size=2',
        'default_hooks.checkpoint.interval=2'
    ], cwd=user, env=env)
    log = train.stdout + train.stderr
    # Found by name in the wheel, trained by the wheel's tools/train.py.
    assert f'mmpsp/.mim/configs/pspnet/{name} instead' in log
    assert 'mmpsp/.mim/tools/train.py' in log
    checkpoint = user / 'work' / 'iter_2.pth'
    assert checkpoint.is_file(), log[-3000:]
    val_miou = log.split('Iter(val)')[-1].split('mIoU:')[1].split()[0]

    test = _run([mim, 'test', 'mmpsp', name, '--checkpoint', checkpoint,
                 '--work-dir', 'work_test', '--data-root', 'camvid'],
                cwd=user, env=env)
    metrics = dict(zip(*[iter(test.stdout.split('Testing finished')[0]
                              .strip().splitlines()[-1].split())] * 2))
    # Testing the checkpoint gives what validating it gave.
    assert float(metrics['mIoU:']) == pytest.approx(float(val_miou), abs=0.01)
