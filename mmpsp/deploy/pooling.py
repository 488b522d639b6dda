"""Adaptive pooling with its bins fixed, for export at a fixed input size.

``nn.AdaptiveAvgPool2d`` and ``nn.AdaptiveMaxPool2d`` choose their bins from
the input size at run time. ONNX has no such operator: PyTorch's ONNX exporter
turns adaptive pooling into a plain pooling only when every output size
divides its input size, which PSPNet's pyramid (bins 1, 2, 3, 6 on a 64x64
map, for a 512x512 image at output stride 8) does not satisfy.

At a fixed input size the bins are known, so the same result can be written
with ordinary operators. Output cell ``i`` of ``n`` over an axis of length
``L`` covers ``[floor(i * L / n), ceil((i + 1) * L / n))``, PyTorch's rule.
Both reductions are separable over the two axes:

- average: ``out = R @ x @ C^T`` with ``R[i, j] = 1 / len(bin_i)`` for ``j``
  in bin ``i`` (two ``MatMul`` nodes);
- max: the maximum over row bins, then over column bins (``Slice`` and
  ``ReduceMax`` nodes).
"""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

SizeArg = Union[int, None, Sequence[Optional[int]]]


def adaptive_bins(in_size: int, out_size: int) -> List[Tuple[int, int]]:
    """Start and end indices of adaptive pooling's bins along one axis.

    Args:
        in_size (int): Input length along the axis.
        out_size (int): Number of output cells along the axis.

    Returns:
        list[tuple[int, int]]: ``(start, end)`` of each bin, end exclusive,
        exactly as PyTorch's adaptive pooling computes them.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f'adaptive pooling needs positive sizes, got input '
                         f'length {in_size} and output length {out_size}')
    return [(math.floor(i * in_size / out_size),
             math.ceil((i + 1) * in_size / out_size))
            for i in range(out_size)]


def _averaging_matrix(in_size: int, out_size: int) -> Tensor:
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i, (start, end) in enumerate(adaptive_bins(in_size, out_size)):
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix.float()


def _resolve_output_size(output_size: SizeArg,
                         input_size: Tuple[int, int]) -> Tuple[int, int]:
    if output_size is None or isinstance(output_size, int):
        output_size = (output_size, output_size)
    return tuple(in_len if out_len is None else int(out_len)
                 for out_len, in_len in zip(output_size, input_size))


class FixedAdaptivePool2d(nn.Module):
    """Adaptive average or max pooling for one fixed input size.

    Gives the output of ``nn.AdaptiveAvgPool2d(output_size)`` (or
    ``nn.AdaptiveMaxPool2d``) on inputs of spatial size ``input_size``, using
    only operators that export to ONNX at any size ratio.

    Args:
        output_size (int | tuple | None): As for ``nn.AdaptiveAvgPool2d``;
            ``None`` keeps the input length.
        input_size (tuple[int, int]): The only input size ``(H, W)`` this
            module accepts.
        mode (str): ``'avg'`` or ``'max'``. Defaults to ``'avg'``.
    """

    def __init__(self,
                 output_size: SizeArg,
                 input_size: Tuple[int, int],
                 mode: str = 'avg') -> None:
        super().__init__()
        if mode not in ('avg', 'max'):
            raise ValueError(f"FixedAdaptivePool2d mode must be 'avg' or "
                             f"'max', got {mode!r}")
        self.input_size = tuple(int(s) for s in input_size)
        self.output_size = _resolve_output_size(output_size, self.input_size)
        self.mode = mode
        (in_h, in_w), (out_h, out_w) = self.input_size, self.output_size
        self.row_bins = adaptive_bins(in_h, out_h)
        self.col_bins = adaptive_bins(in_w, out_w)
        # Non-persistent: derived from the sizes, never part of a checkpoint.
        self.register_buffer(
            'row_matrix', _averaging_matrix(in_h, out_h), persistent=False)
        self.register_buffer(
            'col_matrix', _averaging_matrix(in_w, out_w).t().contiguous(),
            persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x``.

        Args:
            x (Tensor): Input of shape (N, C, H, W) with ``(H, W)`` equal to
                ``input_size``.

        Returns:
            Tensor: Pooled map of shape (N, C, out_h, out_w).
        """
        if (not torch.jit.is_tracing()
                and tuple(x.shape[-2:]) != self.input_size):
            raise ValueError(
                f'FixedAdaptivePool2d was fixed for inputs of size '
                f'{self.input_size}, got {tuple(x.shape[-2:])}; export the '
                f'model again for this image size')
        if self.mode == 'avg':
            return torch.matmul(
                torch.matmul(self.row_matrix.to(x), x),
                self.col_matrix.to(x))
        rows = torch.cat([
            x[..., start:end, :].amax(dim=-2, keepdim=True)
            for start, end in self.row_bins
        ], dim=-2)
        return torch.cat([
            rows[..., start:end].amax(dim=-1, keepdim=True)
            for start, end in self.col_bins
        ], dim=-1)

    def extra_repr(self) -> str:
        return (f'output_size={self.output_size}, '
                f'input_size={self.input_size}, mode={self.mode!r}')


_ADAPTIVE_TYPES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def fix_adaptive_pooling(model: nn.Module, run: Callable[[], object]) -> int:
    """Replace adaptive pooling layers by :class:`FixedAdaptivePool2d`.

    ``run`` is called once (without gradients) to record the input size of
    every ``nn.AdaptiveAvgPool2d`` / ``nn.AdaptiveMaxPool2d`` in ``model``;
    each one that ran is then replaced, in place, by its fixed-size
    equivalent.

    Args:
        model (nn.Module): Model to change in place.
        run (Callable): Runs ``model`` on an input of the export size.

    Returns:
        int: Number of layers replaced.
    """
    seen: Dict[str, Tuple[int, int]] = {}
    handles = []
    for name, module in model.named_modules():
        if not isinstance(module, _ADAPTIVE_TYPES):
            continue
        if getattr(module, 'return_indices', False):
            raise ValueError(
                f'{name}: AdaptiveMaxPool2d(return_indices=True) cannot be '
                f'exported by mmpsp; use return_indices=False')

        def record(mod: nn.Module, args: tuple, name: str = name) -> None:
            size = tuple(int(s) for s in args[0].shape[-2:])
            if seen.setdefault(name, size) != size:
                raise ValueError(
                    f'{name} ran on inputs of sizes {seen[name]} and {size} '
                    f'in one forward pass; a fixed-size export needs one '
                    f'size per layer')

        handles.append(module.register_forward_pre_hook(record))
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    for name, size in seen.items():
        parent_name, _, child = name.rpartition('.')
        parent = model.get_submodule(parent_name)
        old = getattr(parent, child)
        mode = 'avg' if isinstance(old, nn.AdaptiveAvgPool2d) else 'max'
        setattr(parent, child, FixedAdaptivePool2d(old.output_size, size,
                                                   mode))
    return len(seen)
