"""A checkpoint never runs code, whatever torch's ``weights_only`` default.

``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` gives torch's pre-2.6 default
(``weights_only=False``) back. With it set, a real training checkpoint whose
meta carries a ``__reduce__`` payload goes through every entry point that
loads a checkpoint: tools/test.py, tools/train.py ``--resume`` and
``load_from``, tools/inference.py and tools/deployment/pytorch2onnx.py.
Each must refuse it naming the global, create no marker file and exit
non-zero, while the same checkpoint without the payload still loads.
"""
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from reliability_tiny import (
    python_tool,
    run_tool,
    tiny_config_file,
    write_camvid,
)

UNSAFE_ENV = dict(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')


class _Payload:
    """Unpickles as ``os.system('touch <marker>')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('unsafe')
    data = write_camvid(tmp / 'camvid')
    config = tiny_config_file(tmp / 'tiny.py', data, tmp / 'train')
    run_tool(python_tool('train.py', config))
    good = tmp / 'train' / 'iter_2.pth'
    checkpoint = torch.load(good, map_location='cpu', weights_only=True)
    marker = tmp / 'code_ran'
    checkpoint['meta']['note'] = _Payload(marker)
    evil = tmp / 'evil.pth'
    torch.save(checkpoint, evil)
    return dict(tmp=tmp, data=data, config=config, good=good, evil=evil,
                marker=marker)


def _command(entry: str, setup: dict, checkpoint: Path, out: Path) -> list:
    config = setup['config']
    if entry == 'test':
        return python_tool('test.py', config, checkpoint, '--work-dir', out)
    if entry == 'resume':
        return python_tool('train.py', config, '--work-dir', out,
                           '--resume', checkpoint)
    if entry == 'load_from':
        return python_tool('train.py', config, '--work-dir', out,
                           '--cfg-options', f'load_from={checkpoint}')
    if entry == 'inference':
        return python_tool('inference.py',
                           setup['data'] / 'images' / 'val' / 'f0.jpg',
                           '--config', config, '--checkpoint', checkpoint,
                           '--out', out)
    return python_tool('deployment/pytorch2onnx.py', config, checkpoint,
                       '--shape', 48, 48, '--out', out / 'model.onnx')


def test_the_variable_makes_plain_torch_load_unsafe(setup):
    """The emulation is live: without mmpsp, torch.load runs the payload."""
    script = textwrap.dedent(f'''
        import torch
        torch.load({str(setup['evil'])!r}, map_location='cpu')
    ''')
    run_tool([sys.executable, '-c', script], env=UNSAFE_ENV)
    assert setup['marker'].exists()
    setup['marker'].unlink()


ENTRIES = ['test', 'resume', 'load_from', 'inference', 'export']


@pytest.mark.slow
@pytest.mark.parametrize('entry', ENTRIES)
def test_payload_is_refused_at_every_entry_point(entry, setup):
    out = setup['tmp'] / f'out_{entry}'
    proc = run_tool(_command(entry, setup, setup['evil'], out),
                    env=UNSAFE_ENV, expect_rc=None)
    assert proc.returncode != 0, proc.out[-3000:]
    assert not setup['marker'].exists(), f'{entry}: the payload ran'
    message = proc.out
    assert f'refused to load checkpoint {setup["evil"]}' in message
    assert 'the global posix.system' in message
    assert 'The file was not loaded' in message
    # torch's own advice ("re-running torch.load with weights_only set to
    # False") is the one wrong advice for a malicious file.
    assert 'Re-running' not in message
    # Nothing was written from it: no checkpoint, no mask, no model.
    written = [p for p in out.rglob('*')
               if p.suffix in ('.pth', '.png', '.onnx')]
    assert written == []


@pytest.mark.slow
@pytest.mark.parametrize('entry', ['test', 'inference'])
def test_clean_checkpoint_still_loads_with_the_variable(entry, setup):
    out = setup['tmp'] / f'clean_{entry}'
    proc = run_tool(_command(entry, setup, setup['good'], out),
                    env=UNSAFE_ENV)
    if entry == 'test':
        assert 'mIoU:' in proc.out
    else:
        assert (out / 'f0_mask.png').is_file()
