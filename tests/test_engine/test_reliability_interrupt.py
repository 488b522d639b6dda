"""Ctrl-C during validation ends tools/train.py promptly and leaves a
loadable last checkpoint, no lock, and a run that ``--resume`` continues."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from reliability_tiny import (
    REPO,
    python_tool,
    run_tool,
    tiny_config,
    write_camvid,
)

from mmpsp.apis.work_dir import LOCK_NAME
from mmpsp.engine.checks.checkpoint_check import non_finite_keys

SLOW_VAL_HOOK = textwrap.dedent('''
    import time
    from pathlib import Path
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS


    @HOOKS.register_module()
    class SlowValHook(Hook):
        """Marks that validation started, then makes it last."""

        def __init__(self, marker):
            self.marker = marker

        def before_val_iter(self, runner, batch_idx, data_batch=None):
            Path(self.marker).touch()
            time.sleep(2)
''')


def _sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_validation(tmp_path):
    data = write_camvid(tmp_path / 'camvid')
    (tmp_path / 'slow_val_hook.py').write_text(SLOW_VAL_HOOK)
    marker = tmp_path / 'validating'
    work = tmp_path / 'work'
    cfg = tiny_config(data, work, max_iters=4, interval=2)
    cfg.train_cfg.val_interval = 2
    cfg.custom_imports = dict(imports=['slow_val_hook'],
                              allow_failed_imports=False)
    cfg.custom_hooks = cfg.custom_hooks + [
        dict(type='SlowValHook', marker=str(marker))]
    config = tmp_path / 'slow_val.py'
    cfg.dump(str(config))
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', str(config)], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(tmp_path), OMP_NUM_THREADS='1'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # As in a terminal: a shell without job control starts background
        # jobs with SIGINT ignored, and Python then never raises
        # KeyboardInterrupt; the user's Ctrl-C reaches a default handler.
        preexec_fn=_sigint_as_in_a_terminal)
    try:
        start = time.monotonic()
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[0][-3000:]
            assert time.monotonic() - start < 180, 'validation never began'
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0
    assert 'KeyboardInterrupt' in out
    assert took < 30, f'{took:.1f} s to stop after Ctrl-C'
    # The checkpoint written before validation is whole and finite, and
    # last_checkpoint names it; the work dir is free again.
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
    state = torch.load(work / 'iter_2.pth', map_location='cpu',
                       weights_only=True)
    assert state['meta']['iter'] == 2
    assert non_finite_keys(state['state_dict']) == []
    assert not (work / LOCK_NAME).exists()
    assert not list(work.glob('.*.tmp'))
    resumed = run_tool(python_tool('train.py', config, '--resume'),
                       env=dict(PYTHONPATH=str(tmp_path)))
    assert 'resumed epoch: 0, iter: 2' in resumed.out
    assert torch.load(work / 'iter_4.pth', map_location='cpu',
                      weights_only=True)['meta']['iter'] == 4
