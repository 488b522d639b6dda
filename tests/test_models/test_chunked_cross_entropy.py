"""Chunked upsample + cross-entropy + accuracy against F.interpolate with
mmseg's loss math.

Errors are relative over the whole tensor: ``max|a - b| / max|b|``. The
reference is ``F.interpolate`` plus mmseg's ``CrossEntropyLoss`` semantics
in float64, and mmseg's own ``CrossEntropyLoss`` and ``accuracy`` in fp32.
"""
import importlib
import warnings
from typing import List, Optional, Sequence

import pytest
import torch
import torch.nn.functional as F
from loss_memory import allocator_peak
from mmseg.models.losses import CrossEntropyLoss, DiceLoss, accuracy

from mmpsp.models.losses import (
    chunked_upsample_cross_entropy,
    interpolation_matrix,
    supports,
)
from mmpsp.models.losses.chunked_cross_entropy import _Plan

EPS = torch.finfo(torch.float32).eps
IGNORE = 255
WEIGHTS_7 = [0.5, 1.0, 2.0, 0.25, 1.5, 3.0, 0.75]


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    # The many small per-chunk ops stall when torch's threads compete with
    # other processes for the cores (100x on a busy 2-core machine); the
    # results do not depend on the thread count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lean_loss():
    return importlib.import_module('mmpsp.models.losses.head_loss')


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def make_case(n: int,
              c: int,
              in_hw: Sequence[int],
              out_hw: Sequence[int],
              seed: int = 0,
              ignore_rows: int = 3,
              dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, *in_hw, generator=gen).to(dtype)
    label = torch.randint(0, c, (n, *out_hw), generator=gen)
    if ignore_rows:
        # Ignored pixels in a band and scattered.
        label[:, :ignore_rows] = IGNORE
        label[torch.rand(label.shape, generator=gen) < 0.05] = IGNORE
    return logits.requires_grad_(), label


def reference(logits: torch.Tensor,
              label: torch.Tensor,
              align_corners: bool,
              loss_weights: Sequence[float],
              avg_non_ignore: Sequence[bool],
              class_weights: Optional[Sequence] = None,
              ignore_index: int = IGNORE) -> List[torch.Tensor]:
    """mmseg 1.2.2's CrossEntropyLoss of F.interpolate, in float64."""
    x = F.interpolate(
        logits.double(),
        size=label.shape[-2:],
        mode='bilinear',
        align_corners=align_corners)
    class_weights = class_weights or [None] * len(loss_weights)
    c = logits.shape[1]
    valid = label != ignore_index
    values = []
    for lw, non_ignore, cw in zip(loss_weights, avg_non_ignore,
                                  class_weights):
        weight = None if cw is None else torch.tensor(cw, dtype=torch.float64)
        per_pixel = F.cross_entropy(
            x, label, weight=weight, reduction='none',
            ignore_index=ignore_index)
        if weight is None:
            factor = valid.sum() if non_ignore else label.numel()
        else:
            factor = weight[label[valid]].sum()
            if not non_ignore:
                assert -c <= ignore_index < c or valid.all()
                factor = factor + (~valid).sum() * weight[ignore_index]
        values.append(lw * per_pixel.sum() / (factor + EPS))
    return values


def run_chunked(logits, label, align_corners, loss_weights, avg_non_ignore,
                class_weights=None, budget=2**20, ignore_index=IGNORE):
    """Loss values, accuracy and the gradient of the summed losses."""
    logits.grad = None
    values, acc = chunked_upsample_cross_entropy(
        logits, label, align_corners, ignore_index, loss_weights,
        avg_non_ignore, class_weights, max_chunk_bytes=budget)
    sum(values).backward()
    return [v.detach() for v in values], acc, logits.grad.clone()


def run_reference(logits, label, align_corners, loss_weights,
                  avg_non_ignore, class_weights=None, ignore_index=IGNORE):
    leaf = logits.detach().double().requires_grad_()
    values = reference(leaf, label, align_corners, loss_weights,
                       avg_non_ignore, class_weights, ignore_index)
    sum(values).backward()
    return [v.detach() for v in values], leaf.grad


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('in_size,out_size', [(5, 11), (33, 257), (60, 473),
                                              (97, 769), (129, 1025),
                                              (64, 512), (7, 1)])
def test_interpolation_matrix_is_torchs(in_size, out_size, align_corners):
    # Interpolating the identity gives torch's weight matrix. The fp32
    # source-index rounding alone would be up to 8e-6 off at 1025.
    eye = torch.eye(in_size).view(in_size, 1, in_size)
    theirs = F.interpolate(
        eye, size=out_size, mode='linear',
        align_corners=align_corners)[:, 0].t()
    ours = interpolation_matrix(in_size, out_size, align_corners)
    assert (ours - theirs).abs().max().item() <= 1e-6
    assert torch.allclose(ours.sum(1), torch.ones(out_size))


@pytest.mark.parametrize('align_corners', [False, True])
def test_separable_matrices_equal_bilinear(align_corners):
    x = torch.randn(2, 3, 97, 129, generator=torch.Generator().manual_seed(1))
    ref = F.interpolate(
        x, size=(769, 1025), mode='bilinear', align_corners=align_corners)
    a_h = interpolation_matrix(97, 769, align_corners)
    a_w = interpolation_matrix(129, 1025, align_corners)
    assert rel_err(a_h @ x @ a_w.t(), ref) <= 1e-6


# (N, C, low-res size, label size): odd, non-integer scales and an integer
# one; small C and N keep the largest case fast.
SHAPES = [
    (2, 7, (33, 33), (257, 257)),
    (2, 5, (60, 60), (473, 473)),
    (1, 5, (97, 129), (769, 1025)),
    (1, 4, (64, 64), (512, 512)),
]


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('shape', SHAPES, ids=lambda s: f'{s[2]}->{s[3]}')
def test_fp32_matches_float64_reference(shape, align_corners):
    n, c, in_hw, out_hw = shape
    logits, label = make_case(n, c, in_hw, out_hw)
    weights = WEIGHTS_7[:c]
    # Two terms: plain mean over all pixels, and a class-weighted mean
    # over the non-ignored pixels with another loss weight.
    terms = dict(loss_weights=(1.0, 0.4), avg_non_ignore=(False, True),
                 class_weights=[None, weights])
    values, _, grad = run_chunked(logits, label, align_corners, **terms)
    ref_values, ref_grad = run_reference(logits, label, align_corners,
                                         **terms)
    for value, ref in zip(values, ref_values):
        assert rel_err(value, ref) <= 1e-6
    assert rel_err(grad, ref_grad) <= 1e-5


@pytest.mark.parametrize('avg_non_ignore', [False, True])
@pytest.mark.parametrize('align_corners', [False, True])
def test_class_weights_and_avg_non_ignore(align_corners, avg_non_ignore):
    # ignore_index=-1 is inside mmseg's class-weight indexing range, so the
    # weighted mean over all pixels is defined even with ignored pixels.
    logits, label = make_case(2, 7, (33, 33), (257, 257), seed=3)
    label[label == IGNORE] = -1
    terms = dict(loss_weights=(0.7, ), avg_non_ignore=(avg_non_ignore, ),
                 class_weights=[WEIGHTS_7])
    values, _, grad = run_chunked(logits, label, align_corners,
                                  ignore_index=-1, **terms)
    ref_values, ref_grad = run_reference(logits, label, align_corners,
                                         ignore_index=-1, **terms)
    assert rel_err(values[0], ref_values[0]) <= 1e-6
    assert rel_err(grad, ref_grad) <= 1e-5


def test_budgets_give_the_same_result():
    logits, label = make_case(3, 6, (33, 33), (257, 257), seed=4)
    # One image's working set: logits 6 x 257 x (257 + 33 band rows) x 4
    # bytes plus 64 bytes of label-sized temporaries per pixel, about 6 MB.
    budgets = {
        'one row': 1,
        'rows': 2**20,
        'two images': 13 * 10**6,
        'one chunk': 2**30,
    }
    plans = {
        name: _Plan(tuple(logits.shape), (257, 257), False, torch.float32,
                    logits.device, budget).chunks
        for name, budget in budgets.items()
    }
    assert all(r1 - r0 == 1 for _, _, r0, r1 in plans['one row'])
    assert 1 < plans['rows'][0][3] < 257 and len(plans['rows']) > 3
    assert plans['two images'] == [(0, 2, 0, 257), (2, 3, 0, 257)]
    assert plans['one chunk'] == [(0, 3, 0, 257)]

    terms = dict(loss_weights=(1.0, 0.4), avg_non_ignore=(True, False),
                 class_weights=[WEIGHTS_7[:6], None])
    results = [
        run_chunked(logits, label, False, budget=b, **terms)
        for b in budgets.values()
    ]
    first_values, first_acc, first_grad = results[0]
    for values, acc, grad in results[1:]:
        for value, ref in zip(values, first_values):
            assert rel_err(value, ref) <= 1e-6
        assert torch.equal(acc, first_acc)
        assert rel_err(grad, first_grad) <= 1e-6


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('shape', SHAPES[:2], ids=lambda s: str(s[2]))
def test_accuracy_equals_pixel_accuracy(shape, align_corners):
    n, c, in_hw, out_hw = shape
    logits, label = make_case(n, c, in_hw, out_hw, seed=5)
    _, acc, _ = run_chunked(logits, label, align_corners, (1.0, ), (False, ))
    upsampled = F.interpolate(
        logits.detach(), size=out_hw, mode='bilinear',
        align_corners=align_corners)
    # Random logits: ties between classes have probability zero.
    assert acc.shape == (1, )
    assert torch.equal(
        acc, _lean_loss().pixel_accuracy(upsampled, label, IGNORE))
    assert rel_err(acc, accuracy(upsampled, label, ignore_index=IGNORE)) \
        <= 1e-6


def test_all_ignored_gives_zero_loss_and_gradient():
    logits, label = make_case(1, 3, (5, 7), (11, 13))
    label.fill_(IGNORE)
    values, acc, grad = run_chunked(logits, label, False, (1.0, 1.0),
                                    (False, True))
    assert all(v.item() == 0 for v in values)
    assert not grad.any()
    # As pixel_accuracy: (0 + eps) * 100 / (0 + eps).
    assert acc.item() == pytest.approx(100.0)


def mmseg_value(module: CrossEntropyLoss, logits: torch.Tensor,
                label: torch.Tensor, align_corners: bool,
                ignore_index: int) -> torch.Tensor:
    upsampled = F.interpolate(
        logits.detach(), size=label.shape[-2:], mode='bilinear',
        align_corners=align_corners)
    return module(upsampled, label, ignore_index=ignore_index)


@pytest.mark.parametrize('avg_non_ignore', [False, True])
@pytest.mark.parametrize('class_weight', [None, WEIGHTS_7[:5]])
def test_equals_mmseg_cross_entropy(class_weight, avg_non_ignore):
    # mmseg 1.2.2 indexes class_weight with every label, ignore_index 255
    # included (IndexError), so the weighted cases use ignore_index -1.
    ignore_index = IGNORE if class_weight is None else -1
    logits, label = make_case(2, 5, (60, 60), (473, 473), seed=6)
    label[label == IGNORE] = ignore_index
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        modules = [
            CrossEntropyLoss(class_weight=class_weight,
                             avg_non_ignore=avg_non_ignore, loss_weight=lw)
            for lw in (1.0, 0.4)
        ]
    values, _ = chunked_upsample_cross_entropy(
        logits, label, True, ignore_index,
        [m.loss_weight for m in modules], [m.avg_non_ignore for m in modules],
        [m.class_weight for m in modules])
    for value, module in zip(values, modules):
        theirs = mmseg_value(module, logits, label, True, ignore_index)
        assert rel_err(value, theirs) <= 1e-6


def test_class_weight_with_out_of_range_ignore_label_raises_like_mmseg():
    logits, label = make_case(1, 5, (5, 7), (11, 13))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        module = CrossEntropyLoss(class_weight=WEIGHTS_7[:5])
    with pytest.raises(IndexError):
        mmseg_value(module, logits, label, False, IGNORE)
    with pytest.raises(ValueError, match='avg_non_ignore'):
        chunked_upsample_cross_entropy(logits, label, False, IGNORE, (1.0, ),
                                       (False, ), [WEIGHTS_7[:5]])
    with pytest.raises(ValueError, match='entries'):
        chunked_upsample_cross_entropy(logits, label, False, IGNORE, (1.0, ),
                                       (True, ), [WEIGHTS_7])


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_low_precision_logits_under_autocast(dtype):
    logits, label = make_case(2, 6, (33, 33), (257, 257), seed=7,
                              dtype=dtype)
    terms = dict(loss_weights=(1.0, 0.4), avg_non_ignore=(False, True),
                 class_weights=[None, WEIGHTS_7[:6]])
    with torch.autocast('cpu', dtype=dtype):
        values, acc = chunked_upsample_cross_entropy(
            logits, label, False, IGNORE, max_chunk_bytes=2**20, **terms)
        sum(values).backward()
    assert logits.grad.dtype == dtype
    assert all(v.dtype == torch.float32 for v in values)
    # The reference sees the same low-precision inputs in float64: the
    # error is the fp32 arithmetic plus rounding the gradient to ``dtype``
    # (8 bits of mantissa for bf16).
    ref_values, ref_grad = run_reference(logits, label, False, **terms)
    for value, ref in zip(values, ref_values):
        assert rel_err(value, ref) <= 1e-5
    assert rel_err(logits.grad, ref_grad) <= 1e-2


@pytest.mark.parametrize('align_corners', [False, True])
def test_gradcheck_float64(align_corners):
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(1, 3, 5, 7, dtype=torch.float64, generator=gen,
                         requires_grad=True)
    label = torch.randint(0, 3, (1, 11, 13), generator=gen)
    label[0, 0, :4] = IGNORE

    def losses(x):
        # A 1-byte budget: one output row per chunk, overlapping bands.
        values, _ = chunked_upsample_cross_entropy(
            x, label, align_corners, IGNORE, (1.0, 0.4), (False, True),
            [None, [0.5, 2.0, 1.0]], max_chunk_bytes=1)
        return torch.stack(values)

    assert torch.autograd.gradcheck(losses, (logits, ))


def test_supports():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        plain = CrossEntropyLoss()
        weighted = CrossEntropyLoss(class_weight=[1.0, 2.0])
        summed = CrossEntropyLoss(reduction='sum')
        sigmoid = CrossEntropyLoss(use_sigmoid=True)

    class Subclass(CrossEntropyLoss):
        pass

    assert supports(plain, None)
    assert supports(torch.nn.ModuleList([plain, weighted]), None)
    assert not supports(plain, sampler=object())
    assert not supports(summed, None)
    assert not supports(sigmoid, None)
    assert not supports([plain, DiceLoss()], None)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert not supports(Subclass(), None)
    assert not supports([], None)


def test_label_shape_4d_is_accepted():
    logits, label = make_case(1, 3, (5, 7), (11, 13))
    a, _ = chunked_upsample_cross_entropy(logits, label)
    b, _ = chunked_upsample_cross_entropy(logits, label[:, None])
    assert torch.equal(a[0], b[0])



def test_peak_memory_stays_within_the_chunk_budget():
    budget = 2**20
    peaks = {}
    for low in (32, 64):
        logits, label = make_case(2, 21, (low, low), (8 * low, 8 * low))
        low_bytes = logits.numel() * 4

        def chunked():
            values, _ = chunked_upsample_cross_entropy(
                logits, label, max_chunk_bytes=budget)
            values[0].backward()

        def unchunked():
            values, _ = _lean_loss().plain_losses(logits, label[:, None],
                                                  False, IGNORE, (1.0, ),
                                                  (False, ))
            values[0].backward()

        logits.grad = None
        peaks[low] = allocator_peak(chunked)
        logits.grad = None
        full = allocator_peak(unchunked)
        # The budget covers the chunk; beyond it only low-res tensors (the
        # fp32 gradient, its accumulation) may be live.
        assert peaks[low] <= 2 * budget + 4 * low_bytes
        assert full >= 20 * peaks[low]
    # 4x the output pixels: the growth is the low-res tensors', not the
    # output's (the unchunked peak grows by 4x, about 100 MB).
    assert peaks[64] - peaks[32] <= 4 * (2 * 21 * (64**2 - 32**2) * 4)
