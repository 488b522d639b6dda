"""Two-process CPU training validates what it saves.

On CPU mmpsp trains with plain BN (SyncBN needs CUDA), so each rank's BN
running statistics follow its own batches, and DDP copies rank 0's only at
the start of each training forward. Validation then scored each rank's half
of the val set with that rank's statistics, while the checkpoint holds rank
0's: the val mIoU logged during training differed from testing the saved
checkpoint. ``RankZeroBuffersHook`` (declared in the runtime) broadcasts
rank 0's buffers before validation; the two then agree exactly.
"""
import re
import socket
from pathlib import Path

import pytest
import torch
from reliability_tiny import python_tool, run_tool, tiny_config, write_camvid

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason='torch.distributed missing')


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _val_then_test(tmp: Path, data: Path, name: str, keep_hook: bool):
    """(val mIoU logged at iteration 4 by 2 ranks, tools/test.py mIoU)."""
    work = tmp / name
    cfg = tiny_config(data, work, max_iters=4, interval=4)
    # Fixed order: both runs see the same batches.
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=False)
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert 'mmpsp.RankZeroBuffersHook' in hooks
    if not keep_hook:
        cfg.custom_hooks = [h for h in cfg.custom_hooks
                            if h['type'] != 'mmpsp.RankZeroBuffersHook']
    config = tmp / f'{name}.py'
    cfg.dump(str(config))
    train = run_tool(['bash', 'tools/dist_train.sh', config, '2'],
                     env=dict(PORT=_free_port()), timeout=400)
    val = re.findall(r'Iter\(val\) \[\d+/\d+\].*?mIoU: ([\d.]+)', train.out)
    assert len(val) == 1, train.out[-3000:]
    test = run_tool(python_tool('test.py', config, work / 'iter_4.pth',
                                '--work-dir', tmp / f'{name}_test'))
    tested = re.findall(r'^aAcc: [\d.]+ mIoU: ([\d.]+)', test.out, re.M)
    assert tested, test.out[-3000:]
    return float(val[0]), float(tested[-1])


@pytest.mark.slow
def test_two_process_val_matches_testing_the_checkpoint(tmp_path):
    data = write_camvid(tmp_path / 'camvid', n_train=8, n_val=4)
    val, tested = _val_then_test(tmp_path, data, 'synced', keep_hook=True)
    assert val == tested
    # Without the hook the same run logs another figure: the test above
    # can fail.
    val_off, tested_off = _val_then_test(tmp_path, data, 'unsynced',
                                         keep_hook=False)
    assert tested_off == tested  # same weights and statistics saved
    assert val_off != tested_off


def test_single_process_is_unchanged():
    from types import SimpleNamespace

    from mmpsp.engine.hooks import RankZeroBuffersHook
    model = torch.nn.BatchNorm2d(2)
    model.running_mean.fill_(3.)
    RankZeroBuffersHook().before_val_epoch(SimpleNamespace(model=model))
    assert torch.equal(model.running_mean, torch.full((2, ), 3.))
