"""Kill-and-resume: a tools/train.py run killed right after its iteration-2
checkpoint and resumed with ``--resume`` ends where an uninterrupted run
ends: same iteration, bit-identical weights and optimizer state.

The CamVid config keeps its dropout (0.1 in both heads), so the resumed run
only matches if torch's random stream is the same after the restart
(mmpsp.engine.IterationSeedHook), not only the data order.
"""
import sys
import textwrap

import pytest
import torch
from data_factories import (
    REPO,
    TOOLS,
    run_tool,
    tiny_config_file,
    write_camvid,
)

pytestmark = pytest.mark.slow
BENCHMARK = REPO / 'tools' / 'analysis_tools' / 'benchmark.py'

KILL_HOOK = textwrap.dedent('''
    import os

    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS


    @HOOKS.register_module()
    class KillAfterIterHook(Hook):
        """Kill the process (no cleanup) once iteration ``at`` is done and
        checkpointed: runs after CheckpointHook."""

        priority = 'LOWEST'

        def __init__(self, at):
            self.at = at

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            if runner.iter + 1 == self.at:
                os._exit(137)
''')


def test_killed_then_resumed_run_matches_uninterrupted(tmp_path):
    data = write_camvid(tmp_path / 'camvid')
    (tmp_path / 'kill_hook.py').write_text(KILL_HOOK)
    common = dict(max_iters=4, interval=2)
    ref_dir, work_dir = tmp_path / 'ref', tmp_path / 'killed'
    plain = tiny_config_file(tmp_path / 'tiny.py', data, ref_dir, **common)
    killing = tiny_config_file(
        tmp_path / 'tiny_kill.py', data, work_dir,
        custom_imports=['kill_hook'],
        custom_hooks=[dict(type='KillAfterIterHook', at=2)], **common)
    deterministic = ['--cfg-options', 'randomness.deterministic=True']

    run_tool([sys.executable, TOOLS / 'train.py', plain, *deterministic])

    env = dict(PYTHONPATH=str(tmp_path))
    run_tool([sys.executable, TOOLS / 'train.py', killing, *deterministic],
             env=env, expect_rc=137)
    assert (work_dir / 'iter_2.pth').is_file()
    assert not (work_dir / 'iter_4.pth').exists()

    out = run_tool([
        sys.executable, TOOLS / 'train.py', plain, '--work-dir', work_dir,
        '--resume', *deterministic
    ])
    assert f'latest checkpoint in {work_dir} is {work_dir}/iter_2.pth' in out
    assert 'resumed epoch: 0, iter: 2' in out
    assert 'Advance dataloader 2 steps' in out
    assert 'Iter(train) [1/4]' not in out and 'Iter(train) [4/4]' in out

    ref = torch.load(str(ref_dir / 'iter_4.pth'), map_location='cpu')
    resumed = torch.load(str(work_dir / 'iter_4.pth'), map_location='cpu')
    assert ref['meta']['iter'] == resumed['meta']['iter'] == 4
    assert ref['state_dict'].keys() == resumed['state_dict'].keys()
    for key, value in ref['state_dict'].items():
        assert torch.equal(resumed['state_dict'][key], value), key
    ref_momentum = ref['optimizer']['state']
    resumed_momentum = resumed['optimizer']['state']
    assert ref_momentum.keys() == resumed_momentum.keys()
    for key, value in ref_momentum.items():
        assert torch.equal(resumed_momentum[key]['momentum_buffer'],
                           value['momentum_buffer']), key
    # Training moved the weights: the comparison is not between two
    # untouched initialisations.
    start = torch.load(str(work_dir / 'iter_2.pth'), map_location='cpu')
    assert not torch.equal(start['state_dict']['decode_head.conv_seg.weight'],
                           ref['state_dict']['decode_head.conv_seg.weight'])


def test_channels_last_run_starts_from_the_same_weights(tmp_path):
    """The layout is applied after weight init: with the same seed, a run
    with channels_last and one without train the same initial weights, so
    after one step they agree to rounding (not merely in distribution)."""
    data = write_camvid(tmp_path / 'camvid')
    config = tiny_config_file(tmp_path / 'tiny.py', data, tmp_path / 'x',
                              max_iters=1, interval=1)
    weights = {}
    for flag in ('--channels-last', '--no-channels-last'):
        work_dir = tmp_path / flag.strip('-')
        out = run_tool([sys.executable, TOOLS / 'train.py', config,
                        '--work-dir', work_dir, flag])
        assert (f"channels_last={flag == '--channels-last'}") in out
        weights[flag] = torch.load(str(work_dir / 'iter_1.pth'),
                                   map_location='cpu')['state_dict']
    on, off = weights['--channels-last'], weights['--no-channels-last']
    conv = on['backbone.stem.0.weight']
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not off['backbone.stem.0.weight'].is_contiguous(
        memory_format=torch.channels_last)
    for key, value in off.items():
        torch.testing.assert_close(on[key], value, rtol=1e-4, atol=1e-5,
                                   msg=key)


def test_end_to_end_runs_side_by_side(tmp_path):
    """tools/reproduce_speed.sh's CamVid pair on tiny data: mmpsp's model and
    mmseg's (its backbone and heads swapped into the same config) train, and
    ``benchmark.py --log`` reads both runs' iteration time and mIoU."""
    data = write_camvid(tmp_path / 'camvid')
    config = tiny_config_file(tmp_path / 'tiny.py', data, tmp_path / 'x',
                              max_iters=4, interval=4)
    mmseg_model = ['model.backbone.type=mmseg.ResNetV1c',
                   'model.decode_head.type=mmseg.PSPHead',
                   'model.auxiliary_head.type=mmseg.FCNHead']
    runs = {'mmseg': tmp_path / 'mmseg', 'mmpsp': tmp_path / 'mmpsp'}
    run_tool([sys.executable, TOOLS / 'train.py', config, '--work-dir',
              runs['mmseg'], '--no-channels-last', '--cfg-options',
              *mmseg_model])
    run_tool([sys.executable, TOOLS / 'train.py', config, '--work-dir',
              runs['mmpsp']])
    state = torch.load(str(runs['mmseg'] / 'iter_4.pth'), map_location='cpu')
    # mmseg's heads are in the checkpoint: same keys as mmpsp's.
    ours = torch.load(str(runs['mmpsp'] / 'iter_4.pth'), map_location='cpu')
    assert state['state_dict'].keys() == ours['state_dict'].keys()
    out = run_tool([sys.executable, BENCHMARK, '--log',
                    runs['mmseg'], runs['mmpsp'], '--skip-iters', '1'])
    rows = [line for line in out.splitlines() if line.startswith('| /')]
    assert len(rows) == 2, out
    for line, name in zip(rows, runs):
        cells = [c.strip() for c in line.strip('|').split('|')]
        assert cells[0] == str(runs[name]) and cells[1] == '4'
        assert float(cells[2]) > 0 and float(cells[3]) >= 0
        assert 0 <= float(cells[5]) <= 100
    assert rows[0].split('|')[5].strip() == '1.00x'
