"""tools/train.py and tools/test.py, run as the real scripts in subprocesses,
on the CamVid config shrunk through ``--cfg-options`` (R18 with 8 base
channels, 48x48 crops, a few iterations, no loader workers), plus the
library pieces behind their options (``--resume``, ``--amp``, SyncBN on
CPU) called directly.

The tiny dataset, config and tool runner come from data_factories.py.
"""
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_factories import (
    CONFIG,
    IMG_H,
    IMG_W,
    TOOLS,
    metrics_of,
    run_tool,
    tiny_options,
    write_camvid,
)
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmpsp.apis import (
    NothingToResumeWarning,
    adapt_to_machine,
    build_test_config,
    build_train_config,
    enable_amp,
    resolve_resume,
)
from mmpsp.engine import BF16AutocastOptimWrapper, ConfigCheckError
from mmpsp.engine.checks.config_check import check_class_counts
from mmpsp.engine.hooks.iteration_seed_hook import iteration_seed


@pytest.fixture(scope='module')
def camvid_tiny(tmp_path_factory) -> Path:
    return write_camvid(tmp_path_factory.mktemp('data') / 'camvid')


@pytest.fixture(scope='module')
def trained(camvid_tiny, tmp_path_factory) -> Path:
    """Checkpoint of tools/train.py after 2 iterations on the tiny data."""
    work = tmp_path_factory.mktemp('train')
    out = run_tool([
        sys.executable, TOOLS / 'train.py', CONFIG, '--work-dir', work,
        '--cfg-options', *tiny_options(camvid_tiny)
    ])
    assert 'Iter(train) [2/2]' in out
    # SyncBN in the config cannot run on CPU: converted, and said so.
    assert 'SyncBN -> BN' in out
    checkpoint = work / 'iter_2.pth'
    assert checkpoint.is_file()
    assert (work / 'last_checkpoint').read_text().strip() == str(checkpoint)
    return checkpoint


@pytest.mark.slow
def test_train_saves_a_loadable_checkpoint(trained):
    checkpoint = torch.load(str(trained), map_location='cpu')
    assert checkpoint['meta']['iter'] == 2
    state = checkpoint['state_dict']
    # The --cfg-options reached the model: 8 stem channels, 11 classes.
    assert state['backbone.stem.6.weight'].shape[0] == 8
    assert state['decode_head.conv_seg.weight'].shape[0] == 11
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


@pytest.mark.slow
def test_test_prints_miou_and_saves_outputs(trained, camvid_tiny, tmp_path):
    out_dir, show_dir = tmp_path / 'pred', tmp_path / 'show'
    out = run_tool([
        sys.executable, TOOLS / 'test.py', CONFIG, trained, '--work-dir',
        tmp_path / 'work', '--out', out_dir, '--show-dir', show_dir,
        '--cfg-options', *tiny_options(camvid_tiny),
        'default_hooks.visualization.interval=1',
        # Testing reads only the test split; no train set is needed.
        f'train_dataloader.dataset.data_root={tmp_path / "absent"}'
    ])
    a_acc, miou, m_acc = metrics_of(out)
    assert 0 <= miou <= 100 and 0 <= a_acc <= 100 and 0 <= m_acc <= 100
    preds = sorted(out_dir.glob('*.png'))
    assert [p.stem for p in preds] == ['f0', 'f1']
    pred = cv2.imread(str(preds[0]), cv2.IMREAD_UNCHANGED)
    assert pred.shape == (IMG_H, IMG_W) and pred.max() < 11
    assert len(list(show_dir.rglob('*.png'))) == 2


@pytest.mark.slow
def test_test_with_tta(trained, camvid_tiny, tmp_path):
    out = run_tool([
        sys.executable, TOOLS / 'test.py', CONFIG, trained, '--tta',
        '--work-dir', tmp_path, '--cfg-options', *tiny_options(camvid_tiny)
    ])
    assert 0 <= metrics_of(out)[1] <= 100
    # The run used the TTA wrapper around the model and the TTA pipeline.
    used = Config.fromfile(str(tmp_path / CONFIG.name))
    assert used.model.type == 'SegTTAModel'
    assert used.model.module.type == 'EncoderDecoder'
    assert used.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'


@pytest.mark.slow
def test_camvid_real_data_amp(camvid_root, tmp_path):
    """A few bf16-autocast iterations on the real CamVid, then validation
    on its first 10 frames."""
    options = tiny_options(camvid_root, max_iters=3, interval=3,
                           image_scale=(240, 180))
    options += ['val_dataloader.dataset.indices=10',
                'data_check.max_samples=8']
    out = run_tool([
        sys.executable, TOOLS / 'train.py', CONFIG, '--amp', '--work-dir',
        tmp_path, '--cfg-options', *options
    ])
    assert 'bfloat16 autocast' in out
    losses = [float(v) for v in re.findall(r'\bloss: ([\d.]+)', out)]
    assert len(losses) == 3 and all(np.isfinite(losses))
    miou = re.findall(r'Iter\(val\) \[10/10\].*mIoU: ([\d.]+)', out)
    assert miou and 0 <= float(miou[-1]) <= 100
    assert torch.load(str(tmp_path / 'iter_3.pth'),
                      map_location='cpu')['meta']['iter'] == 3


def test_resume_with_nothing_to_resume_warns(tmp_path):
    work = tmp_path / 'empty_work_dir'
    with pytest.warns(NothingToResumeWarning) as record:
        cfg = build_train_config(str(CONFIG), work_dir=str(work),
                                 resume='auto')
    message = str(record[0].message)
    assert str(work) in message and 'starts from iteration 0' in message
    assert cfg.resume is False and cfg.load_from is None


def test_resume_with_nothing_to_resume_keeps_load_from(tmp_path):
    """A requeued fine-tuning job passes --resume from its first start:
    until a checkpoint exists, load_from initialises the run."""
    pretrained = str(tmp_path / 'pretrained.pth')
    cfg = Config(dict(work_dir=str(tmp_path / 'work'), load_from=pretrained))
    with pytest.warns(NothingToResumeWarning, match='pretrained.pth'):
        assert resolve_resume(cfg, 'auto') is None
    assert cfg.resume is False and cfg.load_from == pretrained


def test_resume_picks_latest_or_named_checkpoint(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path)))
    (tmp_path / 'iter_4.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    assert resolve_resume(cfg, 'auto') == str(tmp_path / 'iter_4.pth')
    assert cfg.resume is True
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        resolve_resume(cfg, str(tmp_path / 'missing.pth'))


def test_missing_checkpoint_or_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        build_test_config(str(CONFIG), str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match='nope.py'):
        build_train_config(str(tmp_path / 'nope.py'))


def test_tta_config_keeps_the_head_checks(tmp_path):
    checkpoint = tmp_path / 'x.pth'
    checkpoint.write_bytes(b'')
    cfg = build_test_config(
        str(CONFIG), str(checkpoint), tta=True,
        cfg_options={'model.decode_head.num_classes': 12})
    assert cfg.model.type == 'SegTTAModel'
    with pytest.raises(ConfigCheckError, match='decode_head.num_classes=12'):
        check_class_counts(cfg)


def test_tta_without_tta_pipeline_is_refused(tmp_path):
    checkpoint = tmp_path / 'x.pth'
    checkpoint.write_bytes(b'')
    cfg_file = tmp_path / 'no_tta.py'
    cfg = Config.fromfile(str(CONFIG))
    cfg.pop('tta_pipeline')
    cfg.dump(str(cfg_file))
    with pytest.raises(KeyError, match='tta_pipeline'):
        build_test_config(str(cfg_file), str(checkpoint), tta=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_amp_on_cpu_runs_forward_in_bfloat16():
    cfg = Config(dict(optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    assert enable_amp(cfg) == 'mmpsp.BF16AutocastOptimWrapper'
    model = torch.nn.Conv2d(3, 4, 3)
    # mmpsp's configs set default_scope='mmpsp', as the Runner would here.
    with DefaultScope.overwrite_default_scope('mmpsp'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, BF16AutocastOptimWrapper)
    with wrapper.optim_context(model):
        out = model(torch.randn(1, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert model.weight.dtype == torch.float32


def _plain_wrapper_cfg() -> Config:
    return Config(dict(optim_wrapper=dict(
        type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))))


def test_amp_bf16_selects_autocast_wrapper_without_loss_scale():
    cfg = _plain_wrapper_cfg()
    assert enable_amp(cfg, 'bf16') == 'mmpsp.BF16AutocastOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_amp_fp16_on_cpu_says_what_to_use():
    cfg = _plain_wrapper_cfg()
    with pytest.raises(ValueError, match='--amp bf16'):
        enable_amp(cfg, 'fp16')
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    with pytest.raises(ValueError, match='choose one of'):
        enable_amp(cfg, 'fp8')


def test_amp_dtype_conflicting_with_config_wrapper_is_refused():
    cfg = _plain_wrapper_cfg()
    enable_amp(cfg, 'bf16')
    with pytest.raises(ValueError, match='another precision'):
        enable_amp(cfg, 'fp16')
    assert enable_amp(cfg, 'bf16') == 'mmpsp.BF16AutocastOptimWrapper'
    assert enable_amp(cfg) == 'mmpsp.BF16AutocastOptimWrapper'


def test_amp_refuses_a_custom_wrapper():
    cfg = Config(dict(optim_wrapper=dict(type='MyWrapper')))
    with pytest.raises(ValueError, match='MyWrapper'):
        enable_amp(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU behaviour')
def test_cpu_launch_turns_sync_bn_into_bn_and_fixes_workers():
    cfg = Config.fromfile(str(CONFIG))
    cfg.train_dataloader.num_workers = 0
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    adapt_to_machine(cfg)
    for part in ('backbone', 'decode_head', 'auxiliary_head'):
        assert cfg.model[part].norm_cfg.type == 'BN'
    assert cfg.train_dataloader.persistent_workers is False
    # Loaders with workers keep them.
    assert cfg.val_dataloader.persistent_workers is True
    # Pinned memory only helps copies to a GPU.
    assert cfg.train_dataloader.pin_memory is False


def test_iteration_seed_differs_by_rank_and_iteration():
    seeds = {iteration_seed(0, rank, it) for rank in range(4)
             for it in range(100)}
    assert len(seeds) == 400
    assert iteration_seed(7, 1, 5) == iteration_seed(7, 1, 5)
    assert iteration_seed(7, 1, 5) != iteration_seed(8, 1, 5)


def test_config_resume_true_without_checkpoint_also_warns(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=None))
    with pytest.warns(NothingToResumeWarning, match=str(tmp_path)):
        assert resolve_resume(cfg, None) is None
    cfg = Config(dict(work_dir=str(tmp_path), resume=False, load_from=None))
    assert resolve_resume(cfg, None) is None and cfg.resume is False


@pytest.mark.slow
def test_train_fails_early_when_pretrained_weights_are_missing(tmp_path):
    missing = tmp_path / 'resnet18_v1c.pth'
    config = tmp_path / 'pretrained.py'
    config.write_text(
        f"_base_ = '{CONFIG}'\n"
        'model = dict(backbone=dict(init_cfg=dict(_delete_=True, '
        'type="Pretrained", '
        f'checkpoint="{missing}")))\n')
    out = run_tool([
        sys.executable, TOOLS / 'train.py', config, '--work-dir',
        tmp_path / 'work'
    ], expect_rc=2)
    # One line naming the key and the fixes, no traceback.
    assert 'Traceback' not in out
    assert 'mmpsp train: error: PretrainedWeightsError: ' in out
    assert f'model.backbone.init_cfg.checkpoint={str(missing)!r}' in out
    assert '--cfg-options model.backbone.init_cfg=None' in out
    # It stopped before the Runner: nothing was trained or written.
    assert not list((tmp_path / 'work').rglob('*.pth'))
