"""The memory mode of tools/analysis_tools/benchmark.py, on CPU at tiny
sizes, and its batch search."""
import json
import subprocess
import sys

import pytest
from memory_benchmark import build_segmentor, cpu_description, largest_batch

GB = 2**30
# R18-D8 with narrow heads: a training step takes well under a second.
TINY_MODEL = [
    'model.backbone.depth=18', 'model.decode_head.in_channels=512',
    'model.decode_head.channels=16', 'model.auxiliary_head.in_channels=256',
    'model.auxiliary_head.channels=8'
]
CONFIG = 'configs/pspnet/pspnet_r50-d8_ade20k.py'


def affine(fixed: float, per_image: float):
    calls = []

    def peak_of(batch: int) -> int:
        calls.append(batch)
        return int((fixed + per_image * batch) * GB)

    return peak_of, calls


@pytest.mark.parametrize('fixed,per_image,budget', [
    (0.5, 1.3, 6.0), (0.5, 1.3, 8.0), (0.2, 0.01, 24.0), (2.0, 3.0, 23.0)
])
def test_largest_batch_is_the_last_that_fits(fixed, per_image, budget):
    peak_of, calls = affine(fixed, per_image)
    best, seen = largest_batch(peak_of, int(budget * GB), start=2, cap=64)
    fitting = [b for b in range(2, 65) if fixed + per_image * b <= budget]
    assert best == max(fitting)
    # Doubling then bisection: each batch at most once, few of them.
    assert len(calls) == len(set(calls)) <= 12
    if best < 64:
        assert best + 1 in seen and seen[best + 1][0] > budget * GB
    assert seen[best] == (peak_of(best), 'measured')


def test_largest_batch_does_not_run_far_beyond_the_budget():
    peak_of, calls = affine(0.5, 1.0)
    # 2 and 4 are measured; 8 (8.5 GB) and 6 (6.5 GB), extrapolated from
    # them, exceed 1.25 x 5 GB and are not run; 5 (5.5 GB) is run.
    best, seen = largest_batch(peak_of, 5 * GB, start=2, cap=64)
    assert best == 4
    assert calls == [2, 4, 5]
    assert seen[8][1] == seen[6][1] == 'predicted'
    assert seen[8][0] == pytest.approx(8.5 * GB, rel=1e-6)


def test_largest_batch_cap_start_known_and_out_of_memory():
    peak_of, calls = affine(0.1, 0.01)
    assert largest_batch(peak_of, GB, start=2, cap=16)[0] == 16
    assert max(calls) == 16
    peak_of, calls = affine(3.0, 1.0)
    best, seen = largest_batch(peak_of, GB, start=2)
    assert best is None and calls == [2]
    # Known batches are not run again; out of memory counts as too big.
    peak_of, calls = affine(0.5, 1.0)
    best, seen = largest_batch(
        lambda b: None if b >= 6 else peak_of(b), 100 * GB, start=2,
        known={4: int(4.5 * GB)})
    assert best == 5 and 4 not in calls
    assert seen[6] == (None, 'out of memory')


@pytest.mark.slow
def test_memory_mode_runs_on_cpu(repo_root, tmp_path):
    out = tmp_path / 'memory.json'
    cmd = [
        sys.executable, 'tools/analysis_tools/benchmark.py', '--device',
        'cpu', '--memory', '--parts', 'loss', 'step', 'saved', '--size',
        '256', '--batch-size', '2', '--num-classes', '19', '--repeats', '1',
        '--loss-repeats', '1', '--search-variants', 'mmpsp',
        '--config', CONFIG, '--cfg-options', *TINY_MODEL,
        'model.decode_head.num_classes=19',
        'model.auxiliary_head.num_classes=19', '--budget-gb', '50',
        '--max-batch', '4', '--json', str(out)
    ]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert 'allocator accounting' in text and 'high-water' in text
    # CPU figures name the vector units they were measured with.
    assert 'torch CPU capability ' in text.splitlines()[0]
    assert 'native bf16: ' in text.splitlines()[0]
    assert '| variant | batch | peak MiB |' in text
    assert '| variant | batch | peak GiB |' in text
    report = json.loads(out.read_text())

    loss = {row['variant']: row for row in report['loss']}
    assert set(loss) == {'lean', 'chunked', 'mmseg'}
    full_res = 2 * 19 * 256 * 256 * 4  # fp32 upsampled logits
    # The full-resolution paths hold the logits and their log-softmax (or
    # gradient) at once; the chunked one stays near its 8 MiB budget.
    assert loss['lean']['peak'] >= 2 * full_res
    assert loss['mmseg']['peak'] >= 2 * full_res
    assert loss['chunked']['peak'] < 0.6 * loss['lean']['peak']
    assert all(row['seconds'] > 0 and row['rss'] is not None
               for row in loss.values())

    step = {row['variant']: row for row in report['step']}
    assert set(step) == {'mmpsp', 'mmseg'}
    options = {key: int(value) for key, value in
               (arg.split('=') for arg in TINY_MODEL)}
    model = build_segmentor(str(repo_root / CONFIG), options, 256)
    params = sum(p.numel() * 4 for p in model.parameters())
    for row in step.values():
        # Weights, gradients and SGD momentum at least.
        assert row['peak'] >= 3 * params
        assert row['seconds'] > 0
    # The search found batch 4 within 50 GB, measured in its own process.
    assert set(report['search']) == {'mmpsp'}
    best, seen = report['search']['mmpsp']
    assert best == 4
    assert seen['4'][1] == 'measured' and seen['2'][1] == 'measured'
    assert seen['4'][0] > seen['2'][0]

    saved = dict(report['saved'])
    assert {'backbone.layer4', 'decode_head.bottleneck'} <= set(saved)
    # Right after the forward, weights, SGD momentum and everything saved
    # for backward are live at once.
    assert 0 < sum(saved.values()) <= step['mmpsp']['peak'] - 2 * params


def test_memory_mode_names_a_missing_config(repo_root):
    proc = subprocess.run(
        [sys.executable, 'tools/analysis_tools/benchmark.py', '--memory',
         '--config', 'configs/no_such_config.py'], cwd=repo_root,
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert '--config configs/no_such_config.py: no such file' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_cpu_description_reads_model_and_bf16_flags(tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    cpuinfo.write_text('model name\t: Example CPU 9000\n'
                       'flags\t\t: fpu avx2 fma\n')
    text = cpu_description(str(cpuinfo))
    assert text.startswith('Example CPU 9000, ')
    assert text.endswith('native bf16: no')
    cpuinfo.write_text('model name\t: Example CPU 9001\n'
                       'flags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n')
    assert cpu_description(str(cpuinfo)).endswith(
        'native bf16: amx_bf16, avx512_bf16')
