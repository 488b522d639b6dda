"""The speed levers keep mmseg's math; the benchmark tool runs on CPU."""
import json
import subprocess
import sys

import pytest
import torch
from data_factories import REPO
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from mmseg_reference import build_pspnet_pair
from speed_benchmark import make_batch

from mmpsp.models.decode_heads import FCNHead, PSPHead
from mmpsp.models.losses.head_loss import pixel_accuracy

BENCHMARK = (REPO / 'tools' /
             'analysis_tools' / 'benchmark.py')


def samples_with_labels(batch: int, size: int, num_classes: int):
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(batch):
        label = torch.randint(0, num_classes, (1, size, size), generator=gen)
        label[:, :3] = 255
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=label)
        out.append(sample)
    return out


def total_loss(losses: dict) -> torch.Tensor:
    return sum(v for k, v in losses.items() if k.startswith('loss'))


@pytest.mark.parametrize('avg_non_ignore', [False, True])
@pytest.mark.parametrize('head_type', ['psp', 'fcn'])
def test_lean_loss_equals_mmseg_loss(avg_non_ignore, head_type):
    from mmseg.models.decode_heads import FCNHead as MmsegFCNHead
    from mmseg.models.decode_heads import PSPHead as MmsegPSPHead
    loss_decode = [
        dict(type='CrossEntropyLoss', loss_weight=1.0,
             avg_non_ignore=avg_non_ignore),
        dict(type='CrossEntropyLoss', loss_weight=0.4,
             avg_non_ignore=avg_non_ignore, loss_name='loss_aux'),
    ]
    kwargs = dict(in_channels=8, channels=4, num_classes=5,
                  loss_decode=loss_decode)
    if head_type == 'psp':
        ref, ours = (MmsegPSPHead(pool_scales=(1, 2, 3), **kwargs),
                     PSPHead(pool_scales=(1, 2, 3), **kwargs))
    else:
        ref, ours = MmsegFCNHead(**kwargs), FCNHead(**kwargs)
    ours.load_state_dict(ref.state_dict())
    torch.manual_seed(0)
    feats = [torch.randn(2, 8, 9, 11)]
    samples = samples_with_labels(2, 37, 5)
    # Same dropout mask in both heads.
    torch.manual_seed(1)
    ref_losses = ref.loss(feats, samples, None)
    torch.manual_seed(1)
    our_losses = ours.loss(feats, samples, None)
    assert set(ref_losses) == set(our_losses)
    for key in ref_losses:
        torch.testing.assert_close(our_losses[key], ref_losses[key],
                                   rtol=1e-6, atol=1e-6)
    total_loss(ref_losses).backward()
    total_loss(our_losses).backward()
    for (name, a), b in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7,
                                   msg=name)


def test_pixel_accuracy_matches_mmseg_accuracy():
    from mmseg.models.losses import accuracy
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 13, 17)
    label = torch.randint(0, 7, (3, 13, 17))
    label[0, :4] = 255
    torch.testing.assert_close(
        pixel_accuracy(logits, label, 255),
        accuracy(logits, label, ignore_index=255))
    # All pixels ignored: no division error, and mmseg's value (its eps
    # terms make it 100).
    ignored = torch.full_like(label[:1], 255)
    torch.testing.assert_close(
        pixel_accuracy(logits[:1], ignored, 255),
        accuracy(logits[:1], ignored, ignore_index=255))


def test_compiled_loss_equals_eager_loss():
    torch.manual_seed(0)
    head = PSPHead(in_channels=8, channels=4, num_classes=5,
                   pool_scales=(1, 2))
    feats = [torch.randn(2, 8, 9, 9)]
    samples = samples_with_labels(2, 33, 5)
    head.eval()  # no dropout: both calls see the same logits
    eager = head.loss(feats, samples, None)
    head.compile_loss = True
    compiled = head.loss(feats, samples, None)
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-5,
                                   atol=1e-5)


@pytest.fixture(scope='module')
def r18_pair():
    ref, ours = build_pspnet_pair(depth=18, num_classes=11, output_stride=8)
    for model in (ref, ours):
        model.data_preprocessor.size = (64, 64)
    return ref, ours


def test_fast_settings_agree_with_fp32(r18_pair):
    """bf16 autocast and channels_last change results only within bf16."""
    _, model = r18_pair
    model.eval()
    batch = make_batch(2, 64, 11, torch.device('cpu'))
    data = model.data_preprocessor(batch, False)
    with torch.no_grad():
        ref = model.encode_decode(data['inputs'], [
            s.metainfo for s in data['data_samples']])
        model_cl = model.to(memory_format=torch.channels_last)
        cl = model_cl.encode_decode(
            data['inputs'].contiguous(memory_format=torch.channels_last),
            [s.metainfo for s in data['data_samples']])
        torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model.encode_decode(data['inputs'], [
                s.metainfo for s in data['data_samples']])
    model.to(memory_format=torch.contiguous_format)
    # bf16 keeps ~3 significant digits; compare on the logits' scale.
    scale = ref.abs().max()
    assert (low.float() - ref).abs().max() <= 0.05 * scale
    agree = (low.argmax(1) == ref.argmax(1)).float().mean()
    assert agree >= 0.9


def test_mmpsp_train_step_loss_equals_mmseg(r18_pair):
    ref, ours = r18_pair
    batch = make_batch(2, 64, 11, torch.device('cpu'))
    ref.train(), ours.train()
    torch.manual_seed(1)
    ref_out = ref.loss(**ref.data_preprocessor(batch, True))
    torch.manual_seed(1)
    our_out = ours.loss(**ours.data_preprocessor(batch, True))
    for key in ref_out:
        torch.testing.assert_close(our_out[key], ref_out[key], rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.slow
def test_benchmark_tool_cpu_smoke(tmp_path, repo_root):
    out = tmp_path / 'rows.json'
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK),
         '--device', 'cpu', '--depth', '18', '--num-classes', '11',
         '--size', '32', '--batch-size', '2', '--steps', '1', '--warmup',
         '1', '--infer-steps', '1', '--settings', 'fp32', '--json',
         str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '| fp32 |' in proc.stdout
    assert 'best training throughput' in proc.stdout
    rows = json.loads(out.read_text())
    assert {r['model'] for r in rows} == {'mmseg', 'mmpsp'}
    assert all(r['train_img_s'] > 0 and r['infer_fps'] > 0 for r in rows)


def test_benchmark_rejects_unknown_setting():
    from speed_benchmark import run_benchmark
    with pytest.raises(ValueError, match='unknown setting'):
        run_benchmark(['fp8'], torch.device('cpu'))


def test_speed_levers_hook_keeps_outputs(r18_pair):
    import copy

    from mmpsp.engine import SpeedLeversHook
    _, model = r18_pair
    model.eval()
    fast = copy.deepcopy(model)

    class FakeRunner:
        pass

    runner = FakeRunner()
    runner.model = fast
    SpeedLeversHook(channels_last=True, compile=False).before_train(runner)
    weight = fast.backbone.stem[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    batch = make_batch(1, 64, 11, torch.device('cpu'))
    data = model.data_preprocessor(batch, False)
    metas = [s.metainfo for s in data['data_samples']]
    with torch.no_grad():
        torch.testing.assert_close(
            fast.encode_decode(data['inputs'], metas),
            model.encode_decode(data['inputs'], metas), rtol=1e-4,
            atol=1e-4)


def test_add_speed_levers_and_compile_flag():
    from mmengine.config import Config

    from mmpsp.apis import add_speed_levers
    from mmpsp.engine import apply_speed_levers
    cfg = Config(dict(custom_hooks=[dict(type='NonFiniteLossHook')]))
    assert add_speed_levers(cfg) is None
    assert len(cfg.custom_hooks) == 1
    add_speed_levers(cfg, channels_last=True, compile=True)
    assert cfg.custom_hooks[-1] == dict(
        type='mmpsp.SpeedLeversHook', channels_last=True, compile=True)
    head = PSPHead(in_channels=8, channels=4, num_classes=5,
                   pool_scales=(1, 2))
    holder = torch.nn.Module()
    holder.decode_head = head
    apply_speed_levers(holder, compile=True)
    assert head.compile_loss is True
    assert 'compile' in type(head.forward).__module__ or hasattr(
        head.forward, '_torchdynamo_orig_callable')


@pytest.mark.slow
def test_benchmark_data_pipeline_on_camvid(camvid_root, repo_root):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARK), '--data',
         str(repo_root / 'configs' / 'pspnet' /
             'pspnet_r18-d8_camvid-360x480.py'),
         '--workers', '0', '--batches', '2', '--cfg-options',
         f'train_dataloader.dataset.data_root={camvid_root}'],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = [line for line in proc.stdout.splitlines()
           if line.startswith('| 0 |')]
    assert len(row) == 1
    workers, batch, s_per_batch, img_s = [
        float(x) for x in row[0].strip('|').split('|')]
    assert batch == 8 and s_per_batch > 0
    assert img_s == pytest.approx(batch / s_per_batch, rel=0.01)


def test_benchmark_data_pipeline_names_a_short_loader(camvid_root,
                                                      repo_root):
    from speed_benchmark import measure_data_pipeline
    options = {
        'train_dataloader.dataset.data_root': camvid_root,
        'train_dataloader.sampler': dict(type='DefaultSampler', shuffle=False)
    }
    with pytest.raises(ValueError, match='ran out after fewer than 1003'):
        measure_data_pipeline(
            str(repo_root / 'configs' / 'pspnet' /
                'pspnet_r18-d8_camvid-360x480.py'),
            num_workers=0, batches=1000, cfg_options=options)


def test_channels_last_is_the_config_default_and_can_be_turned_off():
    from mmpsp.apis import build_train_config
    config = 'configs/pspnet/pspnet_r18-d8_camvid-360x480.py'

    def levers(cfg):
        return [h for h in cfg.custom_hooks
                if h['type'] == 'mmpsp.SpeedLeversHook']

    on = build_train_config(config)
    assert levers(on) == [dict(type='mmpsp.SpeedLeversHook',
                               channels_last=True, compile=False)]
    off = build_train_config(config, channels_last=False, compile=True)
    # The config's entry changes; no second hook is appended.
    assert levers(off) == [dict(type='mmpsp.SpeedLeversHook',
                                channels_last=False, compile=True)]


def test_train_tool_parses_no_channels_last(monkeypatch):
    sys.path.insert(0, 'tools')
    try:
        import train as train_tool
    finally:
        sys.path.pop(0)
    for argv, expected in ((['--no-channels-last'], False),
                           (['--channels-last'], True), ([], None)):
        monkeypatch.setattr(sys, 'argv', ['train.py', 'cfg.py'] + argv)
        assert train_tool.parse_args().channels_last is expected


def test_pin_memory_only_with_cuda(monkeypatch):
    from mmengine.config import Config

    from mmpsp.apis import adapt_to_machine

    def config():
        return Config(dict(
            train_dataloader=dict(batch_size=2, pin_memory=True),
            val_dataloader=dict(batch_size=1, pin_memory=False)))

    # The dataset bases declare pinned loaders.
    declared = Config.fromfile(
        str(REPO / 'configs' / '_base_' /
            'datasets' / 'camvid.py'))
    assert declared.train_dataloader.pin_memory is True
    assert declared.val_dataloader.pin_memory is True
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = config()
    adapt_to_machine(cfg)
    assert cfg.train_dataloader.pin_memory is False
    assert cfg.val_dataloader.pin_memory is False
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = config()
    adapt_to_machine(cfg)
    assert cfg.train_dataloader.pin_memory is True
    # A loader's own choice stays.
    assert cfg.val_dataloader.pin_memory is False


def test_non_blocking_copies_only_for_a_cuda_model():
    _, model = build_pspnet_pair(depth=18, num_classes=5)
    from mmpsp.engine import apply_speed_levers
    apply_speed_levers(model)
    assert model.data_preprocessor._non_blocking is False
    if torch.cuda.is_available():
        apply_speed_levers(model.cuda())
        assert model.data_preprocessor._non_blocking is True


def test_summarise_training_log(tmp_path):
    from speed_benchmark import summarise_training_log
    with pytest.raises(FileNotFoundError, match='scalars.json'):
        summarise_training_log(str(tmp_path))
    rows = [dict(iter=i, time=t, data_time=t / 10, loss=1.0)
            for i, t in ((50, 9.0), (100, 8.0), (150, 0.2), (200, 0.4))]
    rows.insert(2, dict(aAcc=80.0, mIoU=40.0, step=100, time=3.0))
    rows.append(dict(aAcc=90.0, mIoU=50.5, mAcc=60.0, step=200,
                     data_time=0.1, time=2.0))
    # An older run in the same work dir is not read.
    for stamp, body in (('20250101_000000', [dict(iter=500, time=7.0,
                                                  data_time=1.0)]),
                        ('20260101_000000', rows)):
        folder = tmp_path / stamp / 'vis_data'
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text(
            ''.join(json.dumps(r) + '\n' for r in body))
    summary = summarise_training_log(str(tmp_path), skip_iters=100)
    assert summary['iters'] == 200
    assert summary['timed_rows'] == 2
    assert summary['s_per_iter'] == pytest.approx(0.3)
    assert summary['data_s_per_iter'] == pytest.approx(0.03)
    assert summary['val'] == dict(aAcc=90.0, mIoU=50.5, mAcc=60.0)
    with pytest.raises(ValueError, match='no training row after iteration'):
        summarise_training_log(str(tmp_path), skip_iters=200)


def test_resident_model_bytes_count_params_grads_and_buffers():
    from speed_benchmark import _tensor_bytes
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                torch.nn.BatchNorm2d(4))
    params = (4 * 3 * 9 + 4 + 4 + 4) * 4
    buffers = (4 + 4) * 4 + 8  # running mean/var fp32, num_batches int64
    assert _tensor_bytes(model) == params + buffers
    model(torch.randn(2, 3, 5, 5)).sum().backward()
    assert _tensor_bytes(model) == 2 * params + buffers
