"""``tools/train.py --no-chunked-loss`` reaches the heads the run builds."""
import importlib.util
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import mmpsp.models.losses.head_loss as head_loss
from mmpsp.apis import revert_sync_bn_in_config
from mmpsp.models.losses import set_chunked_loss
from mmpsp.registry import MODELS

CONFIG = 'configs/pspnet/pspnet_r18-d8_camvid-360x480.py'


def train_tool(repo_root):
    spec = importlib.util.spec_from_file_location(
        'train_tool', repo_root / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_of_train_command(repo_root, tmp_path, monkeypatch, *flags):
    """The config ``tools/train.py CONFIG *flags`` would hand the Runner."""
    captured = []
    monkeypatch.setattr('mmpsp.apis.train.run_train', captured.append)
    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(sys, 'argv', [
        'tools/train.py', CONFIG, '--work-dir', str(tmp_path), *flags])
    train_tool(repo_root).main()
    assert len(captured) == 1
    return captured[0]


def build(cfg: Config) -> torch.nn.Module:
    revert_sync_bn_in_config(cfg, 'one test process')
    with DefaultScope.overwrite_default_scope('mmpsp'):
        return MODELS.build(cfg.model)


def chunked_calls(model: torch.nn.Module, monkeypatch) -> int:
    """How many head losses of one training forward took the chunked
    path."""
    calls = []
    chunked = head_loss.chunked_upsample_cross_entropy

    def counting(*args, **kwargs):
        calls.append(1)
        return chunked(*args, **kwargs)

    monkeypatch.setattr(head_loss, 'chunked_upsample_cross_entropy',
                        counting)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 33, 41, generator=gen)
    samples = []
    for _ in range(2):
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, 11, (1, 33, 41), generator=gen)))
        sample.set_metainfo(dict(img_shape=(33, 41), pad_shape=(33, 41),
                                 ori_shape=(33, 41)))
        samples.append(sample)
    model.train()
    losses = model.loss(images, samples)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    return len(calls)


@pytest.mark.parametrize('flags,chunked', [((), True),
                                           (('--no-chunked-loss', ), False)])
def test_train_switch_reaches_the_built_heads(repo_root, tmp_path,
                                              monkeypatch, flags, chunked):
    cfg = config_of_train_command(repo_root, tmp_path, monkeypatch, *flags)
    model = build(cfg)
    assert model.decode_head.chunked_loss is chunked
    assert model.auxiliary_head.chunked_loss is chunked
    assert chunked_calls(model, monkeypatch) == (2 if chunked else 0)


def test_set_chunked_loss_names_the_heads_and_leaves_mmseg_heads(
        monkeypatch):
    messages = []
    monkeypatch.setattr(head_loss, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    cfg = Config(dict(
        default_scope='mmpsp',
        model=dict(
            type='EncoderDecoder',
            decode_head=dict(type='PSPHead'),
            auxiliary_head=[dict(type='mmpsp.FCNHead'),
                            dict(type='mmseg.FCNHead')])))
    changed = set_chunked_loss(cfg, False, reason='--no-chunked-loss')
    assert changed == ['model.decode_head', 'model.auxiliary_head.0']
    assert cfg.model.decode_head.chunked_loss is False
    assert cfg.model.auxiliary_head[0].chunked_loss is False
    # mmseg's FCNHead takes no chunked_loss argument.
    assert 'chunked_loss' not in cfg.model.auxiliary_head[1]
    assert messages == [
        'chunked_loss=False (--no-chunked-loss) in: model.decode_head, '
        'model.auxiliary_head.0'
    ]


def test_set_chunked_loss_without_mmpsp_heads_warns(monkeypatch):
    messages = []
    monkeypatch.setattr(head_loss, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    cfg = Config(dict(default_scope='mmseg', model=dict(
        type='EncoderDecoder', decode_head=dict(type='PSPHead'))))
    assert set_chunked_loss(cfg, False, reason='--no-chunked-loss') == []
    assert 'chunked_loss' not in cfg.model.decode_head
    assert len(messages) == 1 and 'nothing changed' in messages[0]
