"""Checkpoints never mislead, through the real tools/train.py.

- After the weights turn non-finite, the guard names only a checkpoint
  whose weights are finite (or says there is none), and the broken state
  is not saved over it.
- ``--resume`` in a work dir whose latest checkpoint does not load resumes
  from the newest one that does, saying so; with none that loads it stops
  at the latest one, naming it, and changes nothing.
"""
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from reliability_tiny import python_tool, run_tool, tiny_config, write_camvid

from mmpsp.engine.checks.checkpoint_check import non_finite_keys
from mmpsp.engine.hooks.guard_hooks import last_finite_checkpoint

POISON_HOOK = textwrap.dedent('''
    import torch
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS


    @HOOKS.register_module()
    class PoisonAfterUpdateHook(Hook):
        """Make a weight NaN after iteration ``at``'s update: the loss of
        that iteration was finite, the next one is not."""

        # Before every other hook: to them the update itself diverged.
        priority = 'HIGHEST'

        def __init__(self, at):
            self.at = at

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            if runner.iter + 1 == self.at:
                with torch.no_grad():
                    runner.model.auxiliary_head.conv_seg.weight.fill_(
                        float('nan'))
''')


def _state(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    return write_camvid(tmp_path_factory.mktemp('ckpt') / 'camvid')


def _poisoned_config(tmp: Path, data: Path, work: Path, at: int,
                     check_weights: bool) -> Path:
    (tmp / 'poison_hook.py').write_text(POISON_HOOK)
    cfg = tiny_config(data, work, max_iters=6, interval=1)
    cfg.custom_imports = dict(imports=['poison_hook'],
                              allow_failed_imports=False)
    assert cfg.custom_hooks[0]['type'] == 'mmpsp.NonFiniteLossHook'
    cfg.custom_hooks[0]['check_weights'] = check_weights
    cfg.custom_hooks = cfg.custom_hooks + [
        dict(type='PoisonAfterUpdateHook', at=at)]
    path = tmp / f'poison_{check_weights}.py'
    cfg.dump(str(path))
    return path


@pytest.mark.slow
def test_broken_weights_are_not_saved_and_last_good_is_named(data, tmp_path):
    work = tmp_path / 'work'
    config = _poisoned_config(tmp_path, data, work, at=3, check_weights=True)
    proc = run_tool(python_tool('train.py', config),
                    env=dict(PYTHONPATH=str(tmp_path)), expect_rc=None)
    assert proc.returncode != 0
    assert 'NonFiniteWeightsError: non-finite weights after iteration 3 ' \
        '(auxiliary_head.conv_seg.weight)' in proc.out
    assert f'the last checkpoint with finite weights is {work}/iter_2.pth' \
        in proc.out
    assert f'--resume {work}/iter_2.pth' in proc.out
    # The broken state was never written; what is there is finite.
    assert sorted(p.name for p in work.glob('*.pth')) == [
        'iter_1.pth', 'iter_2.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    assert non_finite_keys(_state(work / 'iter_2.pth')['state_dict']) == []


@pytest.mark.slow
def test_nan_loss_names_a_finite_checkpoint_not_the_latest(data, tmp_path):
    """Without the weight check, iter_3.pth holds the NaN weights: the loss
    guard at iteration 4 passes over it and names iter_2.pth."""
    work = tmp_path / 'work'
    config = _poisoned_config(tmp_path, data, work, at=3,
                              check_weights=False)
    proc = run_tool(python_tool('train.py', config),
                    env=dict(PYTHONPATH=str(tmp_path)), expect_rc=None)
    assert proc.returncode != 0
    assert 'non-finite loss at iteration 4' in proc.out
    assert f'the last checkpoint with finite weights is {work}/iter_2.pth' \
        in proc.out
    assert f'{work}/iter_3.pth (non-finite auxiliary_head.conv_seg.weight)' \
        in proc.out
    assert non_finite_keys(_state(work / 'iter_3.pth')['state_dict']) == [
        'auxiliary_head.conv_seg.weight']
    assert non_finite_keys(_state(work / 'iter_2.pth')['state_dict']) == []


def test_no_finite_checkpoint_is_said(tmp_path):
    nan = {'w': torch.full((2, ), float('nan'))}
    for step in (1, 2):
        torch.save(dict(meta=dict(iter=step), state_dict=nan),
                   tmp_path / f'iter_{step}.pth')
    (tmp_path / 'iter_3.pth').write_bytes(b'PK\x03\x04 truncated')
    good, skipped = last_finite_checkpoint(str(tmp_path / 'iter_3.pth'), 4)
    assert good is None
    assert [s.split(' (')[0] for s in skipped] == [
        str(tmp_path / f'iter_{n}.pth') for n in (3, 2, 1)]
    assert 'truncated' in skipped[0] and 'non-finite w' in skipped[1]
    # A finite one further back is found.
    torch.save(dict(meta=dict(iter=1), state_dict={'w': torch.zeros(2)}),
               tmp_path / 'iter_1.pth')
    good, _ = last_finite_checkpoint(str(tmp_path / 'iter_3.pth'), 4)
    assert good == str(tmp_path / 'iter_1.pth')


@pytest.fixture(scope='module')
def trained_run(data, tmp_path_factory) -> Path:
    """A finished 4-iteration run with iter_2.pth and iter_4.pth."""
    tmp = tmp_path_factory.mktemp('run')
    config = tmp / 'tiny.py'
    tiny_config(data, tmp / 'work', max_iters=4, interval=2).dump(str(config))
    run_tool(python_tool('train.py', config))
    return tmp


def _copy_run(run: Path, dest: Path) -> Path:
    """The run's work dir copied to ``dest`` (last_checkpoint unchanged)."""
    shutil.copytree(run / 'work', dest)
    return dest


def _truncate(path: Path) -> bytes:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path.read_bytes()


@pytest.mark.slow
def test_resume_skips_truncated_latest(trained_run, tmp_path):
    work = _copy_run(trained_run, tmp_path / 'work')
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    _truncate(work / 'iter_4.pth')
    good = (work / 'iter_2.pth').read_bytes()
    proc = run_tool(python_tool('train.py', trained_run / 'tiny.py',
                                '--work-dir', work, '--resume'))
    out = proc.out
    assert 'SkippedCheckpointWarning: --resume: passed over 1 ' \
        f'checkpoint(s) that do not load: {work}/iter_4.pth (it is ' \
        'truncated or corrupted' in out
    assert f'Resuming from {work}/iter_2.pth, the newest one that loads' \
        in out
    assert 'resumed epoch: 0, iter: 2' in out
    assert (work / 'iter_2.pth').read_bytes() == good
    # The run finished and its last checkpoint loads again.
    assert _state(work / 'iter_4.pth')['meta']['iter'] == 4


@pytest.mark.slow
def test_resume_of_a_moved_work_dir(trained_run, tmp_path):
    """last_checkpoint names the old folder, which is gone."""
    work = _copy_run(trained_run, tmp_path / 'moved')
    gone = tmp_path / 'old' / 'iter_4.pth'
    (work / 'last_checkpoint').write_text(str(gone))
    proc = run_tool(python_tool('train.py', trained_run / 'tiny.py',
                                '--work-dir', work, '--resume'))
    assert f'{gone} (no such file)' in proc.out
    assert f'Resuming from {work}/iter_4.pth' in proc.out
    assert 'resumed epoch: 0, iter: 4' in proc.out


@pytest.mark.slow
def test_resume_with_nothing_loadable_stops_and_changes_nothing(
        trained_run, tmp_path):
    work = _copy_run(trained_run, tmp_path / 'work')
    (work / 'last_checkpoint').write_text(str(work / 'iter_4.pth'))
    before = {p.name: _truncate(p) for p in work.glob('*.pth')}
    proc = run_tool(python_tool('train.py', trained_run / 'tiny.py',
                                '--work-dir', work, '--resume'),
                    expect_rc=None)
    assert proc.returncode != 0
    assert f'UnreadableCheckpointError: cannot load checkpoint ' \
        f'{work}/iter_4.pth: it is truncated or corrupted' in proc.out
    assert 'download or copy the file again' in proc.out
    assert {p.name: p.read_bytes() for p in work.glob('*.pth')} == before
