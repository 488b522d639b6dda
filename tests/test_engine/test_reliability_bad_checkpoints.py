"""A checkpoint that does not fit gets one clear error wherever it enters.

Four bad checkpoints (truncated, not a checkpoint at all, another class
count, another architecture) go through tools/test.py, ``--resume``,
``load_from``, tools/inference.py and tools/deployment/pytorch2onnx.py.
Each run must exit non-zero, name the file and say why and what to do,
without torch's or mmengine's own message being the last word, and write
nothing.
"""
import pytest
import torch
from reliability_tiny import (
    python_tool,
    run_tool,
    tiny_config_file,
    write_camvid,
)

ENTRIES = ['test', 'resume', 'load_from', 'inference', 'export']
# What the message says for each kind of bad file.
EXPECTED = {
    'truncated': ['it is truncated or corrupted', 'download or copy the '
                  'file again'],
    'not_a_checkpoint': ['it is not a torch checkpoint',
                         'Pass a .pth written by tools/train.py'],
    'class_count': ['checkpoint has 10 classes', 'config num_classes=11'],
    'architecture': ['missing in checkpoint', 'unexpected in checkpoint'],
}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('badckpt')
    data = write_camvid(tmp / 'camvid')
    config = tiny_config_file(tmp / 'tiny.py', data, tmp / 'train')
    run_tool(python_tool('train.py', config))
    good = tmp / 'train' / 'iter_2.pth'
    raw = good.read_bytes()
    bad = dict(truncated=tmp / 'truncated.pth',
               not_a_checkpoint=tmp / 'notes.pth',
               class_count=tmp / 'ten_classes.pth',
               architecture=tmp / 'other_head.pth')
    bad['truncated'].write_bytes(raw[:len(raw) * 2 // 3])
    bad['not_a_checkpoint'].write_text('iteration 2: loss 0.7\n')
    checkpoint = torch.load(good, map_location='cpu', weights_only=True)
    state = checkpoint['state_dict']
    for key in ('decode_head.conv_seg.weight', 'decode_head.conv_seg.bias'):
        state[key] = state[key][:10].clone()
    torch.save(checkpoint, bad['class_count'])
    checkpoint = torch.load(good, map_location='cpu', weights_only=True)
    checkpoint['state_dict'] = {
        k.replace('decode_head.bottleneck', 'decode_head.convs.0'): v
        for k, v in checkpoint['state_dict'].items()
    }
    torch.save(checkpoint, bad['architecture'])
    return dict(tmp=tmp, data=data, config=config, bad=bad)


def _command(entry: str, setup: dict, checkpoint, out) -> list:
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


@pytest.mark.slow
@pytest.mark.parametrize('kind', sorted(EXPECTED))
@pytest.mark.parametrize('entry', ENTRIES)
def test_bad_checkpoint_gets_one_clear_error(entry, kind, setup):
    path = setup['bad'][kind]
    out = setup['tmp'] / f'out_{entry}_{kind}'
    before = path.read_bytes()
    proc = run_tool(_command(entry, setup, path, out), expect_rc=None)
    assert proc.returncode != 0, proc.out[-3000:]
    message = proc.out
    assert str(path) in message
    for phrase in EXPECTED[kind]:
        assert phrase in message, message[-3000:]
    assert 'PytorchStreamReader' not in message
    assert 'The size of tensor a' not in message
    assert 'weights_only=False' not in message.replace(
        'never load an untrusted file with weights_only=False', '')
    assert path.read_bytes() == before
    written = [p for p in out.rglob('*')
               if p.suffix in ('.pth', '.png', '.onnx')]
    assert written == []
