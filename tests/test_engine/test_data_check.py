"""tools/check_dataset.py and mmpsp.engine.checks.data_check on broken data.

Each case writes a tiny dataset with one kind of fault into ``tmp_path``,
runs the real tool (in-process through ``runpy``; one case as a
subprocess) and checks the exit status and that the message names the
file, the value and the fix.
"""
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
from data_factories import (
    NUM,
    PALETTE,
    REPO,
    dataset_cfg,
    label_map,
    write_dataset,
)
from mmengine.config import Config
from PIL import Image

from mmpsp.engine import ConfigCheckError, DataCheckError, check_dataset

TOOL = REPO / 'tools' / 'check_dataset.py'
def write_config(root: Path,
                 path: Path,
                 num_classes: int = NUM,
                 aux_classes: Optional[int] = None,
                 dataset: Optional[dict] = None) -> Path:
    """Write a config file for the dataset at ``root``."""
    cfg = dict(
        default_scope='mmpsp',
        model=dict(
            type='EncoderDecoder',
            decode_head=dict(type='PSPHead', num_classes=num_classes),
            auxiliary_head=dict(
                type='FCNHead',
                num_classes=aux_classes if aux_classes else num_classes)),
        train_dataloader=dict(
            batch_size=2, dataset=dataset or dataset_cfg(root)))
    Config(cfg).dump(str(path))
    return path


def run_tool(capsys, *args: str):
    """Run tools/check_dataset.py in this process; (status, out, err)."""
    argv = sys.argv
    sys.argv = [str(TOOL)] + [str(a) for a in args]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(TOOL), run_name='__main__')
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _label(root: Path, i: int = 1) -> Path:
    return root / 'annotations' / 'train' / f'f{i}.png'


def _image(root: Path, i: int = 1) -> Path:
    return root / 'images' / 'train' / f'f{i}.png'


def out_of_range(root: Path) -> Path:
    lab = label_map(1)
    lab[0, 0] = 7
    Image.fromarray(lab).save(_label(root))
    return _label(root)


def colour_label(root: Path) -> Path:
    lab = label_map(1)
    Image.fromarray(np.array(PALETTE, np.uint8)[lab]).save(_label(root))
    return _label(root)


def palette_reordered(root: Path) -> Path:
    # Index i drawn in class (i + 1)'s colour: written with another order.
    img = Image.fromarray(label_map(1))
    shifted = PALETTE[1:] + PALETTE[:1]
    img.putpalette([c for rgb in shifted for c in rgb])  # 'L' -> 'P'
    img.save(_label(root))
    return _label(root)


def sixteen_bit(root: Path) -> Path:
    lab = label_map(1).astype(np.uint16)
    lab[0, 0] = 300
    Image.fromarray(lab).save(_label(root))  # PIL mode 'I;16'
    return _label(root)


def size_mismatch(root: Path) -> Path:
    Image.fromarray(label_map(1)[:, :-3]).save(_label(root))
    return _label(root)


def missing_label(root: Path) -> Path:
    _label(root).unlink()
    return _image(root)


def missing_image(root: Path) -> Path:
    _image(root).unlink()
    return _label(root)


def one_based(root: Path) -> Path:
    # ADE20K style: 0 = other, classes 1..NUM.
    for i in range(4):
        Image.fromarray(label_map(i, 0, NUM + 1)).save(_label(root, i))
    return _label(root, 0)


CASES: Dict[str, tuple] = {
    'out-of-range': (out_of_range,
                     ['label values [7]', 'num_classes=5', 'ignore_index']),
    'colour': (colour_label, ['3-channel', 'map each colour', 'index']),
    'palette-order': (palette_reordered,
                      ['another class order', "'road'", 'Re-encode']),
    '16-bit': (sixteen_bit, ['300 -> 44', 'uint8', "mode 'L'"]),
    'size': (size_mismatch, ['sizes differ', '(24, 20)', '(21, 20)']),
    'image-without-label': (missing_label,
                            ['images without a label file', "'.png'"]),
    'label-without-image': (missing_image, ['labels without an image']),
    'reduce-zero-label': (one_based, [
        'labels hold 0..5', 'reduce_zero_label=True',
        'train_dataloader.dataset.reduce_zero_label'
    ]),
}


def test_clean_dataset_passes(tmp_path, capsys):
    root = write_dataset(tmp_path / 'data')
    status, out, _ = run_tool(capsys, write_config(root, tmp_path / 'c.py'))
    assert status == 0, out
    assert 'train: 4 samples, 4 checked, 0 error(s), 0 warning(s)' in out


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_labels_are_reported(case: str, tmp_path, capsys):
    make, expected = CASES[case]
    root = write_dataset(tmp_path / 'data')
    bad_file = make(root)
    status, out, _ = run_tool(capsys, write_config(root, tmp_path / 'c.py'))
    assert status == 1, out
    assert '1 error(s)' in out
    assert str(bad_file) in out
    for text in expected:
        assert text in out


def test_label_map_and_ignore_index_are_applied(tmp_path, capsys):
    # Value 5 is void: valid once the dataset maps it to 255, as CamVid's
    # class maps its 11 (the tool must read labels as training does).
    root = write_dataset(tmp_path / 'data')
    for i in range(4):
        Image.fromarray(label_map(i, 0, NUM + 1)).save(_label(root, i))
    cfg = write_config(root, tmp_path / 'c.py')
    status, out, _ = run_tool(capsys, cfg)
    assert status == 1
    status, out, _ = run_tool(
        capsys, cfg, '--cfg-options', 'model.decode_head.ignore_index=5',
        'model.auxiliary_head.ignore_index=5')
    assert status == 0, out


@pytest.mark.parametrize('policy', ['stop', 'skip'])
def test_corrupt_files(policy: str, tmp_path, capsys):
    root = write_dataset(tmp_path / 'data')
    broken = [_image(root, 1), _label(root, 2)]
    for path in broken:
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    out_of_range(root)  # f1's label, but f1's image cannot be read
    Image.fromarray(label_map(3)[:, :-1]).save(_label(root, 3))
    status, out, err = run_tool(capsys, write_config(root, tmp_path / 'c.py'),
                                '--on-corrupt', policy)
    assert status == 1
    if policy == 'stop':
        assert f'cannot decode {broken[0]}' in err
        assert '--on-corrupt skip' in err
        assert str(broken[1]) not in err + out
    else:
        # Every unreadable file is named, and checking went on past them.
        report = out.split('unreadable files (skipped)')[1]
        for path in broken:
            assert str(path) in report.split('[')[0]
        assert 'unreadable files (skipped)' in out
        assert 'sizes differ' in out and str(_label(root, 3)) in out


def test_empty_dataset(tmp_path, capsys):
    root = write_dataset(tmp_path / 'data', n=0)
    status, _, err = run_tool(capsys, write_config(root, tmp_path / 'c.py'))
    assert status == 1
    assert 'train dataset is empty' in err
    assert f'no *.png files under {root / "images" / "train"}' in err
    assert 'data_prefix.img_path' in err


@pytest.mark.parametrize('where', ['data_root', 'img_path', 'ann_file'])
def test_missing_folders(where: str, tmp_path, capsys):
    root = write_dataset(tmp_path / 'data')
    ds = dataset_cfg(root)
    if where == 'data_root':
        ds['data_root'] = str(tmp_path / 'nowhere')
        expected = f'resolved: {tmp_path / "nowhere"}'
    elif where == 'img_path':
        ds['data_prefix']['img_path'] = 'imgs/train'
        expected = f'resolved: {root / "imgs" / "train"}'
    else:
        ds['ann_file'] = 'splits/train.txt'
        expected = f'resolved: {root / "splits" / "train.txt"}'
    status, _, err = run_tool(
        capsys, write_config(root, tmp_path / 'c.py', dataset=ds))
    assert status == 1
    assert expected in err
    assert where in err


def test_missing_data_root_names_data_root_option_that_fixes_it(
        tmp_path, capsys):
    root = write_dataset(tmp_path / 'data')
    ds = dataset_cfg(root)
    ds['data_root'] = str(tmp_path / 'nowhere')
    config = write_config(root, tmp_path / 'c.py', dataset=ds)
    status, _, err = run_tool(capsys, config)
    assert status == 1
    assert '--data-root /path/to/data' in err
    # The option it names points every dataset at the data.
    status, out, _ = run_tool(capsys, config, '--data-root', root)
    assert status == 0, out
    assert 'train: 4 samples, 4 checked, 0 error(s)' in out


@pytest.mark.parametrize('heads', [(NUM, NUM + 1), (NUM + 2, NUM + 2)])
def test_num_classes_disagree(heads, tmp_path, capsys):
    root = write_dataset(tmp_path / 'data')
    cfg = write_config(
        root, tmp_path / 'c.py', num_classes=heads[0], aux_classes=heads[1])
    status, _, err = run_tool(capsys, cfg)
    assert status == 1
    assert f'model.decode_head.num_classes={heads[0]}' in err
    assert f'model.auxiliary_head.num_classes={heads[1]}' in err
    assert f'classes={NUM}' in err
    assert f'model.decode_head.num_classes={NUM} ' in err  # the fix


def test_ignore_index_disagree(tmp_path):
    root = write_dataset(tmp_path / 'data')
    cfg = Config.fromfile(write_config(root, tmp_path / 'c.py'))
    cfg.val_evaluator = dict(type='IoUMetric', ignore_index=0)
    with pytest.raises(ConfigCheckError, match='val_evaluator.ignore_index=0'):
        check_dataset(cfg)


def test_sampling_is_bounded(tmp_path):
    root = write_dataset(tmp_path / 'data', n=10)
    cfg = Config.fromfile(write_config(root, tmp_path / 'c.py'))
    report = check_dataset(cfg, max_samples=3)
    assert (report.num_samples, report.num_checked) == (10, 3)
    with pytest.raises(ValueError, match="on_corrupt='later'"):
        check_dataset(cfg, on_corrupt='later')
    with pytest.raises(DataCheckError, match='no val_dataloader.dataset'):
        check_dataset(cfg, split='val')


@pytest.mark.slow
def test_tool_subprocess_exit_status(tmp_path, repo_root):
    root = write_dataset(tmp_path / 'data')
    bad = out_of_range(root)
    cfg = write_config(root, tmp_path / 'c.py')
    proc = subprocess.run(
        [sys.executable, str(TOOL), str(cfg)],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert str(bad) in proc.stdout and 'label values [7]' in proc.stdout


def test_camvid_passes(camvid_root: Path, repo_root: Path, capsys):
    cfg = Config.fromfile(
        str(repo_root / 'configs' / '_base_' / 'datasets' / 'camvid.py'))
    cfg.default_scope = 'mmpsp'
    cfg.model = dict(decode_head=dict(num_classes=11))
    cfg.train_dataloader.dataset.data_root = str(camvid_root)
    report = check_dataset(cfg, max_samples=24)
    assert report.num_samples == 367 and report.num_checked == 24
    assert report.issues == [], report.format()
    # Without the dataset's void mapping, void (11) would be trained on.
    cfg.train_dataloader.dataset.type = 'BaseSegDataset'
    cfg.train_dataloader.dataset.update(
        img_suffix='.jpg', seg_map_suffix='.png',
        metainfo=dict(classes=tuple(f'c{i}' for i in range(11))))
    report = check_dataset(cfg, max_samples=8)
    assert [i.kind for i in report.errors] == ['reduce-zero-label']
    assert 'set ignore_index=11' in report.errors[0].message


def test_reduce_zero_label_on_zero_based_labels_warns(tmp_path, capsys):
    root = write_dataset(tmp_path / 'data')  # values 0..4, 5 classes
    ds = dataset_cfg(root, reduce_zero_label=True)
    cfg = write_config(root, tmp_path / 'c.py', dataset=ds)
    status, out, _ = run_tool(capsys, cfg)
    assert status == 0, out  # a warning: value 5 may just be rare
    assert '1 warning(s)' in out
    assert 'no label holds 5' in out
    assert 'train_dataloader.dataset.reduce_zero_label=False' in out
    # A sample cannot show that a value never occurs: no warning then.
    status, out, _ = run_tool(capsys, cfg, '--max-samples', '2')
    assert status == 0 and '0 warning(s)' in out
