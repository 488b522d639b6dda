"""Faults during training: bad data at start, non-finite loss, bad labels
mid-run, a crash while a checkpoint is written, resuming after it, and a
failing rank in a 2-process gloo job.

Training runs a tiny ResNetV1c-D8 + FCN model on 32x32 images written into
``tmp_path``, through mmpsp's training entry point (``run_train``, which
``tools/train.py`` calls) or the real ``tools/train.py`` in a subprocess
where a process has to die.
"""
import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from data_factories import CLASSES, REPO, dataset_cfg, label_map, write_dataset
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import find_latest_checkpoint
from PIL import Image

from mmpsp.apis import run_train
from mmpsp.engine import (
    DataCheckError,
    LabelValueError,
    NonFiniteLossError,
    check_before_run,
)
from mmpsp.engine.hooks.atomic_checkpoint_hook import FILE_MODE, atomic_write
from mmpsp.registry import HOOKS

NUM = len(CLASSES)
RUNTIME = Config.fromfile(str(REPO / 'configs' / '_base_' /
                              'default_runtime.py'))
DECLARED_HOOK_TYPES = [h['type'] for h in RUNTIME.custom_hooks]


def tiny_config(root: Path, work_dir: Path, max_iters: int = 6,
                interval: int = 2, max_keep_ckpts: int = 2,
                **train_loader) -> Config:
    """A complete training config for the dataset at ``root``."""
    norm_cfg = dict(type='BN', requires_grad=True)

    def head(in_channels: int, in_index: int, weight: float) -> dict:
        return dict(
            type='mmseg.FCNHead', in_channels=in_channels, in_index=in_index,
            channels=8, num_convs=1, concat_input=False, dropout_ratio=0.,
            num_classes=NUM, norm_cfg=norm_cfg, align_corners=False,
            loss_decode=dict(type='mmseg.CrossEntropyLoss',
                             loss_weight=weight))

    ds = dataset_cfg(root)
    ds['pipeline'][1:1] = [dict(type='Resize', scale=(32, 32),
                                keep_ratio=False)]
    loader = dict(batch_size=2, num_workers=0,
                  sampler=dict(type='InfiniteSampler', shuffle=True),
                  dataset=ds)
    loader.update(train_loader)
    return Config(dict(
        default_scope='mmpsp',
        work_dir=str(work_dir),
        launcher='none',
        randomness=dict(seed=0),
        log_level='WARNING',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        model=dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor', mean=[120.] * 3,
                std=[60.] * 3, bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
                size=(32, 32)),
            backbone=dict(
                type='mmseg.ResNetV1c', depth=18, stem_channels=8,
                base_channels=4, out_indices=(0, 1, 2, 3),
                dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1),
                norm_cfg=norm_cfg, contract_dilation=True),
            decode_head=head(32, 3, 1.0),
            auxiliary_head=head(16, 2, 0.4),
            train_cfg=dict(), test_cfg=dict(mode='whole')),
        train_dataloader=loader,
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=[
            dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                 end=max_iters, by_epoch=False)
        ],
        log_processor=dict(by_epoch=False),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='mmpsp.AtomicCheckpointHook',
                            by_epoch=False, interval=interval,
                            max_keep_ckpts=max_keep_ckpts)),
        # The hooks every mmpsp config declares. channels_last off: these
        # tests compare a run made in this process with one that
        # tools/train.py makes in a subprocess; with NHWC convolutions on
        # CPU the two differ in the last bits (contiguous ones agree).
        # tests/test_engine/test_resume.py shows resume itself exact with
        # channels_last.
        custom_hooks=[
            dict(h, channels_last=False) if 'SpeedLevers' in h['type'] else h
            for h in copy.deepcopy(RUNTIME.custom_hooks)
        ],
    ))


def load_state(path) -> dict:
    return torch.load(path, map_location='cpu')['state_dict']


@pytest.fixture
def data(tmp_path) -> Path:
    return write_dataset(tmp_path / 'data', n=6)


def test_checks_change_nothing_and_read_only_their_split(data, tmp_path):
    cfg = tiny_config(data, tmp_path / 'w')
    before = copy.deepcopy(cfg.to_dict())
    check_before_run(cfg)
    # The run is the config's: the checks add no hook and change no key.
    assert cfg.to_dict() == before
    assert cfg.default_hooks.checkpoint.type == 'mmpsp.AtomicCheckpointHook'
    assert [h['type'] for h in cfg.custom_hooks] == DECLARED_HOOK_TYPES
    # An evaluation run checks only its own split: a missing train folder
    # does not block it.
    cfg.test_dataloader = copy.deepcopy(cfg.train_dataloader)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'gone')
    with pytest.raises(ValueError, match='gone'):
        check_before_run(cfg)
    check_before_run(cfg, splits=('test',))


@pytest.mark.parametrize('fault', ['empty', 'data_root', 'label'])
def test_training_refuses_bad_data_up_front(fault, data, tmp_path):
    cfg = tiny_config(data, tmp_path / 'w')
    ds = cfg.train_dataloader.dataset
    if fault == 'empty':
        for f in (data / 'images' / 'train').iterdir():
            f.unlink()
        expected = f'no *.png files under {data / "images" / "train"}'
    elif fault == 'data_root':
        ds.data_root = 'no/such/dir'
        expected = f'resolved: {os.path.abspath("no/such/dir")}'
    else:
        lab = label_map(3)
        lab[5, 5] = 9
        Image.fromarray(lab).save(data / 'annotations' / 'train' / 'f3.png')
        expected = str(data / 'annotations' / 'train' / 'f3.png')
    with pytest.raises(DataCheckError if fault != 'data_root' else
                       ValueError) as err:
        run_train(cfg)
    assert expected in str(err.value)
    assert not (tmp_path / 'w').exists() or not list(
        (tmp_path / 'w').glob('*.pth'))


def test_label_out_of_range_mid_run_names_the_file(data, tmp_path):
    # The automatic check decodes no file here (max_samples=0): the bad
    # label reaches training and the per-batch guard must name it.
    bad = data / 'annotations' / 'train' / 'f4.png'
    lab = label_map(4)
    lab[0, :3] = [6, 9, 255]
    Image.fromarray(lab).save(bad)
    cfg = tiny_config(data, tmp_path / 'w', max_iters=12)
    cfg.data_check = dict(max_samples=0)
    with pytest.raises(LabelValueError) as err:
        run_train(cfg)
    message = str(err.value)
    assert str(bad) in message
    assert 'label values [6, 9]' in message
    assert f'num_classes={NUM}' in message and 'ignore_index=255' in message


def test_label_guard_sees_through_tta_model_and_views():
    """Under --tta the segmentor sits in SegTTAModel.module and a batch holds
    one list of samples per augmented view."""
    from types import SimpleNamespace

    from mmengine.structures import PixelData
    from mmseg.models import SegTTAModel
    from mmseg.structures import SegDataSample

    from mmpsp.engine import LabelRangeHook

    class Segmentor(torch.nn.Module):
        decode_head = SimpleNamespace(num_classes=NUM, ignore_index=255)

        def test_step(self, data):
            return []

    segmentor = Segmentor()
    hook = LabelRangeHook()
    hook.before_run(SimpleNamespace(model=SegTTAModel(module=segmentor)))
    assert hook.num_classes == NUM

    def view(value: int) -> list:
        sample = SegDataSample(metainfo=dict(seg_map_path='x.png'))
        label = torch.zeros(1, 4, 4, dtype=torch.int64)
        label[0, 0, 0] = value
        sample.gt_sem_seg = PixelData(data=label)
        return [sample]

    hook.before_test_iter(None, 0, dict(data_samples=[view(0), view(255)]))
    with pytest.raises(LabelValueError, match=r'\[9\] in x.png'):
        hook.before_test_iter(None, 0, dict(data_samples=[view(0), view(9)]))


@HOOKS.register_module(name='TestPoisonWeightsHook', force=True)
class PoisonWeightsHook(Hook):
    """Sets the auxiliary classifier to NaN after iteration ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                runner.model.auxiliary_head.conv_seg.weight.fill_(
                    float('nan'))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
        data, tmp_path):
    work = tmp_path / 'w'
    cfg = tiny_config(data, work, max_iters=8, interval=2)
    # Poisoned after iteration 4 (its checkpoint is written first, then the
    # weights turn NaN): iteration 5 is the first non-finite loss.
    cfg.custom_hooks = cfg.custom_hooks + [
        dict(type='TestPoisonWeightsHook', at=4, priority='LOWEST')]
    with pytest.raises(NonFiniteLossError) as err:
        run_train(cfg)
    message = str(err.value)
    assert 'non-finite loss at iteration 5' in message
    assert 'aux.loss_ce=nan' in message
    assert 'decode.loss_ce' not in message  # only the broken term
    assert str(work / 'iter_4.pth') in message
    assert sorted(p.name for p in work.glob('*.pth')) == [
        'iter_2.pth', 'iter_4.pth']
    last = find_latest_checkpoint(str(work))
    assert last == str(work / 'iter_4.pth')
    state = load_state(last)
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


def test_atomic_write_keeps_old_file_on_crash(tmp_path, monkeypatch):
    target = tmp_path / 'ckpt.pth'
    atomic_write(b'old', target)

    def crash(fd):
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(os, 'fsync', crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(b'new' * 1000, target)
    assert target.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['ckpt.pth']
    monkeypatch.undo()
    atomic_write(b'new', target)
    assert target.read_bytes() == b'new'
    assert target.stat().st_mode & 0o777 == FILE_MODE  # not mkstemp's 0600


# Runs tools/train.py and dies (SIGKILL-like os._exit, no cleanup) in the
# middle of writing the ``crash_at``-th checkpoint file.
CRASH_SCRIPT = textwrap.dedent('''
    import os, runpy, sys
    calls = []

    def dying_fsync(fd):
        calls.append(fd)
        if len(calls) == int(os.environ['CRASH_AT']):
            os._exit(137)
        return real_fsync(fd)

    real_fsync = os.fsync
    os.fsync = dying_fsync
    sys.argv = ['tools/train.py'] + sys.argv[1:]
    runpy.run_path('tools/train.py', run_name='__main__')
''')


@pytest.mark.slow
def test_crash_while_saving_then_resume_matches_uninterrupted(
        data, tmp_path):
    # Uninterrupted reference: 6 iterations, checkpoints at 2, 4, 6.
    ref = tmp_path / 'ref'
    run_train(tiny_config(data, ref))
    final = load_state(ref / 'iter_6.pth')

    # Same run keeping one checkpoint, killed while the iteration-4 one is
    # being written (atomic_write fsyncs: iter_2 file, dir, last_checkpoint,
    # dir, iter_4). mmengine's CheckpointHook would already have deleted
    # iter_2 at this point.
    work = tmp_path / 'crashed'
    cfg_file = tmp_path / 'tiny.py'
    tiny_config(data, work, max_keep_ckpts=1).dump(str(cfg_file))
    proc = subprocess.run(
        [sys.executable, '-c', CRASH_SCRIPT, str(cfg_file)],
        cwd=REPO, env=dict(os.environ, CRASH_AT='5'), capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr[-3000:]
    names = sorted(p.name for p in work.iterdir())
    assert 'iter_4.pth' not in names  # never half-written under its name
    assert any(n.startswith('.iter_4.pth.') for n in names)  # the torn temp
    latest = find_latest_checkpoint(str(work))
    assert latest == str(work / 'iter_2.pth')
    load_state(latest)  # loads

    cfg = tiny_config(data, work, max_keep_ckpts=1)
    cfg.resume = True
    run_train(cfg)
    resumed = load_state(work / 'iter_6.pth')
    assert resumed.keys() == final.keys()
    for key, value in final.items():
        torch.testing.assert_close(resumed[key], value, msg=key)
    assert [p.name for p in work.glob('*.pth')] == ['iter_6.pth']
    assert not list(work.glob('.*.tmp'))  # the torn file is cleaned up


@pytest.mark.slow
def test_failing_rank_ends_the_job(data, tmp_path):
    # Rank r reads samples r, r+2, ... (no shuffle): only rank 1 reads f1.
    bad = data / 'annotations' / 'train' / 'f1.png'
    lab = label_map(1)
    lab[2, 2] = 8
    Image.fromarray(lab).save(bad)
    cfg = tiny_config(data, tmp_path / 'w', max_iters=20,
                      sampler=dict(type='InfiniteSampler', shuffle=False))
    cfg.data_check = dict(max_samples=0)
    cfg_file = tmp_path / 'tiny.py'
    cfg.dump(str(cfg_file))
    # A hang would show as TimeoutExpired: gloo's collective timeout is 30
    # minutes, far beyond this limit.
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', str(cfg_file), '2'],
        cwd=REPO, capture_output=True, text=True, timeout=400,
        env=dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable,
                 PORT=str(29500 + os.getpid() % 1000)))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f'label values [8] in {bad}' in out
    assert 'rank 1 failed with LabelValueError' in out
    assert not list((tmp_path / 'w').glob('iter_20.pth'))


@pytest.mark.slow
def test_failing_process_exits_despite_live_thread(tmp_path):
    # A non-daemon thread (a logger, a prefetcher) keeps Python alive after
    # an uncaught exception; under a launcher the peers then wait for it.
    script = textwrap.dedent('''
        import threading
        from mmpsp.apis.fail_fast import install_fail_fast
        assert install_fail_fast()
        threading.Thread(target=threading.Event().wait).start()
        raise ValueError('bad sample /data/x.png')
    ''')
    proc = subprocess.run(
        [sys.executable, '-c', script], cwd=REPO, capture_output=True,
        text=True, timeout=120, env=dict(os.environ, WORLD_SIZE='2',
                                         RANK='1'))
    assert proc.returncode == 1
    assert '[rank1]: ValueError: bad sample /data/x.png' in proc.stderr
    assert 'rank 1 failed with ValueError' in proc.stderr


@pytest.mark.slow
def test_slurm_launcher_gets_fail_fast_before_world_size_exists(tmp_path):
    # srun exports SLURM_NTASKS, not WORLD_SIZE, when the entry point
    # adapts the config to the machine.
    script = textwrap.dedent('''
        import sys
        from mmengine.config import Config
        from mmpsp.apis import adapt_to_machine
        try:
            adapt_to_machine(Config(dict(launcher='slurm')))
        except Exception:
            pass  # no SLURM_PROCID here: the process group cannot start
        print(sys.excepthook is not sys.__excepthook__)
    ''')
    env = {k: v for k, v in os.environ.items() if k != 'WORLD_SIZE'}
    proc = subprocess.run(
        [sys.executable, '-c', script], cwd=REPO, capture_output=True,
        text=True, timeout=120, env=dict(env, SLURM_NTASKS='2'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == 'True'
