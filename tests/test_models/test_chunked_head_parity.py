"""A head's chunked loss path against mmseg's own ``loss_by_feat``: losses,
accuracy and the gradient of the low-resolution logits, with bands small
enough that every image spans several chunks."""
import warnings

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import mmpsp.models.losses.head_loss as head_loss
from mmpsp.models.losses.chunked_cross_entropy import _Plan
from mmpsp.registry import MODELS

IGNORE = 255


def heads(align_corners: bool, loss_decode, budget: int):
    common = dict(in_channels=4, channels=4, num_convs=0, concat_input=False,
                  num_classes=7, align_corners=align_corners,
                  loss_decode=loss_decode)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        theirs = MODELS.build(dict(type='mmseg.FCNHead', **common))
        ours = MODELS.build(dict(type='mmpsp.FCNHead', chunked_loss=True,
                                 loss_chunk_bytes=budget, **common))
    return theirs, ours


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('loss_decode', [
    dict(type='CrossEntropyLoss', loss_weight=1.0),
    [dict(type='CrossEntropyLoss', loss_weight=1.0, avg_non_ignore=True),
     dict(type='CrossEntropyLoss', loss_weight=0.4, loss_name='loss_aux')],
], ids=['one term', 'two terms'])
def test_chunked_head_loss_equals_mmseg(align_corners, loss_decode,
                                        monkeypatch):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 23, 31, generator=gen)
    samples = []
    for _ in range(2):
        label = torch.randint(0, 7, (1, 181, 245), generator=gen)
        label[:, :5] = IGNORE
        label[torch.rand(label.shape, generator=gen) < 0.05] = IGNORE
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    # 64 KiB: a band of a few output rows, tens of chunks per image.
    theirs, ours = heads(align_corners, loss_decode, budget=2**16)
    plan = _Plan((2, 7, 23, 31), (181, 245), align_corners, torch.float32,
                 logits.device, 2**16)
    assert len(plan.chunks) > 20
    calls = []
    chunked = head_loss.chunked_upsample_cross_entropy
    monkeypatch.setattr(
        head_loss, 'chunked_upsample_cross_entropy',
        lambda *a, **k: calls.append(k) or chunked(*a, **k))
    results = {}
    for name, head in (('theirs', theirs), ('ours', ours)):
        leaf = logits.clone().requires_grad_()
        losses = head.loss_by_feat(leaf, samples)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        results[name] = ({k: v.detach() for k, v in losses.items()},
                         leaf.grad)
    (our_losses, our_grad), (their_losses, their_grad) = (
        results['ours'], results['theirs'])
    assert [k['max_chunk_bytes'] for k in calls] == [2**16]
    assert set(our_losses) == set(their_losses)
    for key, value in their_losses.items():
        torch.testing.assert_close(our_losses[key], value, rtol=1e-6,
                                   atol=1e-6, msg=key)
    scale = their_grad.abs().max()
    assert ((our_grad - their_grad).abs().max() / scale).item() <= 1e-5
