"""Every config declares its run: code adds no hook on CPU, and a config
that drops the runtime's hooks gets a warning naming each."""
import copy
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmpsp.apis import adapt_to_machine, build_train_config
from mmpsp.engine.checks import missing_declared_hooks, warn_missing_hooks

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / 'configs').rglob('*.py')
                 if '_base_' not in p.parts)
CAMVID = REPO / 'configs' / 'pspnet' / 'pspnet_r18-d8_camvid-360x480.py'
RUNTIME = Config.fromfile(str(REPO / 'configs' / '_base_' /
                              'default_runtime.py'))


def _hooks(cfg: Config):
    return (copy.deepcopy(list(cfg.get('custom_hooks') or [])),
            copy.deepcopy(dict(cfg.get('default_hooks') or {})))


def test_configs_found():
    assert len(CONFIGS) >= 30


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_entry_point_runs_the_declared_hooks(path, tmp_path):
    declared = _hooks(Config.fromfile(str(path)))
    cfg = build_train_config(str(path), work_dir=str(tmp_path))
    adapt_to_machine(cfg)
    assert _hooks(cfg) == declared
    types = [h['type'] for h in declared[0]]
    assert types[:len(RUNTIME.custom_hooks)] == [
        h['type'] for h in RUNTIME.custom_hooks]
    assert declared[1]['checkpoint']['type'] == 'mmpsp.AtomicCheckpointHook'
    assert missing_declared_hooks(cfg) == []


def test_replacing_custom_hooks_warns_naming_each(tmp_path):
    (tmp_path / 'user.py').write_text(
        f"_base_ = '{CAMVID}'\n"
        "custom_hooks = [dict(type='EMAHook')]\n"
        "default_hooks = dict(checkpoint=dict(\n"
        "    _delete_=True, type='CheckpointHook', interval=10))\n")
    cfg = Config.fromfile(str(tmp_path / 'user.py'))
    logger = MMLogger.get_instance('declared_hooks_test')
    missing = warn_missing_hooks(cfg, logger=logger)
    names = ' '.join(missing)
    for hook in ('NonFiniteLossHook', 'LabelRangeHook', 'IterationSeedHook',
                 'SpeedLeversHook', 'CheckpointCheckHook',
                 'RankZeroBuffersHook', 'AtomicCheckpointHook'):
        assert hook in names
    assert len(missing) == 7
    # Extending the base's list instead keeps them all.
    (tmp_path / 'extend.py').write_text(
        f"_base_ = '{CAMVID}'\n"
        "custom_hooks = _base_.custom_hooks + [dict(type='EMAHook')]\n")
    assert missing_declared_hooks(
        Config.fromfile(str(tmp_path / 'extend.py'))) == []
