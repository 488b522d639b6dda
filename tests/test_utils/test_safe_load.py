"""mmengine checkpoints load on torch >= 2.6 with weights_only left on."""
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner

needs_allowlist = pytest.mark.skipif(
    not hasattr(torch.serialization, 'add_safe_globals'),
    reason='torch < 2.4 has no weights_only allowlist')


class TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        batch = inputs if torch.is_tensor(inputs) else torch.stack(inputs)
        return dict(loss=self.linear(batch).pow(2).mean())


def make_runner(work_dir, max_iters, resume=False):
    data = [dict(inputs=torch.full((3, ), float(i))) for i in range(8)]
    return Runner(
        model=TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='PolyLR', power=0.9, by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        randomness=dict(seed=0),
        resume=resume,
        # A unique name: runners started within one second would otherwise
        # share mmengine's message hub instance.
        experiment_name=f'{work_dir.name}-{max_iters}-{resume}',
        default_scope='mmpsp')


@needs_allowlist
def test_runner_checkpoint_loads_with_weights_only(tmp_path):
    make_runner(tmp_path, 2).train()
    ckpt = torch.load(tmp_path / 'iter_2.pth', weights_only=True)
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(buffer.mean(window_size=10))
    assert set(ckpt) >= {'meta', 'state_dict', 'optimizer', 'message_hub'}


@needs_allowlist
def test_resume_continues_from_saved_iteration(tmp_path):
    make_runner(tmp_path, 2).train()
    runner = make_runner(tmp_path, 4, resume=True)
    runner.train()
    assert runner.iter == 4
    # The resumed run read the message hub back, history included.
    history = runner.message_hub.get_scalar('train/loss')
    assert len(history.data[0]) == 4


class _Sneaky:
    """Pickles as getattr(HistoryBuffer, '__subclasses__')."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__subclasses__')


@needs_allowlist
def test_allowlist_grants_no_general_getattr(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Sneaky()}, path)
    with pytest.raises(pickle.UnpicklingError, match='__subclasses__'):
        torch.load(path, weights_only=True)
