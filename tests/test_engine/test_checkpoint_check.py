"""Checkpoints in mmseg's format: mmpsp's loader, mmseg's inference API and
tools/test.py give the in-memory model's predictions; a checkpoint for
another class count is refused with the keys, shapes, file and fix."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.apis import MMSegInferencer, inference_model, init_model
from mmseg.registry import MODELS

from mmpsp.engine.checks import (
    CheckpointMismatchError,
    dataset_meta_from_checkpoint,
    load_checkpoint_checked,
)
from mmpsp.engine.hooks import CheckpointCheckHook
from mmpsp.models.decode_heads.psp_head import PSPHead

CONFIG = 'configs/pspnet/pspnet_r18-d8_camvid-360x480.py'
# Tiny images keep R18-D8 fast; Resize is set to their own size so every
# path (mmseg's API, tools/test.py) predicts at the original resolution.
H, W = 90, 120
CLASSES = [f'class{i}' for i in range(11)]
PALETTE = [[i * 20, 255 - i * 20, i * 7] for i in range(11)]


def _write_dataset(root: Path) -> list:
    rng = np.random.default_rng(0)
    images = []
    for split in ('train', 'val'):
        (root / 'images' / split).mkdir(parents=True)
        (root / 'annotations' / split).mkdir(parents=True)
        for i in range(2):
            image = root / 'images' / split / f'frame{i}.jpg'
            cv2.imwrite(str(image),
                        rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
            cv2.imwrite(str(root / 'annotations' / split / f'frame{i}.png'),
                        rng.integers(0, 12, (H, W), dtype=np.uint8))
            if split == 'val':
                images.append(str(image))
    return images


def _write_config(path: Path, repo_root: Path, data_root: Path,
                  extra: str = '') -> Path:
    path.write_text(f"""
_base_ = '{repo_root / CONFIG}'
data_root = '{data_root}'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({W}, {H}), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
val_dataloader = test_dataloader
train_dataloader = dict(dataset=dict(data_root=data_root))
model = dict(backbone=dict(init_cfg=None))
{extra}
""")
    return path


def _build(cfg: Config, num_classes: int = 11) -> torch.nn.Module:
    init_default_scope(cfg.default_scope)
    model_cfg = cfg.model.copy()
    model_cfg.decode_head = dict(model_cfg.decode_head,
                                 num_classes=num_classes)
    model_cfg.auxiliary_head = dict(model_cfg.auxiliary_head,
                                    num_classes=num_classes)
    model = revert_sync_batchnorm(MODELS.build(model_cfg))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                # Trained-looking statistics, so eval mode is not identity.
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


def _predict(model: torch.nn.Module, images: list) -> list:
    with torch.no_grad():
        return [
            inference_model(model, image).pred_sem_seg.data[0].numpy()
            for image in images
        ]


@pytest.fixture(scope='module')
def setup(tmp_path_factory, repo_root):
    tmp = tmp_path_factory.mktemp('ckpt')
    images = _write_dataset(tmp / 'camvid')
    config = _write_config(tmp / 'pspnet_tiny.py', repo_root, tmp / 'camvid')
    cfg = Config.fromfile(str(config))
    model = _build(cfg)
    model.cfg = cfg
    reference = _predict(model, images)
    old_style = tmp / 'old_meta.pth'
    torch.save(
        dict(
            meta=dict(CLASSES=CLASSES, PALETTE=PALETTE, mmseg_version='0.30'),
            state_dict=model.state_dict()), old_style)
    new_style = tmp / 'new_meta.pth'
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=CLASSES, palette=PALETTE)),
            state_dict={
                f'module.{k}': v
                for k, v in model.state_dict().items()
            }), new_style)
    wrong = tmp / 'ade20k_150_classes.pth'
    torch.save(
        dict(
            meta=dict(CLASSES=[str(i) for i in range(150)]),
            state_dict=_build(cfg, num_classes=150).state_dict()), wrong)
    return dict(
        tmp=tmp,
        images=images,
        config=config,
        cfg=cfg,
        reference=reference,
        old_style=old_style,
        new_style=new_style,
        wrong=wrong)


def _with_cfg(model: torch.nn.Module, cfg: Config) -> torch.nn.Module:
    model.cfg = cfg
    return model


@pytest.mark.parametrize('which', ['old_style', 'new_style'])
def test_checked_loader_maps_meta_and_reproduces(setup, which):
    model = _build(setup['cfg'])
    before = _predict(_with_cfg(model, setup['cfg']), setup['images'][:1])
    report = load_checkpoint_checked(model, str(setup[which]))
    assert report.complete
    assert list(report.dataset_meta['classes']) == CLASSES
    assert model.dataset_meta['palette'] == PALETTE
    after = _predict(model, setup['images'])
    for got, want in zip(after, setup['reference']):
        np.testing.assert_array_equal(got, want)
    # The freshly built model predicts differently: the load did something.
    assert not np.array_equal(before[0], setup['reference'][0])


def test_old_meta_converts_to_dataset_meta():
    meta = dataset_meta_from_checkpoint(
        dict(meta=dict(CLASSES=('a', 'b'), PALETTE=((1, 2, 3), (4, 5, 6)))))
    assert meta == dict(classes=('a', 'b'), palette=[[1, 2, 3], [4, 5, 6]])
    assert dataset_meta_from_checkpoint(dict(state_dict={})) is None


def test_class_count_mismatch_is_refused(setup):
    model = _build(setup['cfg'])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint_checked(model, str(setup['wrong']))
    message = str(info.value)
    assert 'checkpoint has 150 classes' in message
    assert 'decode_head.conv_seg.weight (150, 128, 1, 1)' in message
    assert 'config num_classes=11' in message
    assert 'model.decode_head.num_classes=150' in message
    assert 'auxiliary_head.conv_seg.weight: checkpoint (150, 64, 1, 1), ' \
        'model (11, 64, 1, 1)' in message
    assert str(setup['wrong']) in message
    # Refused means untouched: no weight was copied from the checkpoint.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_partial_load_lists_keys_when_not_strict(setup):
    model = _build(setup['cfg'])
    report = load_checkpoint_checked(model, str(setup['wrong']), strict=False)
    assert sorted(k for k, _, _ in report.mismatched) == [
        'auxiliary_head.conv_seg.bias', 'auxiliary_head.conv_seg.weight',
        'decode_head.conv_seg.bias', 'decode_head.conv_seg.weight'
    ]
    assert report.missing == [] and report.unexpected == []


def test_missing_and_unexpected_keys_are_named(setup, tmp_path):
    state = torch.load(setup['old_style'], weights_only=True)['state_dict']
    state.pop('decode_head.bottleneck.conv.weight')
    state['decode_head.extra.weight'] = torch.zeros(1)
    path = tmp_path / 'edited.pth'
    torch.save(dict(state_dict=state), path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint_checked(_build(setup['cfg']), str(path))
    message = str(info.value)
    assert 'missing in checkpoint (1):\n    decode_head.bottleneck.' \
        'conv.weight' in message
    assert 'unexpected in checkpoint (1):\n    decode_head.extra.weight' \
        in message


def test_mmseg_init_model_and_inference_model(setup):
    model = init_model(str(setup['config']), str(setup['old_style']),
                       device='cpu')
    assert isinstance(model.decode_head, PSPHead)
    assert list(model.dataset_meta['classes']) == CLASSES
    for got, want in zip(_predict(model, setup['images']),
                         setup['reference']):
        np.testing.assert_array_equal(got, want)


def test_mmseg_inferencer(setup):
    inferencer = MMSegInferencer(
        model=str(setup['config']),
        weights=str(setup['old_style']),
        device='cpu',
        scope='mmpsp')
    assert isinstance(inferencer.model.decode_head, PSPHead)
    assert list(inferencer.model.dataset_meta['classes']) == CLASSES
    result = inferencer(setup['images'][0], return_datasamples=True)
    np.testing.assert_array_equal(result.pred_sem_seg.data[0].numpy(),
                                  setup['reference'][0])


def _run_test_tool(repo_root: Path, config: Path, checkpoint: Path,
                   work_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, 'tools/test.py',
         str(config), str(checkpoint), '--work-dir', str(work_dir), *extra],
        cwd=repo_root, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_tools_test_loads_mmseg_checkpoint(setup, repo_root):
    out = setup['tmp'] / 'pred'
    run = _run_test_tool(repo_root, setup['config'], setup['old_style'],
                         setup['tmp'] / 'work', '--out', str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for image, want in zip(setup['images'], setup['reference']):
        got = cv2.imread(str(out / (Path(image).stem + '.png')),
                         cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_tools_test_refuses_class_mismatch(setup, repo_root):
    config = _write_config(
        setup['tmp'] / 'pspnet_tiny_checked.py', repo_root,
        setup['tmp'] / 'camvid', '')
    # tools/test.py adds mmpsp.CheckpointCheckHook by itself.
    run = _run_test_tool(repo_root, config, setup['wrong'],
                         setup['tmp'] / 'work_wrong')
    assert run.returncode == 2
    assert 'Traceback' not in run.stderr
    assert 'mmpsp test: error: CheckpointMismatchError: ' in run.stderr
    assert 'checkpoint has 150 classes (decode_head.conv_seg.weight ' \
        '(150, 128, 1, 1)), config num_classes=11' in run.stderr


def test_hook_rewrites_old_meta(setup):
    checkpoint = torch.load(setup['old_style'], weights_only=True)

    class _Runner:
        model = _build(setup['cfg'])
        _load_from = str(setup['old_style'])

    CheckpointCheckHook().after_load_checkpoint(_Runner, checkpoint)
    assert list(checkpoint['meta']['dataset_meta']['classes']) == CLASSES
    assert _Runner.model.dataset_meta['palette'] == PALETTE
