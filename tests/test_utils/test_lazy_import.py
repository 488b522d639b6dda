"""``import mmpsp`` and ``mmpsp --help`` load no torch; the deferred set-up
still reaches whoever imports mmseg, mmengine's runner or mmcv.cnn."""
import subprocess
import sys

import pytest

from mmpsp.utils.import_hooks import when_imported, while_importing
from mmpsp.utils.lazy import lazy_exports


def run_python(code: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


HEAVY = ('torch', 'mmseg', 'mmcv', 'mmengine.runner', 'mmpsp.models')


@pytest.mark.slow
def test_import_mmpsp_loads_no_torch_nor_mmseg():
    proc = run_python('import sys, mmpsp\n'
                      f'print([m for m in {HEAVY!r} if m in sys.modules])\n')
    assert proc.stdout.strip() == '[]'


@pytest.mark.slow
def test_help_parses_before_loading_torch():
    proc = run_python(
        'import sys\n'
        'from mmpsp.apis.cli import main\n'
        'for argv in (["--help"], ["train", "--help"], ["test", "--help"]):\n'
        '    try:\n'
        '        main(argv)\n'
        '    except SystemExit as done:\n'
        '        assert done.code == 0, argv\n'
        f'print([m for m in {HEAVY!r} if m in sys.modules])\n')
    assert 'usage: mmpsp train' in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == '[]'


@pytest.mark.slow
def test_deferred_set_up_reaches_plain_mmseg_and_mmengine_users():
    # Nothing of mmpsp is used by name after the import: each change must
    # be in place when mmseg, mmengine's runner and config are imported.
    proc = run_python(
        'import warnings\n'
        'warnings.simplefilter("error", UserWarning)\n'
        'import mmpsp\n'
        'warnings.resetwarnings()\n'
        'with warnings.catch_warnings(record=True) as caught:\n'
        '    warnings.simplefilter("always")\n'
        '    import mmseg.models\n'
        'import mmcv.ops\n'
        'from mmengine.config.utils import MODULE2PACKAGE\n'
        'from mmengine.runner.checkpoint import CheckpointLoader\n'
        'from mmseg.registry import MODELS\n'
        'head = MODELS.build(dict(type="mmpsp.PSPHead", in_channels=4,\n'
        '    channels=2, num_classes=3, pool_scales=(1, 2)))\n'
        'print("msda", any("MultiScaleDeformable" in str(w.message)\n'
        '                  for w in caught))\n'
        'print("stand-in", getattr(mmcv.ops, "MMPSP_FALLBACK", False))\n'
        'print("scope", MODULE2PACKAGE.get("mmpsp"))\n'
        'print("loader", CheckpointLoader._schemes[""].__module__)\n'
        'print("head", type(head).__module__)\n')
    lines = dict(line.split(' ', 1) for line in proc.stdout.splitlines()
                 if ' ' in line)
    from mmpsp.mmcv_lite import has_compiled_mmcv_ops
    assert lines['msda'] == 'False'
    assert lines['stand-in'] == str(not has_compiled_mmcv_ops())
    assert lines['scope'] == 'mmpsp.registry'
    assert lines['loader'] == 'mmpsp.utils.safe_load'
    assert lines['head'] == 'mmpsp.models.decode_heads.psp_head'


def _fresh_module(tmp_path, monkeypatch, name, body):
    (tmp_path / f'{name}.py').write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_when_imported_runs_after_the_module_code_once(tmp_path,
                                                       monkeypatch):
    _fresh_module(tmp_path, monkeypatch, 'mmpsp_hook_target',
                  'VALUE = 1\n')
    seen = []
    when_imported('mmpsp_hook_target', lambda m: seen.append(m.VALUE))
    assert seen == []
    import importlib.util
    # A spec lookup alone imports nothing and must not use the hook up.
    assert importlib.util.find_spec('mmpsp_hook_target') is not None
    assert seen == []
    import mmpsp_hook_target
    assert seen == [1]
    # Already imported: the hook runs at once.
    when_imported('mmpsp_hook_target', lambda m: seen.append(m.VALUE + 1))
    assert seen == [1, 2]
    assert mmpsp_hook_target.__loader__.get_source(
        'mmpsp_hook_target') == 'VALUE = 1\n'


def test_while_importing_wraps_only_the_module_code(tmp_path, monkeypatch):
    import contextlib
    import warnings
    _fresh_module(tmp_path, monkeypatch, 'mmpsp_warning_target',
                  'import warnings\nwarnings.warn("noisy at import")\n')

    @contextlib.contextmanager
    def quiet():
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='noisy')
            yield

    while_importing('mmpsp_warning_target', quiet)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        import mmpsp_warning_target  # noqa: F401
        warnings.warn('noisy afterwards')
    assert [str(w.message) for w in caught] == ['noisy afterwards']


def test_lazy_exports_import_on_first_use_and_refuse_unknown_names():
    getattr_, dir_ = lazy_exports('mmpsp.utils',
                                  {'walk_dicts': '.config_tree',
                                   'errors': '.errors'})
    from mmpsp.utils.config_tree import walk_dicts
    assert getattr_('walk_dicts') is walk_dicts
    assert getattr_('errors') is sys.modules['mmpsp.utils.errors']
    assert {'walk_dicts', 'errors'} <= set(dir_())
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        getattr_('nothing')
