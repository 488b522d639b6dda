"""Every config under configs/ loads and builds; key settings are right."""
from pathlib import Path

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmpsp.datasets import (
    FastPhotoMetricDistortion,
    FastRandomCrop,
    mmseg_transform_type,
)
from mmpsp.engine.checks.pretrained_check import (
    PretrainedWeightsError,
    check_pretrained,
    find_pretrained,
    resolve_checkpoint,
)
from mmpsp.registry import DATASETS, MODELS

CONFIG_DIR = Path(__file__).resolve().parents[1] / 'configs'
PSP_DIR = CONFIG_DIR / 'pspnet'
ALL_CONFIGS = sorted(CONFIG_DIR.rglob('*.py'))
TOP_LEVEL = sorted(p for p in ALL_CONFIGS if '_base_' not in p.parts)

# Configs other packages and scripts refer to by name.
REQUIRED = [
    'pspnet/pspnet_r50-d8_ade20k.py',
    'pspnet/pspnet_r18-d8_camvid-360x480.py',
    'pspnet/pspnet_r101-d8_4xb4-160k_ade20k-512x512.py',
    'pspnet/pspnet_r50-d16_ade20k.py',
    'pspnet/pspnet_r50-d8_4xb4-150k_ade20k-473x473_paper.py',
    'pspnet/pspnet_r50-d8_4xb4-30k_voc12aug-473x473_paper.py',
    'pspnet/pspnet_r50-d8_8xb2-90k_cityscapes-713x713_paper.py',
    '_base_/default_runtime.py',
    '_base_/models/pspnet_r50-d8.py',
    '_base_/datasets/camvid.py',
] + [f'_base_/schedules/schedule_{k}k.py' for k in (20, 40, 80, 160)]
DATASET_BASES = [
    'ade20k', 'ade20k_paper-473x473', 'camvid', 'cityscapes',
    'cityscapes_769x769', 'cityscapes_paper-713x713', 'coco-stuff10k',
    'coco-stuff164k', 'pascal_context', 'pascal_context_59', 'pascal_voc12',
    'pascal_voc12_aug', 'pascal_voc12_aug_paper-473x473'
]


MMSEG_PSPNET = Path(mmseg.__file__).parent / '.mim' / 'configs' / 'pspnet'
# Our config -> mmseg's config of the same recipe.
MMSEG_TWINS = {
    p.name: MMSEG_PSPNET / p.name
    for p in TOP_LEVEL
    if p.parent == PSP_DIR and (MMSEG_PSPNET / p.name).is_file()
}
MMSEG_TWINS['pspnet_r50-d8_ade20k.py'] = (
    MMSEG_PSPNET / 'pspnet_r50-d8_4xb4-80k_ade20k-512x512.py')
RUNTIME_KEYS = [
    'model', 'train_dataloader', 'val_dataloader', 'test_dataloader',
    'val_evaluator', 'test_evaluator', 'optim_wrapper', 'param_scheduler',
    'train_cfg', 'val_cfg', 'test_cfg', 'default_hooks', 'env_cfg',
    'visualizer', 'log_processor', 'log_level', 'load_from', 'resume',
    'tta_model', 'tta_pipeline'
]


def _load(path: Path) -> Config:
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.get('default_scope', 'mmpsp'))
    return cfg


def _build(cfg: Config, meta: bool = True) -> torch.nn.Module:
    """Build ``cfg.model``; ``meta`` builds shapes only (7x faster).

    Construction never loads ``init_cfg`` weights (only init_weights()
    does), so no download happens. Real builds get BN instead of SyncBN so
    they can run forward on CPU in one process.
    """
    if meta:
        try:
            with torch.device('meta'):
                return MODELS.build(cfg.model)
        except RuntimeError as e:
            # Some backbones (MiT) read tensor values while constructing.
            if 'meta' not in str(e):
                raise
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def test_config_inventory():
    names = {str(p.relative_to(CONFIG_DIR)) for p in ALL_CONFIGS}
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f'configs missing: {missing}'
    assert all(f'_base_/datasets/{d}.py' in names for d in DATASET_BASES)
    # The 31 dataset/schedule/ablation configs (the demo's scenes configs
    # and configs/reuse/ are counted by their own tests).
    ours = [p for p in TOP_LEVEL
            if p.parent == PSP_DIR and 'scenes' not in p.name]
    assert len(ours) == 31, [p.name for p in ours]


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: str(
    p.relative_to(CONFIG_DIR)))
def test_config_loads_and_builds(path):
    cfg = _load(path)
    assert len(cfg.keys()) > 0
    if 'model' not in cfg or 'type' not in cfg.model:
        return
    model = _build(cfg)
    assert model.decode_head.num_classes == cfg.model.decode_head.num_classes
    if path.parent == PSP_DIR and path.name.startswith('pspnet_'):
        # configs/pspnet/'s configs resolve the package's own modules.
        assert type(model.decode_head).__module__.startswith('mmpsp.')
        assert type(model.backbone).__module__.startswith('mmpsp.')
        assert 'train_dataloader' in cfg and 'param_scheduler' in cfg


@pytest.mark.parametrize('name', DATASET_BASES)
def test_dataset_base_has_tta(name):
    cfg = Config.fromfile(str(CONFIG_DIR / '_base_' / 'datasets' /
                              f'{name}.py'))
    tta = cfg.tta_pipeline[1]
    assert tta.type == 'TestTimeAug'
    ratios = [t.scale_factor for t in tta.transforms[0]]
    assert ratios == [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert [t.prob for t in tta.transforms[1]] == [0.0, 1.0]
    assert cfg.val_evaluator.type == 'IoUMetric'


def _train_pipelines(dataset: dict) -> list:
    """Every pipeline of a training dataset config, wrappers included."""
    if 'datasets' in dataset:
        return [p for d in dataset.datasets for p in _train_pipelines(d)]
    if 'dataset' in dataset:
        return _train_pipelines(dataset.dataset)
    return [dataset.pipeline]


@pytest.mark.parametrize(
    'path', [p for p in TOP_LEVEL if 'train_dataloader' in Config.fromfile(
        str(p))],
    ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_train_pipeline_uses_the_fast_transforms(path):
    cfg = _load(path)
    for pipeline in _train_pipelines(cfg.train_dataloader.dataset):
        # Built as the dataset builds it, under the config's own scope
        # (configs/reuse/ run under default_scope='mmseg').
        built = Compose(pipeline).transforms
        names = {type(t).__name__ for t in built}
        assert not names & {'RandomCrop', 'PhotoMetricDistortion'}, names
        crops = any(isinstance(t, FastRandomCrop) for t in built)
        jitters = any(isinstance(t, FastPhotoMetricDistortion) for t in built)
        # The demo set is neither cropped nor jittered; the paper recipes
        # have no colour jitter.
        assert crops != ('scenes' in path.name), names
        assert jitters != ('paper' in path.name or 'scenes' in path.name), \
            names


def test_runtime_scope_and_tta_model():
    cfg = _load(PSP_DIR / 'pspnet_r50-d8_ade20k.py')
    assert cfg.default_scope == 'mmpsp'
    assert cfg.tta_model.type == 'SegTTAModel'
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.train_cfg.max_iters == 80000
    assert cfg.model.decode_head.num_classes == 150
    backbone = cfg.model.backbone
    assert backbone.init_cfg.checkpoint == 'open-mmlab://resnet50_v1c'
    assert backbone.strides == (1, 2, 1, 1)
    assert backbone.dilations == (1, 1, 2, 4)
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'


def test_from_scratch_switch():
    cfg = _load(PSP_DIR / 'pspnet_r50-d8_ade20k.py')
    cfg.merge_from_dict({'model.backbone.init_cfg': None})
    assert cfg.model.backbone.init_cfg is None
    model = _build(cfg)
    # ResNet falls back to its own Kaiming/constant init without a file.
    types = [c['type'] for c in model.backbone.init_cfg]
    assert 'Kaiming' in types and 'Pretrained' not in types
    check_pretrained(cfg, offline=True)  # nothing left to download


def test_camvid_config_matches_reference_recipe():
    cfg = _load(PSP_DIR / 'pspnet_r18-d8_camvid-360x480.py')
    assert cfg.model.backbone.depth == 18
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.decode_head.channels == 128
    assert cfg.model.auxiliary_head.channels == 64
    assert cfg.model.decode_head.num_classes == 11
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.train_cfg.max_iters == 6000
    assert cfg.param_scheduler[0].end == 6000
    assert cfg.param_scheduler[0].eta_min == 1e-4
    opt = cfg.optim_wrapper.optimizer
    assert (opt.lr, opt.momentum, opt.weight_decay) == (0.01, 0.9, 5e-4)
    types = [t.type for t in cfg.train_pipeline]
    assert types[3] == 'mmpsp.FastRandomCrop'
    assert types[5] == 'mmpsp.FastPhotoMetricDistortion'
    assert [mmseg_transform_type(t) for t in types[2:6]] == [
        'RandomResize', 'RandomCrop', 'RandomFlip', 'PhotoMetricDistortion']
    assert cfg.train_pipeline[2].scale == (480, 360)
    assert cfg.train_pipeline[3].crop_size == (360, 480)
    assert cfg.train_dataloader.dataset.data_prefix.img_path == 'images/train'


def test_camvid_model_forward_loss_ignores_void():
    cfg = _load(PSP_DIR / 'pspnet_r18-d8_camvid-360x480.py')
    model = _build(cfg, meta=False)
    head = model.decode_head
    assert head.ignore_index == 255 == model.auxiliary_head.ignore_index
    torch.manual_seed(0)
    inputs = torch.rand(2, 3, 41, 57) * 255
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, 11, (1, 41, 57), dtype=torch.long))
        s.set_metainfo(dict(img_shape=(41, 57), ori_shape=(41, 57),
                            pad_shape=(41, 57)))
        samples.append(s)
    model.train()
    losses = model.loss(inputs, samples)
    assert torch.isfinite(losses['decode.loss_ce'])
    assert losses['aux.loss_ce'] > 0
    for s in samples:
        s.gt_sem_seg.data.fill_(255)
    ignored = model.loss(inputs, samples)
    # All pixels ignored: nothing to learn from, in both heads.
    assert ignored['decode.loss_ce'].item() == 0.0
    assert ignored['aux.loss_ce'].item() == 0.0


@pytest.mark.parametrize('name,stride', [('pspnet_r50-d8_ade20k.py', 8),
                                         ('pspnet_r50-d16_ade20k.py', 16)])
def test_output_stride(name, stride):
    cfg = _load(PSP_DIR / name)
    model = _build(cfg, meta=False).eval()
    with torch.no_grad():
        feats = model.backbone(torch.rand(1, 3, 64, 64))
    assert feats[3].shape[-2:] == (64 // stride, 64 // stride)
    assert feats[3].shape[1] == 2048


def test_ablation_diffs():
    head = _build(_load(PSP_DIR / 'pspnet_r50-d8_ade20k_b1.py'))
    assert tuple(head.decode_head.pool_scales) == (1, )
    cfg = _load(PSP_DIR / 'pspnet_r50-d8_ade20k_max.py')
    assert cfg.model.decode_head.pool_type == 'max'
    pools = [m for m in _build(cfg).decode_head.modules()
             if 'Pool' in type(m).__name__]
    assert pools and all('Max' in type(m).__name__ for m in pools)
    cfg = _load(PSP_DIR / 'pspnet_r50-d8_ade20k_no-dr.py')
    dr = _build(_load(PSP_DIR / 'pspnet_r50-d8_ade20k.py')).decode_head
    no_dr = _build(cfg).decode_head
    n_dr = sum(p.numel() for p in dr.parameters())
    n_no_dr = sum(p.numel() for p in no_dr.parameters())
    # Without reduction each branch keeps 2048 channels: a wider bottleneck.
    assert n_no_dr > n_dr
    cfg = _load(PSP_DIR / 'pspnet_r50-d8_ade20k_aux0.py')
    assert cfg.model.auxiliary_head.loss_decode.loss_weight == 0.0
    assert cfg.model.decode_head.loss_decode.loss_weight == 1.0


@pytest.mark.parametrize('name,crop,iters,wd', [
    ('pspnet_r50-d8_4xb4-150k_ade20k-473x473_paper.py', 473, 150000, 1e-4),
    ('pspnet_r50-d8_4xb4-30k_voc12aug-473x473_paper.py', 473, 30000, 1e-4),
    ('pspnet_r50-d8_8xb2-90k_cityscapes-713x713_paper.py', 713, 90000, 1e-4),
])
def test_paper_recipe(name, crop, iters, wd):
    cfg = _load(PSP_DIR / name)
    n_gpus, per_gpu = (int(x) for x in name.split('_')[2].split('-')[0]
                       .split('xb'))
    assert n_gpus * cfg.train_dataloader.batch_size == 16
    assert per_gpu == cfg.train_dataloader.batch_size
    assert cfg.train_cfg.max_iters == iters
    assert cfg.param_scheduler[0].end == iters
    assert cfg.optim_wrapper.optimizer.weight_decay == wd
    assert cfg.model.data_preprocessor.size == (crop, crop)
    ds = cfg.train_dataloader.dataset
    pipeline = (ds.datasets[0] if 'datasets' in ds else ds).pipeline
    assert 'mmpsp.FastRandomCrop' in [t.type for t in pipeline]
    types = [mmseg_transform_type(t.type) for t in pipeline]
    resize = pipeline[types.index('RandomResize')]
    assert resize.ratio_range == (0.5, 2.0)
    assert 'RandomFlip' in types
    assert pipeline[types.index('RandomCrop')].crop_size == (crop, crop)
    aug = {'RandomRotate', 'RandomGaussianBlur'}
    if 'cityscapes' in name:
        assert not aug & set(types)
    else:
        assert aug <= set(types)
        assert pipeline[types.index('RandomRotate')].degree == 10.0
    assert DATASETS.get(ds.type) is not None


def test_pretrained_resolution_and_offline_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    cfg = Config.fromfile(str(PSP_DIR / 'pspnet_r50-d8_ade20k.py'))
    found = find_pretrained(cfg.model)
    assert found == [('model.backbone.init_cfg', 'open-mmlab://resnet50_v1c')]
    url, local = resolve_checkpoint(found[0][1])
    assert url.startswith('https://') and url.endswith('.pth')
    assert local == str(tmp_path / 'checkpoints' / Path(url).name)

    with pytest.raises(PretrainedWeightsError) as err:
        check_pretrained(cfg, offline=True)
    message = str(err.value)
    for part in (url, local, '--cfg-options model.backbone.init_cfg=None',
                 'model.backbone.init_cfg.checkpoint=/path/to'):
        assert part in message
    # A cached file is what mmengine would load: no error, no network.
    Path(local).parent.mkdir(parents=True)
    Path(local).write_bytes(b'')
    check_pretrained(cfg, offline=True)

    # From scratch (CamVid) needs nothing.
    check_pretrained(Config.fromfile(
        str(PSP_DIR / 'pspnet_r18-d8_camvid-360x480.py')), offline=True)
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / 'missing.pth')
    with pytest.raises(PretrainedWeightsError, match='missing.pth'):
        check_pretrained(cfg, offline=False)


def test_pretrained_local_path_expands_home():
    # mmengine's local loader expands ``~``; a cached file there is found.
    assert resolve_checkpoint('~/weights.pth') == (
        None, str(Path('~/weights.pth').expanduser()))


def _normalise(x):
    """Drop spellings that differ from mmseg's but build the same thing."""
    if isinstance(x, dict):
        out = {k: _normalise(v) for k, v in x.items()
               if not (k == 'backend_args' and v is None)}
        if isinstance(out.get('type'), str):
            # mmpsp.FastRandomCrop and mmpsp.FastPhotoMetricDistortion give
            # mmseg's RandomCrop and PhotoMetricDistortion outputs bit for
            # bit (tests/test_datasets/test_transforms.py); only those two
            # names map.
            out['type'] = mmseg_transform_type(out['type'])
        if out.get('type') == 'LoadAnnotations':
            # The dataset class decides reduce_zero_label either way.
            out.pop('reduce_zero_label', None)
        if out.get('type') == 'mmpsp.AtomicCheckpointHook':
            # mmengine's CheckpointHook with the same arguments; only how
            # files reach the disk differs
            # (tests/test_engine/test_reliability.py).
            out['type'] = 'CheckpointHook'
        if 'sampler' in out and out.get('pin_memory') is True:
            # A loader's pinned host memory changes copy speed, not data.
            out.pop('pin_memory')
        return out
    if isinstance(x, (list, tuple)):
        # mmseg's VOC-aug Pad to the crop repeats the data preprocessor's
        # padding (same size, same 0 / 255 values).
        return [_normalise(v) for v in x
                if not (isinstance(v, dict) and v.get('type') == 'Pad')]
    return x


@pytest.mark.parametrize('name', sorted(MMSEG_TWINS))
def test_same_recipe_as_mmseg(name):
    ours = Config.fromfile(str(PSP_DIR / name)).to_dict()
    ref = Config.fromfile(str(MMSEG_TWINS[name])).to_dict()
    # mmseg names the ImageNet weights with the deprecated model-level
    # ``pretrained``; we use the backbone's init_cfg.
    init = ours['model']['backbone'].pop('init_cfg')
    assert init == dict(type='Pretrained', checkpoint=ref['model'].pop(
        'pretrained'))
    for key in RUNTIME_KEYS:
        if key == 'tta_pipeline' and key not in ref:
            continue  # mmseg's Pascal Context bases have no TTA
        assert _normalise(ours.get(key)) == _normalise(ref.get(key)), key


def test_mmseg_twins_found():
    assert len(MMSEG_TWINS) >= 20, sorted(MMSEG_TWINS)
