"""Two processes on CPU (gloo): tools/dist_train.sh trains with DDP and both
ranks end with the same weights; tools/slurm_test.sh (under a stand-in
``srun``/``scontrol`` that starts the tasks the way Slurm does) evaluates
the checkpoint on 2 ranks to the same metrics as one process.
"""
import hashlib
import json
import os
import socket
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from data_factories import (
    TOOLS,
    metrics_of,
    run_tool,
    tiny_config_file,
    write_camvid,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not torch.distributed.is_available(),
                       reason='torch.distributed missing'),
]

RANK_STATE_HOOK = textwrap.dedent('''
    import hashlib
    import json
    import os

    import torch.distributed as dist
    from mmengine.hooks import Hook
    from mmengine.model import is_model_wrapper
    from mmengine.registry import HOOKS


    @HOOKS.register_module()
    class RankStateHook(Hook):
        """Each rank writes what it trained: a hash of its parameters."""

        def __init__(self, out_dir):
            self.out_dir = out_dir

        def after_train(self, runner):
            model = runner.model
            module = model.module if is_model_wrapper(model) else model
            digest = hashlib.sha256()
            for name, param in sorted(module.named_parameters()):
                digest.update(name.encode())
                digest.update(param.detach().cpu().numpy().tobytes())
            state = dict(
                rank=dist.get_rank(), world_size=dist.get_world_size(),
                backend=dist.get_backend(), wrapper=type(model).__name__,
                iter=runner.iter, params_sha256=digest.hexdigest())
            path = os.path.join(self.out_dir, f'rank{state["rank"]}.json')
            with open(path, 'w') as f:
                json.dump(state, f)
''')

FAKE_SRUN = textwrap.dedent('''\
    #!{python}
    """Start --ntasks copies of the command with Slurm's task variables."""
    import os
    import subprocess
    import sys

    args = sys.argv[1:]
    with open(os.environ['SRUN_LOG'], 'w') as f:
        f.write(' '.join(args))
    ntasks, i = 1, 0
    while args[i].startswith('-'):
        if args[i].startswith('--ntasks='):
            ntasks = int(args[i].split('=')[1])
        i += 2 if args[i] == '-p' else 1
    procs = [
        subprocess.Popen(args[i:], env=dict(
            os.environ, SLURM_PROCID=str(rank), SLURM_NTASKS=str(ntasks),
            SLURM_LOCALID=str(rank), SLURM_NODELIST='node-[0]'))
        for rank in range(ntasks)
    ]
    sys.exit(max(p.wait() for p in procs))
''')

FAKE_SCONTROL = '#!/bin/sh\necho 127.0.0.1\n'


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def params_sha256(state_dict) -> str:
    digest = hashlib.sha256()
    params = {k: v for k, v in state_dict.items()
              if not k.endswith(('running_mean', 'running_var',
                                 'num_batches_tracked'))}
    for name, param in sorted(params.items()):
        digest.update(name.encode())
        digest.update(param.numpy().tobytes())
    return digest.hexdigest()


def write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def test_dist_train_two_cpu_ranks_agree_then_slurm_test(tmp_path):
    data = write_camvid(tmp_path / 'camvid')
    (tmp_path / 'rank_state_hook.py').write_text(RANK_STATE_HOOK)
    work = tmp_path / 'work'
    config = tiny_config_file(
        tmp_path / 'tiny.py', data, work, max_iters=3, interval=3,
        custom_imports=['rank_state_hook'],
        custom_hooks=[dict(type='RankStateHook', out_dir=str(tmp_path))])
    env = dict(PYTHONPATH=str(tmp_path), PORT=free_port())

    out = run_tool([TOOLS / 'dist_train.sh', config, 2], env=env)
    assert 'Iter(train) [3/3]' in out
    states = [json.loads((tmp_path / f'rank{r}.json').read_text())
              for r in (0, 1)]
    for rank, state in enumerate(states):
        assert state['rank'] == rank and state['world_size'] == 2
        assert state['backend'] == 'gloo' and state['iter'] == 3
        assert state['wrapper'] == 'MMDistributedDataParallel'
    # Each rank trained on its own half of every batch; only gradient
    # averaging keeps their weights equal.
    assert states[0]['params_sha256'] == states[1]['params_sha256']
    checkpoint = torch.load(str(work / 'iter_3.pth'), map_location='cpu')
    assert params_sha256(checkpoint['state_dict']) == \
        states[0]['params_sha256']

    single = metrics_of(run_tool([
        sys.executable, TOOLS / 'test.py', config, work / 'iter_3.pth',
        '--work-dir', tmp_path / 'test1'
    ], env=dict(PYTHONPATH=str(tmp_path))))

    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    write_executable(bin_dir / 'srun', FAKE_SRUN.format(python=sys.executable))
    write_executable(bin_dir / 'scontrol', FAKE_SCONTROL)
    srun_log = tmp_path / 'srun_args.txt'
    out = run_tool(
        [TOOLS / 'slurm_test.sh', 'debug', 'psp-test', config,
         work / 'iter_3.pth', '--work-dir', tmp_path / 'test2'],
        env=dict(PATH=f'{bin_dir}:{os.environ["PATH"]}',
                 PYTHONPATH=str(tmp_path), SRUN_LOG=str(srun_log),
                 GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1',
                 MASTER_PORT=free_port()))
    srun_args = srun_log.read_text()
    for arg in ('-p debug', '--job-name=psp-test', '--ntasks=2',
                '--ntasks-per-node=2', '--gres=gpu:2', '--cpus-per-task=1',
                '--launcher slurm'):
        assert arg in srun_args
    # Rank 0 prints the metrics over both ranks' halves of the val set.
    assert metrics_of(out) == single
