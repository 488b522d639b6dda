"""Under mmcv-lite, every route to a compiled mmcv op ends in one clear
:class:`~mmpsp.mmcv_lite.MissingOpError` naming the op and the fix: the
package import, a submodule import and a registry-built layer (through
tools/train.py)."""
import sys
import textwrap

import pytest
from reliability_tiny import python_tool, run_tool, tiny_config, write_camvid

from mmpsp.mmcv_lite import (
    FULL_MMCV_HINT,
    MissingOpError,
    has_compiled_mmcv_ops,
)

pytestmark = pytest.mark.skipif(has_compiled_mmcv_ops(),
                                reason='full mmcv is installed')


@pytest.mark.parametrize('statement, op', [
    ('from mmcv.ops import CARAFE', 'mmcv.ops.CARAFE'),
    ('from mmcv.ops.carafe import CARAFE', 'mmcv.ops.carafe'),
    ('import mmcv.ops.deform_conv', 'mmcv.ops.deform_conv'),
    ('from mmcv.cnn import build_conv_layer; '
     "build_conv_layer(dict(type='DCN'), 3, 4, 3)", "type='DCN'"),
    ('from mmcv.cnn import build_conv_layer; '
     "build_conv_layer(dict(type='DCNv2'), 3, 4, 3)", "type='DCNv2'"),
    ('from mmcv.cnn import build_norm_layer; '
     "build_norm_layer(dict(type='MMSyncBN'), 4)", "type='MMSyncBN'"),
])
def test_every_route_names_the_op(statement, op):
    script = textwrap.dedent(f'''
        import mmpsp
        from mmpsp.mmcv_lite import MissingOpError
        try:
            {statement}
        except MissingOpError as error:
            print('refused:', error)
    ''')
    proc = run_tool([sys.executable, '-c', script])
    assert f'refused: {op}' in proc.out
    assert "needs mmcv's compiled extension (mmcv._ext)" in proc.out
    assert FULL_MMCV_HINT in proc.out
    assert 'Cannot find None' not in proc.out


def test_error_is_what_optional_imports_catch():
    # mmseg's optional heads wrap `from mmcv.ops import X` in
    # `except ModuleNotFoundError`; importing them still works.
    assert issubclass(MissingOpError, ModuleNotFoundError)
    with pytest.raises(ImportError):
        from mmcv.ops.carafe import CARAFE  # noqa: F401
    from mmcv.ops import point_sample  # pure Python: still there
    assert callable(point_sample)
    import mmseg.models  # noqa: F401


@pytest.mark.slow
def test_dcn_head_through_train_tool(tmp_path):
    data = write_camvid(tmp_path / 'camvid')
    work = tmp_path / 'work'
    cfg = tiny_config(data, work)
    # Every ConvModule of the head builds its conv from the registry.
    cfg.model.decode_head.conv_cfg = dict(type='DCN', deform_groups=1)
    path = tmp_path / 'dcn.py'
    cfg.dump(str(path))
    proc = run_tool(python_tool('train.py', path), expect_rc=None)
    assert proc.returncode != 0
    assert "MissingOpError: type='DCN' (mmcv.ops.deform_conv." \
        'DeformConv2dPack, registered only by full mmcv)' in proc.out
    assert FULL_MMCV_HINT in proc.out
    assert not list(work.glob('*.pth'))
