"""One rank of a 2-process CPU job killed with SIGKILL: the job ends
promptly, the last checkpoint loads, and ``--resume`` takes over the lock
the killed job left and continues."""
import os
import signal
import socket
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

PID_HOOK = textwrap.dedent('''
    import os
    import time
    from pathlib import Path
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS


    @HOOKS.register_module()
    class PidFileHook(Hook):
        """Each rank writes its pid; iterations are slowed down."""

        def __init__(self, out_dir):
            self.out_dir = out_dir

        def before_train(self, runner):
            rank = os.environ.get('RANK', '0')
            Path(self.out_dir, f'rank{rank}.pid').write_text(str(os.getpid()))

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            time.sleep(0.5)
''')


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(),
                    reason='torch.distributed missing')
def test_killed_rank_ends_the_job_and_resume_continues(tmp_path):
    data = write_camvid(tmp_path / 'camvid')
    (tmp_path / 'pid_hook.py').write_text(PID_HOOK)
    work = tmp_path / 'work'
    cfg = tiny_config(data, work, max_iters=200, interval=2)
    cfg.custom_imports = dict(imports=['pid_hook'],
                              allow_failed_imports=False)
    cfg.custom_hooks = cfg.custom_hooks + [
        dict(type='PidFileHook', out_dir=str(tmp_path))]
    config = tmp_path / 'slow.py'
    cfg.dump(str(config))
    job = subprocess.Popen(
        ['bash', 'tools/dist_train.sh', str(config), '2'], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(tmp_path), OMP_NUM_THREADS='1',
                 PYTHON=sys.executable, PORT=_free_port()),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        start = time.monotonic()
        while not ((work / 'iter_2.pth').is_file()
                   and (tmp_path / 'rank1.pid').is_file()):
            assert job.poll() is None, job.communicate()[0][-3000:]
            assert time.monotonic() - start < 300, 'no checkpoint written'
            time.sleep(0.2)
        os.kill(int((tmp_path / 'rank1.pid').read_text()), signal.SIGKILL)
        killed = time.monotonic()
        out, _ = job.communicate(timeout=120)
        took = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode != 0
    assert took < 60, f'{took:.0f} s for the job to end'
    assert 'Signal 9' in out or 'SIGKILL' in out, out[-3000:]
    latest = (work / 'last_checkpoint').read_text()
    state = torch.load(latest, map_location='cpu', weights_only=True)
    assert state['meta']['iter'] >= 2
    # torchrun ends rank 0 with SIGTERM, which skips atexit: its lock
    # stays (measured here), with a pid that no longer runs.
    left_lock = (work / LOCK_NAME).is_file()
    resumed = run_tool(python_tool(
        'train.py', config, '--resume', '--cfg-options',
        f'train_cfg.max_iters={state["meta"]["iter"] + 2}'),
        env=dict(PYTHONPATH=str(tmp_path)))
    assert left_lock == ('StaleLockWarning: taking over the lock'
                         in resumed.out)
    assert f'resumed epoch: 0, iter: {state["meta"]["iter"]}' in resumed.out
    assert not (work / LOCK_NAME).exists()
