"""The ``mmpsp`` command, ``mmpsp::`` config names and the launch scripts'
interpreter check, in this (editable) install.

The wheel, installed outside the clone, is tested in
``test_wheel_install.py``.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mmpsp.apis import cli
from mmpsp.apis.run_options import (
    SlowCPUBF16Warning,
    cpu_has_native_bf16,
    enable_amp,
)
from mmpsp.deploy.export import ExportError, require_export_package
from mmpsp.utils.config_scope import mim_dir, resolve_config_name

REPO = Path(__file__).resolve().parents[2]
CAMVID = 'pspnet_r18-d8_camvid-360x480.py'


def test_mmpsp_scope_resolves_installed_configs(tmp_path):
    user = tmp_path / 'user.py'
    user.write_text(
        f"_base_ = ['mmpsp::pspnet/{CAMVID}']\n"
        "train_cfg = dict(max_iters=2)\n")
    cfg = Config.fromfile(str(user))
    recipe = Config.fromfile(str(REPO / 'configs' / 'pspnet' / CAMVID))
    assert cfg.train_cfg.max_iters == 2
    assert cfg.model.decode_head.num_classes == \
        recipe.model.decode_head.num_classes == 11
    assert cfg.train_dataloader.dataset.data_root == \
        recipe.train_dataloader.dataset.data_root
    bases = tmp_path / 'bases.py'
    bases.write_text(
        "_base_ = ['mmpsp::_base_/models/pspnet_r50-d8.py',\n"
        "          'mmpsp::_base_/default_runtime.py']\n")
    cfg = Config.fromfile(str(bases))
    assert cfg.model.decode_head.type == 'PSPHead'
    assert cfg.default_scope == 'mmpsp'


def test_installed_tree_is_the_clone_configs_one_file_per_name():
    # openmim (mim train mmpsp NAME.py) finds a config by its file name
    # anywhere under the package and refuses a name found twice.
    installed = sorted(p.relative_to(Path(mim_dir()) / 'configs').as_posix()
                       for p in (Path(mim_dir()) / 'configs').rglob('*.py'))
    clone = sorted(p.relative_to(REPO / 'configs').as_posix()
                   for p in (REPO / 'configs').rglob('*.py'))
    assert len(clone) > 30
    assert installed == clone
    names = [p.rpartition('/')[2] for p in clone if '_base_' not in p]
    assert len(names) == len(set(names))


def test_resolve_config_name_on_command_lines():
    path = resolve_config_name(f'mmpsp::pspnet/{CAMVID}')
    assert Path(path).is_file()
    assert Config.fromfile(path).model.backbone.depth == 18
    assert resolve_config_name('configs/x.py') == 'configs/x.py'


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(['--help'])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for command in ('train', 'test', 'infer', 'check', 'export', 'demo'):
        assert f'    {command} ' in text


@pytest.mark.parametrize('command,option', [
    ('train', '--data-root'), ('test', '--show-dir'),
    ('infer', '--cfg-options'), ('export', '--verify'),
    ('check', '--on-corrupt'), ('demo', '--no-baseline')])
def test_subcommand_help(command, option, capsys):
    try:
        code = cli.main([command, '--help'])
    except SystemExit as done:
        code = done.code
    assert code == 0
    text = capsys.readouterr().out
    assert option in text
    if command in cli.COMMANDS:
        assert text.startswith(f'usage: mmpsp {command}')
    else:
        # The installed tool's own help.
        script = Path(cli.TOOL_COMMANDS[command][0]).name
        assert text.startswith(f'usage: {script}')


def test_check_takes_installed_config_names(tmp_path, capsys):
    # The config resolves; its data root (absent here) is what is reported.
    code = cli.main(['check', f'mmpsp::pspnet/{CAMVID}', '--cfg-options',
                     f'train_dataloader.dataset.data_root={tmp_path}'])
    captured = capsys.readouterr()
    assert code == 1
    assert 'config file' not in captured.err
    assert str(tmp_path) in captured.out + captured.err


def test_console_script_help():
    script = shutil.which('mmpsp', path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip('no mmpsp console script next to this interpreter '
                    '(pip install -e . creates it)')
    result = subprocess.run([script, '--help'], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'usage: mmpsp' in result.stdout
    assert 'MultiScaleDeformableAttention' not in result.stderr


def test_missing_config_is_one_line_error(tmp_path, capsys):
    code = cli.main(['train', str(tmp_path / 'missing.py')])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith('mmpsp train: error: FileNotFoundError: config file')
    assert 'Traceback' not in err


def test_data_root_reaches_every_dataset():
    cfg = Config(dict(
        data_root='old',
        train_dataloader=dict(dataset=dict(
            type='ConcatDataset',
            datasets=[dict(type='A', data_root='old'),
                      dict(type='RepeatDataset', times=2,
                           dataset=dict(type='B', data_root='old'))])),
        val_dataloader=dict(dataset=dict(type='A', data_root='old')),
        test_dataloader=dict(dataset=dict(type='A'))))
    changed = cli.set_data_root(cfg, 'new')
    assert changed == [
        'train_dataloader.dataset.datasets.0.data_root',
        'train_dataloader.dataset.datasets.1.dataset.data_root',
        'val_dataloader.dataset.data_root',
        'test_dataloader.dataset.data_root',
    ]
    train = cfg.train_dataloader.dataset
    assert train.datasets[0].data_root == 'new'
    assert train.datasets[1].dataset.data_root == 'new'
    assert 'data_root' not in train.datasets[1]
    assert cfg.test_dataloader.dataset.data_root == 'new'


def test_cfg_options_data_root_reaches_the_datasets():
    def config():
        return Config(dict(
            data_root='old',
            train_dataloader=dict(dataset=dict(type='A', data_root='old')),
            val_dataloader=dict(dataset=dict(type='A', data_root='old'))))
    parser = argparse.ArgumentParser()
    cli.add_common_args(parser)
    cfg = config()
    cli.apply_data_root(cfg, parser.parse_args(
        ['--cfg-options', 'data_root=new']))
    assert cfg.train_dataloader.dataset.data_root == 'new'
    assert cfg.val_dataloader.dataset.data_root == 'new'
    cfg = config()
    cli.apply_data_root(cfg, parser.parse_args(
        ['--data-root', 'given', '--cfg-options', 'data_root=new']))
    assert cfg.val_dataloader.dataset.data_root == 'given'
    cfg = config()
    cli.apply_data_root(cfg, parser.parse_args([]))
    assert cfg.val_dataloader.dataset.data_root == 'old'


def test_show_dir_draws_every_image_unless_told():
    def config():
        return Config(dict(default_hooks=dict(
            visualization=dict(type='SegVisualizationHook', interval=50))))
    cfg = config()
    cli.draw_every_image(cfg)
    assert cfg.default_hooks.visualization.interval == 1
    cfg = config()
    cfg.default_hooks.visualization.interval = 7
    cli.draw_every_image(
        cfg, {'default_hooks.visualization.interval': 7})
    assert cfg.default_hooks.visualization.interval == 7


def test_progress_note_names_the_interval():
    def config(max_iters):
        return Config(dict(
            train_cfg=dict(max_iters=max_iters),
            default_hooks=dict(logger=dict(type='LoggerHook', interval=50))))
    short = cli.note_progress(config(30), 'train')
    assert 'max_iters=30 is less than the log interval 50' in short
    assert 'default_hooks.logger.interval=N' in short
    long = cli.note_progress(config(6000), 'train')
    assert 'the first at iteration 50' in long
    assert 'every 50 test images' in cli.note_progress(config(1), 'test')
    assert cli.note_progress(Config(dict(default_hooks=dict())),
                             'train') is None


@pytest.mark.parametrize('flags,expected', [
    ('fpu avx2 avx512f avx512_bf16', True), ('fpu amx_bf16', True),
    ('fpu sse4_2 avx2 fma', False), (None, None)])
def test_cpu_native_bf16_from_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / 'cpuinfo'
    text = 'processor\t: 0\n'
    if flags is not None:
        text += f'flags\t\t: {flags}\n'
    cpuinfo.write_text(text)
    assert cpu_has_native_bf16(str(cpuinfo)) is expected


def test_amp_warns_on_cpu_without_native_bf16(monkeypatch):
    import mmpsp.apis.run_options as run_options
    monkeypatch.setattr(run_options.torch.cuda, 'is_available',
                        lambda: False)

    def config():
        return Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    monkeypatch.setattr(run_options, 'cpu_has_native_bf16', lambda: False)
    with pytest.warns(SlowCPUBF16Warning, match='drop --amp'):
        assert enable_amp(config(), 'auto') == \
            'mmpsp.BF16AutocastOptimWrapper'
    monkeypatch.setattr(run_options, 'cpu_has_native_bf16', lambda: True)
    with _no_warning(SlowCPUBF16Warning):
        enable_amp(config(), 'bf16')


class _no_warning:
    """Fail if a warning of ``category`` is raised inside the block."""

    def __init__(self, category):
        self.category = category

    def __enter__(self):
        import warnings
        self.catcher = warnings.catch_warnings(record=True)
        self.caught = self.catcher.__enter__()
        warnings.simplefilter('always')

    def __exit__(self, *exc):
        self.catcher.__exit__(*exc)
        assert not [w for w in self.caught
                    if issubclass(w.category, self.category)]


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnx', None)
    with pytest.raises(ExportError, match=r'pip install "mmpsp\[export\]"'):
        require_export_package('onnx')


def _interpreter_without_torch() -> str:
    """An interpreter outside this environment, which has no torch."""
    base = Path(sys.base_prefix) / 'bin' / 'python3'
    if not base.exists() or sys.base_prefix == sys.prefix:
        pytest.skip('no base interpreter outside the virtual environment')
    probe = subprocess.run([str(base), '-c', 'import torch'],
                           capture_output=True, timeout=120)
    if probe.returncode == 0:
        pytest.skip(f'{base} has torch as well')
    return str(base)


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', ['cfg.py', '2']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '2'])])
def test_launch_script_names_the_fix_without_torch(tmp_path, script, args):
    env = dict(PATH=os.defpath, PYTHON=_interpreter_without_torch())
    result = subprocess.run(
        ['bash', str(REPO / 'tools' / script), *args], cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'cannot import torch' in result.stderr
    assert 'source .venv/bin/activate' in result.stderr
    assert 'PYTHON=' in result.stderr


def test_launch_script_without_python_on_path(tmp_path):
    # A PATH with the tools the script needs, and no python.
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'dirname').symlink_to(shutil.which('dirname'))
    env = dict(PATH=str(bin_dir))
    result = subprocess.run(
        [shutil.which('bash'), str(REPO / 'tools' / 'dist_train.sh'),
         'cfg.py', '2'], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 2
    assert "no Python interpreter 'python'" in result.stderr


def test_metafile_lists_every_pspnet_config():
    import yaml
    from mmengine.config.utils import _get_cfg_metainfo

    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    assert index['Import'] == ['configs/pspnet/metafile.yaml']
    meta = yaml.safe_load(
        (REPO / 'configs' / 'pspnet' / 'metafile.yaml').read_text())
    listed = [model['Config'] for model in meta['Models']]
    expected = sorted(
        p.relative_to(REPO).as_posix()
        for pattern in ('pspnet/pspnet_*.py', 'reuse/pspnet_*.py')
        for p in (REPO / 'configs').glob(pattern))
    assert sorted(listed) == expected
    assert all(model['In Collection'] == 'PSPNet' for model in meta['Models'])
    # Figures marked as mmseg's are those of the mmseg model they name.
    import mmseg
    theirs = yaml.safe_load((Path(mmseg.__file__).parent / '.mim' / 'configs'
                             / 'pspnet' / 'metafile.yaml').read_text())
    theirs = {model['Name']: model for model in theirs['Models']}
    copied = [m for m in meta['Models']
              if m['Metadata'].get('Results From', '').startswith('mmseg')]
    assert len(copied) >= 10
    for model in copied:
        name = model['Metadata']['Results From'].split('model ')[1].split()[0]
        assert model['Results'] == theirs[name]['Results'], model['Name']
        assert model['Weights'] == theirs[name]['Weights'], model['Name']
    # Read the way mmengine reads an installed package's model index.
    # (by the path after configs/, as mmseg's pspnet/NAME.py).
    info = _get_cfg_metainfo(str(Path(mim_dir()).parent),
                             'pspnet/pspnet_r50-d8_ade20k.py')
    assert info['Config'] == 'configs/pspnet/pspnet_r50-d8_ade20k.py'


@pytest.mark.slow
def test_dist_train_with_only_python_set(tmp_path):
    """``tools/dist_train.sh CONFIG 2`` from a shell without the venv on
    PATH, with only PYTHON pointing at this environment's interpreter."""
    from data_factories import tiny_config_file, write_camvid

    data = write_camvid(tmp_path / 'camvid')
    config = tiny_config_file(tmp_path / 'tiny.py', data, tmp_path / 'work')
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    env = dict(PATH=os.defpath, HOME=str(tmp_path), PYTHON=sys.executable,
               PORT=str(port), OMP_NUM_THREADS='1')
    result = subprocess.run(
        ['bash', str(REPO / 'tools' / 'dist_train.sh'), str(config), '2'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert 'Iter(train) [2/2]' in out
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()
