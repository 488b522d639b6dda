"""Bilinear upsample, cross-entropy and accuracy, chunked and exact.

A decode head's loss upsamples its 1/8-resolution logits (N, C, h, w) to the
label size (N, H, W), then takes the cross-entropy and the top-1 accuracy.
Done with ``F.interpolate`` under autograd, the full-resolution logits, their
log-softmax and their gradient all live at once: for N=4, C=150,
64x64 -> 512x512 that is about 1.8 GB on CPU. :class:`ChunkedUpsampleCE`
computes the same values chunk by chunk (whole images, or bands of output
rows of one image), and saves only the low-resolution logits and the labels
for backward, which recomputes each chunk.

The upsampling is separable: output rows ``r0:r1`` are
``A_h[r0:r1] @ X @ A_w^T``, where ``A_h`` (H x h) and ``A_w`` (W x w) hold
torch's own bilinear weights (:func:`interpolation_matrix`). ``A_h[r0:r1]``
only touches a narrow band of source rows, so each chunk reads only that
band, and the backward is the two transposed products (no scatter, no
atomics).

Math (checked against ``mmseg.models.losses.CrossEntropyLoss`` 1.2.2 in the
tests): the per-pixel loss is ``F.cross_entropy(..., weight=class_weight,
reduction='none', ignore_index=ignore_index)``; the mean divides the sum by
``avg_factor + eps`` (``eps`` the fp32 machine epsilon, as mmseg's
``weight_reduce_loss``), where ``avg_factor`` is, without class weights,
N*H*W or, with ``avg_non_ignore``, the number of non-ignored pixels; with
class weights mmseg 1.2.2 divides by the sum of the class weights of the
labels (of the non-ignored labels with ``avg_non_ignore``). Without
``avg_non_ignore`` mmseg then also indexes the class weights with the
ignore label: where that index is out of range mmseg raises ``IndexError``
and so does this module (``ValueError``, same condition). The accuracy is
``pixel_accuracy`` of :mod:`.head_loss` (mmseg's ``accuracy``); a pixel counts
as a hit when its label's logit equals the pixel's maximum, which is the
argmax test except at exact ties between classes.

Per-chunk forms, measured on a 2-core CPU (AMD EPYC, torch 2.13, machine
shared with other jobs) with ``time.perf_counter`` around each step, over
all chunks of N=4, C=150, 64x64 -> 512x512 with 32-row chunks (seconds,
summed over the 64 chunks)::

    width step: F.interpolate(mode='linear') on the band   0.026
                band @ A_w^T (dense matmul)                0.067
    height step: A_h band @ Y (matmul)                     0.065
                 two index_select + lerp                   0.150
    width transpose: grad @ A_w                            0.040
                     upsample_linear1d_backward            0.068
    class max: amax(1) 0.030, max(1) with indices 0.309, argmax 0.413

so the width step runs ``F.interpolate`` in 1-D on the band (exact: the
width coordinates are those of the full interpolation), the height step and
both transposes are matmuls, and the accuracy compares the target logit
with ``amax`` instead of calling ``argmax``. End to end, forward +
backward, same CPU and shape (median of 7, interleaved)::

    python tools/analysis_tools/loss_memory.py --batch 4 --classes 150 \
        --in-size 64 --out-size 512 --repeats 7

    variant   alloc MB   rss MB   time s  vs today
    today       1800.0   1819.0    3.464     1.00x
    chunked       16.9     44.7    0.950     0.27x
    mmseg       1800.0   1850.8    3.351     0.97x

(``today`` is ``plain_losses``, ``mmseg`` is ``BaseDecodeHead.loss_by_feat``;
with ``--threads 1``: 6.61 s, 2.12 s, 6.97 s.)
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'DEFAULT_MAX_CHUNK_BYTES', 'ChunkedUpsampleCE',
    'chunked_upsample_cross_entropy', 'interpolation_matrix', 'supports'
]

_EPS = torch.finfo(torch.float32).eps

#: Default working-set budget of one chunk. For the configs' crops (512x512
#: and 512x1024, 19 to 171 classes) a chunk is then a band of about 10 to
#: 55 output rows of one image. Measured on the 2-core CPU, 1 thread,
#: forward + backward (median of 5): N=4, C=150, 512x512: 2/4/8/16/32 MiB
#: 1.57/1.26/1.11/1.49/1.72 s; N=2, C=171, 512x1024: 4.17/2.20/1.62/1.77/
#: 1.80 s; N=2, C=19, 512x1024: 0.19/0.17/0.20/0.19/0.25 s. Chunks that
#: stay in the last-level cache win; tiny ones pay per-call overhead.
DEFAULT_MAX_CHUNK_BYTES = 8 * 2**20

# Label-sized temporaries per output pixel (int64 indices, masks, fp32
# per-pixel terms), counted in the chunk's working set.
_PIXEL_OVERHEAD_BYTES = 64

ClassWeight = Optional[Union[Sequence[float], Tensor]]


def interpolation_matrix(in_size: int,
                         out_size: int,
                         align_corners: bool,
                         dtype: torch.dtype = torch.float32,
                         device: Optional[torch.device] = None) -> Tensor:
    """The (out_size, in_size) matrix of torch's 1-D linear interpolation.

    Reproduces ``F.interpolate(size=...)``'s source-index formula in
    ``dtype`` arithmetic (torch computes it in the input's dtype, fp32 for
    fp32): with ``align_corners`` ``src = dst * (in - 1) / (out - 1)``,
    otherwise ``src = max((dst + 0.5) * in / out - 0.5, 0)``; then
    ``i0 = min(floor(src), in - 1)``, ``i1 = min(i0 + 1, in - 1)``,
    ``lambda = src - i0`` and weights ``1 - lambda`` on ``i0``, ``lambda``
    on ``i1``.

    Args:
        in_size (int): Source length.
        out_size (int): Target length.
        align_corners (bool): As ``F.interpolate``'s.
        dtype (torch.dtype): Arithmetic and result dtype.
        device (torch.device, optional): Result device.

    Returns:
        Tensor: ``A`` with ``A @ x`` equal to the interpolation of ``x``.
    """
    src = _source_positions(in_size, out_size, align_corners, dtype)
    i0, i1, lam1 = _indices_and_lambdas(src, in_size)
    rows = torch.arange(out_size)
    mat = torch.zeros(out_size, in_size, dtype=dtype)
    mat.index_put_((rows, i0), 1 - lam1, accumulate=True)
    mat.index_put_((rows, i1), lam1, accumulate=True)
    return mat.to(device) if device is not None else mat


def _source_positions(in_size: int, out_size: int, align_corners: bool,
                      dtype: torch.dtype) -> Tensor:
    dst = torch.arange(out_size, dtype=dtype)
    if align_corners:
        if out_size <= 1:
            return torch.zeros(out_size, dtype=dtype)
        scale = (torch.tensor(in_size - 1, dtype=dtype) /
                 torch.tensor(out_size - 1, dtype=dtype))
        return dst * scale
    # torch derives the scale from the sizes when ``size=`` is given.
    scale = (torch.tensor(in_size, dtype=dtype) /
             torch.tensor(out_size, dtype=dtype))
    if dtype == torch.float64:
        return ((dst + 0.5) * scale - 0.5).clamp_min(0)
    # torch's kernel evaluates ``scale * (dst + 0.5) - 0.5`` as one fused
    # multiply-add; fp32 rounding after each step puts lambda one ulp of
    # ``src`` off (up to 8e-6 at 1025 rows). The fp64 product of two fp32
    # numbers minus 0.5 is exact, so rounding it once is the fused result.
    wide = (dst.double() + 0.5) * scale.double() - 0.5
    return wide.to(dtype).clamp_min(0)


def _indices_and_lambdas(src: Tensor,
                         in_size: int) -> Tuple[Tensor, Tensor, Tensor]:
    i0 = src.floor().long().clamp_max(in_size - 1)
    lam1 = (src - i0.to(src.dtype)).clamp(0, 1)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, lam1


def supports(loss_modules: Union[torch.nn.Module, Sequence[torch.nn.Module]],
             sampler: Optional[object]) -> bool:
    """Whether :func:`chunked_upsample_cross_entropy` can replace a head's
    loss path.

    True when there is no pixel sampler and every loss module is exactly
    mmseg's ``CrossEntropyLoss`` (not a subclass, which may change its
    forward) with softmax (``use_sigmoid=False``, ``use_mask=False``) and
    ``reduction='mean'``; class weights are allowed.

    Args:
        loss_modules (nn.Module | Sequence[nn.Module]): The head's
            ``loss_decode``.
        sampler (object, optional): The head's ``sampler``.

    Returns:
        bool: False means: keep the head's general path.
    """
    from mmseg.models.losses import CrossEntropyLoss

    if sampler is not None:
        return False
    if isinstance(loss_modules, torch.nn.Module) and not isinstance(
            loss_modules, torch.nn.ModuleList):
        loss_modules = [loss_modules]
    modules = list(loss_modules)
    return bool(modules) and all(
        type(m) is CrossEntropyLoss and not m.use_sigmoid
        and not m.use_mask and m.reduction == 'mean' for m in modules)


class _Plan:
    """Chunks, interpolation matrices and source bands for one call."""

    def __init__(self, shape: Tuple[int, int, int, int], out_size: Tuple[int,
                                                                         int],
                 align_corners: bool, dtype: torch.dtype,
                 device: torch.device, max_chunk_bytes: int) -> None:
        n, c, h, w = shape
        big_h, big_w = out_size
        self.align_corners = align_corners
        self.out_w = big_w
        self.a_h = interpolation_matrix(h, big_h, align_corners, dtype,
                                        device)
        # The width transpose is a matmul with A_w; the forward width step
        # is F.interpolate, whose weights A_w reproduces.
        self.a_w = interpolation_matrix(w, big_w, align_corners, dtype,
                                        device)
        src = _source_positions(h, big_h, align_corners, dtype)
        i0, i1, _ = _indices_and_lambdas(src, h)
        self.first_src = i0.tolist()
        self.last_src = i1.tolist()
        itemsize = torch.finfo(dtype).bits // 8

        def chunk_bytes(images: int, rows: int, band: int) -> int:
            # Upsampled logits + the width-interpolated source band +
            # label-sized temporaries.
            return images * (c * big_w * itemsize * (rows + band) +
                             rows * big_w * _PIXEL_OVERHEAD_BYTES)

        self.chunks: List[Tuple[int, int, int, int]] = []
        if chunk_bytes(1, big_h, h) <= max_chunk_bytes:
            step = max(1, max_chunk_bytes // chunk_bytes(1, big_h, h))
            for n0 in range(0, n, step):
                self.chunks.append((n0, min(n, n0 + step), 0, big_h))
            return
        rows = 1
        # The band of ``rows`` output rows spans at most
        # ceil((rows - 1) * scale) + 2 source rows.
        scale = h / big_h
        while rows < big_h and chunk_bytes(
                1, rows + 1, min(h, int(rows * scale) + 3)) <= max_chunk_bytes:
            rows += 1
        for i in range(n):
            for r0 in range(0, big_h, rows):
                self.chunks.append((i, i + 1, r0, min(big_h, r0 + rows)))

    def band(self, r0: int, r1: int) -> Tuple[int, int]:
        """Source rows ``s0:s1`` that output rows ``r0:r1`` read."""
        return self.first_src[r0], self.last_src[r1 - 1] + 1

    def upsample(self, band: Tensor, r0: int, r1: int, s0: int,
                 s1: int) -> Tensor:
        """Output rows ``r0:r1`` of the interpolation, from source rows
        ``s0:s1``; (n, C, s1 - s0, w) -> (n, C, r1 - r0, W)."""
        n, c, rows, w = band.shape
        wide = F.interpolate(
            band.reshape(n, c * rows, w),
            size=self.out_w,
            mode='linear',
            align_corners=self.align_corners).view(n, c, rows, self.out_w)
        return torch.matmul(self.a_h[r0:r1, s0:s1], wide)

    def upsample_transpose(self, grad: Tensor, r0: int, r1: int, s0: int,
                           s1: int) -> Tensor:
        """The transpose of :meth:`upsample`: (n, C, r1 - r0, W) ->
        (n, C, s1 - s0, w)."""
        wide = torch.matmul(self.a_h[r0:r1, s0:s1].t(), grad)
        return torch.matmul(wide, self.a_w)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # fp64 stays fp64 (gradcheck); everything else computes in fp32.
    return torch.float64 if dtype == torch.float64 else torch.float32


class ChunkedUpsampleCE(torch.autograd.Function):
    """Chunked bilinear upsample + cross-entropy terms + accuracy.

    Use through :func:`chunked_upsample_cross_entropy`. ``forward`` returns
    the loss terms stacked in one tensor of shape (T,) and the accuracy
    (1,) (not differentiable).
    """

    @staticmethod
    def forward(ctx, seg_logits: Tensor, seg_label: Tensor,
                align_corners: bool, ignore_index: int,
                loss_weights: Tuple[float, ...],
                avg_non_ignore: Tuple[bool, ...],
                class_weights: Tuple[Optional[Tensor], ...],
                max_chunk_bytes: int) -> Tuple[Tensor, Tensor]:
        # Autocast would run the matmuls in bf16; this function's contract
        # is fp32 arithmetic whatever the input dtype.
        with torch.autocast(seg_logits.device.type, enabled=False):
            return _forward(ctx, seg_logits, seg_label, align_corners,
                            ignore_index, loss_weights, avg_non_ignore,
                            class_weights, max_chunk_bytes)

    @staticmethod
    def backward(ctx, grad_losses: Tensor, grad_acc: Optional[Tensor]):
        with torch.autocast(grad_losses.device.type, enabled=False):
            grad = _backward(ctx, grad_losses)
        return grad, None, None, None, None, None, None, None


def _group_class_weights(
        class_weights: Tuple[Optional[Tensor], ...]
) -> Tuple[List[Optional[Tensor]], List[int]]:
    """Distinct class-weight vectors and each term's index among them."""
    groups: List[Optional[Tensor]] = []
    keys: List[object] = []
    index = []
    for weight in class_weights:
        key = None if weight is None else tuple(weight.tolist())
        if key not in keys:
            keys.append(key)
            groups.append(weight)
        index.append(keys.index(key))
    return groups, index


def _forward(ctx, seg_logits: Tensor, seg_label: Tensor, align_corners: bool,
             ignore_index: int, loss_weights: Tuple[float, ...],
             avg_non_ignore: Tuple[bool, ...],
             class_weights: Tuple[Optional[Tensor], ...],
             max_chunk_bytes: int) -> Tuple[Tensor, Tensor]:
    n, c, _, _ = seg_logits.shape
    out_h, out_w = seg_label.shape[-2:]
    dtype = _compute_dtype(seg_logits.dtype)
    device = seg_logits.device
    plan = _Plan(tuple(seg_logits.shape), (out_h, out_w), align_corners,
                 dtype, device, max_chunk_bytes)
    groups, term_group = _group_class_weights(class_weights)
    # Weighted groups gather per-pixel weights from (C + 1,) vectors whose
    # last entry (the ignored pixels' slot) is 0.
    ext = [
        None if g is None else torch.cat([g.to(dtype), g.new_zeros(1)])
        for g in groups
    ]
    acc64 = dict(dtype=torch.float64, device=device)
    loss_sums = [torch.zeros((), **acc64) for _ in groups]
    weight_sums = [torch.zeros((), **acc64) for _ in groups]
    valid_count = torch.zeros((), dtype=torch.int64, device=device)
    hit_count = torch.zeros((), dtype=torch.int64, device=device)

    for n0, n1, r0, r1 in plan.chunks:
        s0, s1 = plan.band(r0, r1)
        logits = plan.upsample(seg_logits[n0:n1, :, s0:s1].to(dtype), r0, r1,
                               s0, s1)
        label = seg_label[n0:n1, r0:r1]
        valid = label != ignore_index
        safe_label = torch.where(valid, label, 0)
        target = logits.gather(1, safe_label.unsqueeze(1)).squeeze(1)
        peak = logits.amax(1)
        hit_count += ((target == peak) & valid).sum()
        valid_count += valid.sum()
        # log-sum-exp in place: the chunk's logits are not needed after.
        lse = logits.sub_(peak.unsqueeze(1)).exp_().sum(1).log_().add_(peak)
        nll = lse.sub_(target)
        ext_label = None
        for k, weight in enumerate(ext):
            if weight is None:
                loss_sums[k] += nll.masked_fill(~valid, 0).sum(
                    dtype=torch.float64)
                continue
            if ext_label is None:
                ext_label = torch.where(valid, label, c)
            pixel_weight = weight[ext_label]
            loss_sums[k] += (nll * pixel_weight).sum(dtype=torch.float64)
            weight_sums[k] += pixel_weight.sum(dtype=torch.float64)
        del logits, lse, nll

    total = n * out_h * out_w
    ignored = total - valid_count
    denominators = []
    for weight_idx, non_ignore in zip(term_group, avg_non_ignore):
        weight = groups[weight_idx]
        if weight is None:
            count = valid_count.to(torch.float64) if non_ignore else total
            denominators.append(count + _EPS)
            continue
        wsum = weight_sums[weight_idx]
        if not non_ignore:
            # mmseg averages over class_weight[label] of every pixel,
            # ignored ones included (indexed with the ignore label).
            if -c <= ignore_index < c:
                wsum = wsum + ignored * weight[ignore_index].to(torch.float64)
            elif bool(ignored > 0):
                raise ValueError(
                    f'class_weight without avg_non_ignore indexes the class '
                    f'weights with ignore_index={ignore_index}, out of range '
                    f'for {c} classes (mmseg raises IndexError); set '
                    f'avg_non_ignore=True')
        denominators.append(wsum + _EPS)
    denominator = torch.stack([
        torch.as_tensor(d, dtype=torch.float64, device=device)
        for d in denominators
    ])
    scale = torch.tensor(loss_weights, dtype=torch.float64, device=device)
    sums = torch.stack([loss_sums[k] for k in term_group])
    losses = (scale * sums / denominator).to(dtype)

    # The accuracy with pixel_accuracy's fp32 operations, bit for bit.
    hits = hit_count.to(torch.float32).view(1) + _EPS
    acc = hits * (100.0 / (valid_count.to(torch.float32) + _EPS))

    ctx.save_for_backward(seg_logits, seg_label)
    ctx.plan = plan
    ctx.ignore_index = ignore_index
    ctx.class_weights = class_weights
    ctx.term_scale = (scale / denominator).to(dtype)
    ctx.mark_non_differentiable(acc)
    return losses, acc


def _backward(ctx, grad_losses: Tensor) -> Tensor:
    seg_logits, seg_label = ctx.saved_tensors
    plan = ctx.plan
    n, c, _, _ = seg_logits.shape
    dtype = _compute_dtype(seg_logits.dtype)
    # d loss_t / d z_k = s_t * w_t[y] * (softmax_k - [k == y]) with
    # s_t = grad_t * loss_weight_t / denominator_t, so one per-class vector
    # sum_t s_t * w_t carries every term; slot C (ignored pixels) stays 0.
    term = grad_losses.to(dtype) * ctx.term_scale
    per_class = torch.zeros(c + 1, dtype=dtype, device=seg_logits.device)
    for t, weight in enumerate(ctx.class_weights):
        per_class[:c] += term[t] * (1 if weight is None else weight.to(dtype))
    grad = torch.zeros(seg_logits.shape, dtype=dtype, device=seg_logits.device)

    for n0, n1, r0, r1 in plan.chunks:
        s0, s1 = plan.band(r0, r1)
        logits = plan.upsample(seg_logits[n0:n1, :, s0:s1].to(dtype), r0, r1,
                               s0, s1)
        label = seg_label[n0:n1, r0:r1]
        valid = label != ctx.ignore_index
        coef = per_class[torch.where(valid, label, c)]
        peak = logits.amax(1, keepdim=True)
        exp = logits.sub_(peak).exp_()
        exp.mul_((coef / exp.sum(1)).unsqueeze(1))
        # Minus the one-hot: ignored pixels have coef 0, so index 0 is safe.
        exp.scatter_add_(1,
                         torch.where(valid, label, 0).unsqueeze(1),
                         coef.neg().unsqueeze(1))
        grad[n0:n1, :, s0:s1] += plan.upsample_transpose(exp, r0, r1, s0, s1)
        del logits, exp
    return grad.to(seg_logits.dtype)


def _as_weight_tensor(weight: ClassWeight, num_classes: int,
                      device: torch.device) -> Optional[Tensor]:
    if weight is None:
        return None
    tensor = torch.as_tensor(weight, dtype=torch.float32,
                             device=device).flatten()
    if tensor.numel() != num_classes:
        raise ValueError(f'class_weight has {tensor.numel()} entries for '
                         f'{num_classes} classes')
    return tensor


def chunked_upsample_cross_entropy(
    seg_logits: Tensor,
    seg_label: Tensor,
    align_corners: bool = False,
    ignore_index: int = 255,
    loss_weights: Sequence[float] = (1.0, ),
    avg_non_ignore: Sequence[bool] = (False, ),
    class_weights: Optional[Sequence[ClassWeight]] = None,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
) -> Tuple[List[Tensor], Tensor]:
    """Cross-entropy terms and accuracy of bilinearly upsampled logits.

    The values of ``F.interpolate(seg_logits.float(), size=label size,
    mode='bilinear', align_corners=align_corners)`` fed to one mmseg
    ``CrossEntropyLoss`` per term and to ``pixel_accuracy``, without ever
    holding the full-resolution logits or their gradient.

    Args:
        seg_logits (Tensor): Low-resolution logits (N, C, h, w), any float
            dtype; arithmetic is fp32 (fp64 for fp64 input), the gradient
            comes back in ``seg_logits.dtype``.
        seg_label (Tensor): Long labels (N, H, W) or (N, 1, H, W).
        align_corners (bool): As the head's ``align_corners``.
        ignore_index (int): Label left out of losses and accuracy.
        loss_weights (Sequence[float]): Each term's ``loss_weight``.
        avg_non_ignore (Sequence[bool]): Each term's ``avg_non_ignore``.
        class_weights (Sequence, optional): Each term's ``class_weight``
            (None or C floats); None for no class weights anywhere.
        max_chunk_bytes (int): Budget of one chunk's working set in bytes:
            its fp32 upsampled logits (images x C x rows x W x 4), the
            width-interpolated source band and about 64 bytes per output
            pixel of label-sized temporaries. Whole images are batched
            when one fits, otherwise bands of rows of one image (at least
            one row). Peak extra memory is about this plus the low-res
            gradient. Defaults to :data:`DEFAULT_MAX_CHUNK_BYTES` (8 MiB).

    Returns:
        tuple[list[Tensor], Tensor]: One scalar loss per term (already
        times its ``loss_weight``) and the accuracy in percent, shape (1,),
        as ``head_loss.plain_losses``.
    """
    if seg_label.dim() == 4:
        seg_label = seg_label.squeeze(1)
    if seg_logits.dim() != 4 or seg_label.dim() != 3:
        raise ValueError('expected logits (N, C, h, w) and labels (N, H, W), '
                         f'got {tuple(seg_logits.shape)} and '
                         f'{tuple(seg_label.shape)}')
    if len(loss_weights) != len(avg_non_ignore):
        raise ValueError('one avg_non_ignore per loss weight expected')
    if class_weights is None:
        class_weights = [None] * len(loss_weights)
    if len(class_weights) != len(loss_weights):
        raise ValueError('one class_weight per loss weight expected')
    if max_chunk_bytes <= 0:
        raise ValueError(f'max_chunk_bytes must be > 0, got {max_chunk_bytes}')
    num_classes = seg_logits.shape[1]
    weights = tuple(
        _as_weight_tensor(w, num_classes, seg_logits.device)
        for w in class_weights)
    losses, acc = ChunkedUpsampleCE.apply(seg_logits, seg_label.long(),
                                          bool(align_corners),
                                          int(ignore_index),
                                          tuple(float(w)
                                                for w in loss_weights),
                                          tuple(bool(a)
                                                for a in avg_non_ignore),
                                          weights, int(max_chunk_bytes))
    return list(losses.unbind(0)), acc
