"""User mistakes at the entry points end in an error naming the key or path
and the fix, never a traceback from inside mmengine or torch, and leave the
work dir as it was.

Every case runs the real tools/train.py or tools/test.py in a subprocess on
the tiny CamVid-layout data.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from reliability_tiny import (
    REPO,
    python_tool,
    run_tool,
    tiny_config,
    tiny_config_file,
    write_camvid,
)

from mmpsp.apis.work_dir import LOCK_NAME


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('user')
    data = write_camvid(tmp / 'camvid')
    config = tiny_config_file(tmp / 'tiny.py', data, tmp / 'unused')
    return dict(tmp=tmp, data=data, config=config)


def _written(work: Path) -> list:
    return sorted(str(p.relative_to(work)) for p in work.rglob('*')
                  if p.is_file()) if work.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
@pytest.mark.parametrize('option, expected', [
    ('model.decode_head.pool_scale=(1,2)',
     "model.decode_head.pool_scale: PSPHead takes no argument 'pool_scale'; "
     "did you mean 'pool_scales'"),
    ('train_dataloader.dataset.pipeline.3.crop_sise=(8,8)',
     'train_dataloader.dataset.pipeline[3].crop_sise: FastRandomCrop takes '
     "no argument 'crop_sise'; did you mean 'crop_size'?"),
    ('test_dataloader.dataset.img_sufix=.jpg',
     "test_dataloader.dataset.img_sufix: CamVidDataset takes no argument "
     "'img_sufix'; did you mean 'img_suffix'"),
    ('model.backbone.type=ResNetV1x',
     "model.backbone.type='ResNetV1x' is not a registered model; did you "
     "mean 'ResNetV1d' or 'ResNetV1c'"),
])
def test_unknown_key_or_type_is_named(tool, option, expected, setup,
                                      tmp_path):
    if tool == 'test.py' and option.startswith('train_'):
        pytest.skip('testing reads only the test split')
    work = tmp_path / 'work'
    checkpoint = tmp_path / 'any.pth'
    checkpoint.write_bytes(b'')  # never read: the config is refused first
    args = ([checkpoint] if tool == 'test.py' else []) + [
        '--work-dir', work, '--cfg-options', option]
    proc = run_tool(python_tool(tool, setup['config'], *args),
                    expect_rc=None)
    assert proc.returncode != 0
    assert expected in proc.out
    assert f'unknown keys in the config ({setup["config"]})' in proc.out
    assert 'Rename or remove them' in proc.out
    assert 'unexpected keyword argument' not in proc.out
    assert _written(work) == []


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['train.py', 'test.py', 'check_dataset.py'])
def test_cfg_option_without_value(tool, setup, tmp_path):
    extra = [tmp_path / 'x.pth'] if tool == 'test.py' else []
    proc = run_tool(python_tool(tool, setup['config'], *extra,
                                '--cfg-options', 'train_cfg.max_iters'),
                    expect_rc=2)
    assert "argument --cfg-options: 'train_cfg.max_iters' is not " \
        'KEY=VALUE; write e.g. train_cfg.max_iters=1000' in proc.out
    assert 'Traceback' not in proc.out


@pytest.mark.slow
def test_config_that_does_not_parse(setup, tmp_path):
    base = tmp_path / 'base.py'
    base.write_text(setup['config'].read_text().replace(
        'crop_size = (', 'crop_size = ((', 1))
    child = tmp_path / 'child.py'
    child.write_text("_base_ = './base.py'\nrandomness = dict(seed=1)\n")
    lines = base.read_text().splitlines()
    opened = next(i for i, line in enumerate(lines, 1)
                  if line.startswith('crop_size = (('))
    proc = run_tool(python_tool('train.py', child), expect_rc=None)
    assert proc.returncode != 0
    out = proc.out
    assert f'mmpsp train: error: ConfigParseError: config {base}:' in out
    assert 'Traceback' not in out
    assert f'{base} is not valid Python; fix line' in out
    assert f'which {child} inherits through _base_' in out
    assert f"'(' on line {opened}" in out or f'line {opened}' in out
    assert out.count('is not valid Python') == 1
    assert '<unknown>' not in out


@pytest.mark.slow
def test_work_dir_that_is_a_file(setup, tmp_path):
    work = tmp_path / 'work'
    work.write_text('notes')
    proc = run_tool(python_tool('train.py', setup['config'], '--work-dir',
                                work), expect_rc=None)
    assert proc.returncode != 0
    assert f'WorkDirError: work_dir {work} (resolved: {work}) is a file, ' \
        'not a folder; pass another --work-dir' in proc.out
    assert 'FileExistsError' not in proc.out
    assert work.read_text() == 'notes'


@pytest.mark.skipif(os.name != 'posix' or os.geteuid() == 0,
                    reason='root writes into read-only folders')
def test_read_only_work_dir(setup, tmp_path):
    parent = tmp_path / 'ro'
    parent.mkdir()
    parent.chmod(0o555)
    try:
        proc = run_tool(python_tool('train.py', setup['config'],
                                    '--work-dir', parent / 'work'),
                        expect_rc=None)
    finally:
        parent.chmod(0o755)
    assert proc.returncode != 0
    assert f'cannot be written: {parent} is read-only' in proc.out


SLOW_HOOK = textwrap.dedent('''
    import time
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS


    @HOOKS.register_module()
    class SlowIterHook(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            time.sleep(0.5)
''')


def _wait_for(condition, proc, timeout=120) -> None:
    start = time.monotonic()
    while not condition():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() - start < timeout, 'timed out'
        time.sleep(0.2)


@pytest.mark.slow
def test_second_run_in_a_work_dir_is_refused(setup, tmp_path):
    (tmp_path / 'slow_hook.py').write_text(SLOW_HOOK)
    work = tmp_path / 'work'
    cfg = tiny_config(setup['data'], work, max_iters=200, interval=2)
    cfg.custom_imports = dict(imports=['slow_hook'],
                              allow_failed_imports=False)
    cfg.custom_hooks = cfg.custom_hooks + [dict(type='SlowIterHook')]
    slow = tmp_path / 'slow.py'
    cfg.dump(str(slow))
    first = subprocess.Popen(
        [sys.executable, 'tools/train.py', str(slow)], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(tmp_path), OMP_NUM_THREADS='1'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: (work / 'iter_2.pth').is_file(), first)
        assert (work / LOCK_NAME).is_file()
        before = {p.name: p.stat().st_mtime_ns for p in work.glob('*.pth')}
        second = run_tool(python_tool('train.py', setup['config'],
                                      '--work-dir', work), expect_rc=None)
        assert second.returncode != 0
        assert f'WorkDirBusyError: work_dir {work} is in use by another ' \
            f'training run: pid {first.pid} on' in second.out
        assert f'with {slow}' in second.out
        assert f'stop it (kill {first.pid})' in second.out
        assert 'pass another --work-dir' in second.out
        # The second run wrote nothing; the first one goes on.
        after = {p.name: p.stat().st_mtime_ns for p in work.glob('*.pth')}
        assert {k: after[k] for k in before} == before
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # Killed: the lock is left behind, its pid is gone; --resume takes it
    # over and continues the run.
    assert (work / LOCK_NAME).is_file()
    resumed = run_tool(python_tool(
        'train.py', setup['config'], '--work-dir', work, '--resume',
        '--cfg-options', 'train_cfg.max_iters=4', 'param_scheduler.0.end=4'))
    assert f'StaleLockWarning: taking over the lock {work / LOCK_NAME} ' \
        f'of a run that no longer runs (pid {first.pid}' in resumed.out
    assert not (work / LOCK_NAME).exists()  # released at the end
