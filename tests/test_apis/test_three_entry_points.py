"""One config, one run, whichever entry point starts it.

The same tiny CamVid config trains a few iterations on CPU through mmpsp's
``tools/train.py``, mmseg's own unchanged ``tools/train.py`` (from the
installed mmseg) and the Python API (``build_train_config`` +
``run_train``). The final weights are equal, and so is the list of hooks each
Runner ran. The same for a test run: the metrics and the hooks are equal.

Each run is a fresh process, so that the three differ only in their entry
point. The config is machine-neutral (no workers, so no persistent workers),
which is what lets mmseg's script, which adapts nothing, run it; SyncBN is
left in, as the config declares it: mmpsp's entry points turn it into BN
before building the model, mmengine's Runner reverts it after.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mmseg
import pytest
import torch
from data_factories import REPO, TOOLS, tiny_config_file, write_camvid

pytestmark = pytest.mark.slow

MMSEG_TOOLS = Path(mmseg.__file__).parent / '.mim' / 'tools'
ITERS = 3

RECORDER = textwrap.dedent('''
    """Writes the hooks a Runner runs and the test metrics to its work dir."""
    import json
    import os.path as osp

    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS


    @HOOKS.register_module()
    class RecordRunHook(Hook):
        priority = 'LOWEST'

        def _write(self, runner, name, value):
            with open(osp.join(runner.work_dir, name), 'w') as f:
                json.dump(value, f)

        def before_run(self, runner):
            self._write(runner, 'hooks.json', [
                [type(h).__name__, h.priority] for h in runner.hooks
            ])

        def after_test_epoch(self, runner, metrics=None):
            self._write(runner, 'metrics.json',
                        {k: float(v) for k, v in metrics.items()})
''')

API_TRAIN = textwrap.dedent('''
    import sys

    from mmpsp.apis import build_train_config, run_train

    run_train(build_train_config(sys.argv[1], work_dir=sys.argv[2]))
''')

API_TEST = textwrap.dedent('''
    import sys

    from mmpsp.apis import build_test_config, run_test

    run_test(build_test_config(sys.argv[1], sys.argv[2], work_dir=sys.argv[3]))
''')


def run(args, tmp_path: Path) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([str(a) for a in args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def final_weights(work_dir: Path) -> dict:
    checkpoint = torch.load(
        str(work_dir / f'iter_{ITERS}.pth'), map_location='cpu')
    return checkpoint['state_dict']


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('three')
    (tmp / 'record_run.py').write_text(RECORDER)
    (tmp / 'api_train.py').write_text(API_TRAIN)
    (tmp / 'api_test.py').write_text(API_TEST)
    data = write_camvid(tmp / 'camvid')
    config = tiny_config_file(
        tmp / 'tiny.py', data, tmp / 'unused', max_iters=ITERS,
        interval=ITERS, custom_imports=['record_run'],
        custom_hooks=[dict(type='RecordRunHook')])
    text = config.read_text()
    assert 'persistent_workers=True' in text
    config.write_text(text.replace('persistent_workers=True',
                                   'persistent_workers=False'))
    return tmp, config


@pytest.fixture(scope='module')
def trained(setup):
    tmp, config = setup
    works = {name: tmp / f'train_{name}' for name in ('mmpsp', 'mmseg', 'api')}
    run([sys.executable, TOOLS / 'train.py', config, '--work-dir',
         works['mmpsp']], tmp)
    run([sys.executable, MMSEG_TOOLS / 'train.py', config, '--work-dir',
         works['mmseg']], tmp)
    run([sys.executable, tmp / 'api_train.py', config, works['api']], tmp)
    return works


def test_three_ways_train_to_equal_weights(trained):
    expected = final_weights(trained['mmpsp'])
    assert len(expected) > 100
    for name in ('mmseg', 'api'):
        got = final_weights(trained[name])
        assert got.keys() == expected.keys(), name
        for key, value in expected.items():
            assert torch.equal(got[key], value), f'{name}: {key}'


def test_three_ways_run_the_same_hooks(trained):
    hooks = {
        name: json.loads((work / 'hooks.json').read_text())
        for name, work in trained.items()
    }
    names = [h[0] for h in hooks['mmpsp']]
    # The declared ones, from configs/_base_: none added by code.
    for declared in ('AtomicCheckpointHook', 'NonFiniteLossHook',
                     'LabelRangeHook', 'IterationSeedHook',
                     'SpeedLeversHook', 'CheckpointCheckHook',
                     'RankZeroBuffersHook', 'RecordRunHook'):
        assert declared in names
    assert 'CheckpointHook' not in names
    assert hooks['mmseg'] == hooks['mmpsp']
    assert hooks['api'] == hooks['mmpsp']


def test_three_ways_test_to_equal_metrics_and_hooks(setup, trained):
    tmp, config = setup
    checkpoint = trained['mmpsp'] / f'iter_{ITERS}.pth'
    works = {name: tmp / f'test_{name}' for name in ('mmpsp', 'mmseg', 'api')}
    run([sys.executable, TOOLS / 'test.py', config, checkpoint,
         '--work-dir', works['mmpsp']], tmp)
    run([sys.executable, MMSEG_TOOLS / 'test.py', config, checkpoint,
         '--work-dir', works['mmseg']], tmp)
    run([sys.executable, tmp / 'api_test.py', config, checkpoint,
         works['api']], tmp)
    metrics = {
        name: json.loads((work / 'metrics.json').read_text())
        for name, work in works.items()
    }
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(metrics['mmpsp'])
    assert metrics['mmseg'] == metrics['mmpsp']
    assert metrics['api'] == metrics['mmpsp']
    hooks = {
        name: json.loads((work / 'hooks.json').read_text())
        for name, work in works.items()
    }
    assert 'CheckpointCheckHook' in [h[0] for h in hooks['mmpsp']]
    assert hooks['mmseg'] == hooks['mmpsp']
    assert hooks['api'] == hooks['mmpsp']
