"""Export a segmentor at a fixed input size to ONNX or TorchScript.

The exported graph takes the image as read from disk and does the whole
inference of ``test_cfg.mode='whole'``:

- input ``image``: float32 of shape (N, 3, H, W), pixel values 0-255, in the
  channel order the config's ``data_preprocessor`` expects before its
  conversion (BGR, as ``cv2.imread`` gives, for mmseg's usual
  ``bgr_to_rgb=True``);
- inside: the preprocessor's channel conversion and mean/std normalisation,
  backbone, heads, bilinear resize of the logits to (H, W);
- output ``logits`` (N, num_classes, H, W) float32, or with
  ``output='mask'`` the class map ``mask`` (N, H, W) int64 (argmax; for a
  single-channel sigmoid head, logit > the head's threshold).

Adaptive pooling (PSPNet's pyramid) is replaced by its exact fixed-size
equivalent (:mod:`mmpsp.deploy.pooling`), so one export serves one size.
The ONNX file is written by PyTorch's TorchScript-based exporter
(``dynamo=False``), which needs no package beyond ``onnx`` for metadata.
"""
import copy
import importlib
import inspect
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from torch import Tensor, nn

from mmpsp.utils.errors import MMPSPError

from .pooling import fix_adaptive_pooling

OUTPUTS = ('logits', 'mask')
DEFAULT_OPSET = 17


class ExportError(MMPSPError, ValueError):
    """A model or setting that mmpsp's exporter does not handle."""


class SegmentorForExport(nn.Module):
    """Whole-image inference of an mmseg ``EncoderDecoder`` as one function.

    Args:
        segmentor (nn.Module): An mmseg ``EncoderDecoder`` in eval mode.
        output (str): ``'logits'`` or ``'mask'``. Defaults to ``'logits'``.
    """

    def __init__(self, segmentor: nn.Module, output: str = 'logits') -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ExportError(
                f'output must be one of {OUTPUTS}, got {output!r}')
        self.segmentor = segmentor
        self.output = output
        pre = segmentor.data_preprocessor
        self.convert_channels = bool(getattr(pre, 'channel_conversion',
                                             False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('mean', pre.mean.detach().clone().view(
                1, -1, 1, 1), persistent=False)
            self.register_buffer('std', pre.std.detach().clone().view(
                1, -1, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        """Segment a batch of images.

        Args:
            image (Tensor): Pixels, float of shape (N, 3, H, W), 0-255.

        Returns:
            Tensor: Logits (N, K, H, W) or class map (N, H, W) int64.
        """
        x = image
        if self.convert_channels:
            x = x[:, [2, 1, 0], ...]
        if self.normalize:
            x = (x - self.mean) / self.std
        size = tuple(int(s) for s in x.shape[-2:])
        metas = [dict(img_shape=size, ori_shape=size, pad_shape=size)
                 ] * x.shape[0]
        logits = self.segmentor.encode_decode(x, metas)
        if self.output == 'logits':
            return logits
        if logits.shape[1] == 1:
            threshold = getattr(self.segmentor.decode_head, 'threshold', 0.3)
            return (logits.sigmoid() > threshold).squeeze(1).long()
        return logits.argmax(dim=1)


def check_export_settings(shape: Sequence[int],
                          dynamic: bool = False) -> None:
    """Reject export settings that need no model to judge, with the fix.

    Args:
        shape (Sequence[int]): ``(H, W)`` of the export.
        dynamic (bool): Whether dynamic input sizes were asked for.
            Defaults to False.
    """
    if dynamic:
        raise ExportError(
            'dynamic input shapes are not supported: adaptive pooling '
            '(PSPNet\'s pyramid pooling) is exported with bins fixed for one '
            'input size; export once per size with --shape H W')
    if len(shape) != 2 or any(int(s) < 1 for s in shape):
        raise ExportError(
            f'--shape needs two positive integers H W, got {list(shape)}')


def check_exportable(model: nn.Module,
                     shape: Sequence[int],
                     dynamic: bool = False) -> None:
    """Reject what a fixed-size export cannot represent, with the fix.

    Args:
        model (nn.Module): The segmentor to export.
        shape (Sequence[int]): ``(H, W)`` of the export.
        dynamic (bool): Whether dynamic input sizes were asked for.
            Defaults to False.
    """
    from mmseg.models.segmentors import EncoderDecoder

    check_export_settings(shape, dynamic)
    if not isinstance(model, EncoderDecoder):
        raise ExportError(
            f'cannot export a {type(model).__name__}: mmpsp exports mmseg '
            f'EncoderDecoder segmentors (such as PSPNet); for other models '
            f'use mmdeploy')
    test_cfg = model.test_cfg or {}
    mode = test_cfg.get('mode', 'whole')
    if mode != 'whole':
        raise ExportError(
            f"model.test_cfg.mode={mode!r} is not supported: sliding-window "
            f"inference runs a data-dependent number of crops; export with "
            f"--cfg-options model.test_cfg.mode=whole and feed crops of "
            f"the export size")


def prepare_for_export(model: nn.Module,
                       shape: Sequence[int],
                       output: str = 'logits',
                       batch_size: int = 1,
                       dynamic: bool = False) -> Tuple[nn.Module, Tensor]:
    """Wrap a segmentor for export and fix its adaptive pooling.

    ``model`` itself is not changed: the wrapper holds a copy with
    SyncBN reverted to BN and adaptive pooling fixed for ``shape``.

    Args:
        model (nn.Module): An mmseg ``EncoderDecoder``.
        shape (Sequence[int]): Export size ``(H, W)``.
        output (str): ``'logits'`` or ``'mask'``. Defaults to ``'logits'``.
        batch_size (int): N of the fixed input. Defaults to 1.
        dynamic (bool): Whether dynamic shapes were asked for (rejected).
            Defaults to False.

    Returns:
        tuple[nn.Module, Tensor]: The :class:`SegmentorForExport` in eval
        mode and an example input of shape (N, 3, H, W).
    """
    check_exportable(model, shape, dynamic)
    segmentor = revert_sync_batchnorm(copy.deepcopy(model)).cpu().eval()
    wrapper = SegmentorForExport(segmentor, output).eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.rand((batch_size, 3, *map(int, shape)),
                         generator=generator) * 255
    fix_adaptive_pooling(wrapper, lambda: wrapper(example))
    return wrapper, example


def require_export_package(module: str) -> None:
    """Raise :class:`ExportError` naming the extra when ``module`` is missing.

    Args:
        module (str): ``'onnx'`` (export) or ``'onnxruntime'`` (verify).
    """
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ExportError(
            f'ONNX export needs the {module} package, which this '
            f'environment lacks ({error}); install it with '
            'pip install "mmpsp[export]" (onnx and onnxruntime)') from error


def _onnx_export_kwargs() -> dict:
    # torch >= 2.5 defaults (from 2.9) to the dynamo exporter, which needs
    # onnxscript; the TorchScript exporter handles this graph without it.
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        return dict(dynamo=False)
    return {}


def _add_metadata(path: Path, metadata: Dict[str, str]) -> None:
    try:
        import onnx
    except ImportError:
        return
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def export_onnx(model: nn.Module,
                shape: Sequence[int],
                out: Union[str, Path],
                output: str = 'logits',
                opset: int = DEFAULT_OPSET,
                dynamic: bool = False) -> Tuple[nn.Module, Tensor]:
    """Export ``model`` to ONNX at input size ``shape`` (batch 1).

    Args:
        model (nn.Module): An mmseg ``EncoderDecoder`` (e.g. PSPNet).
        shape (Sequence[int]): Input size ``(H, W)``.
        out (str | Path): The ``.onnx`` file to write.
        output (str): ``'logits'`` or ``'mask'``. Defaults to ``'logits'``.
        opset (int): ONNX opset. Defaults to 17.
        dynamic (bool): Dynamic shapes, rejected with
            :class:`ExportError`. Defaults to False.

    Returns:
        tuple[nn.Module, Tensor]: The exported wrapper and the example input,
        for :func:`verify_onnx`.
    """
    # torch's exporter needs onnx; without it its error would read as
    # the head failing.
    require_export_package('onnx')
    wrapper, example = prepare_for_export(model, shape, output,
                                          dynamic=dynamic)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The TorchScript exporter warns about every traced shape (fixed
        # here on purpose) and about its own deprecation.
        warnings.simplefilter('ignore')
        with torch.no_grad():
            try:
                torch.onnx.export(
                    wrapper, (example, ),
                    str(out),
                    input_names=['image'],
                    output_names=[output],
                    opset_version=opset,
                    do_constant_folding=True,
                    **_onnx_export_kwargs())
            except RuntimeError as error:
                raise ExportError(
                    f'ONNX export of {type(model.decode_head).__name__} '
                    f'failed: {error}; mmpsp exports heads built from '
                    f'convolutions, (adaptive) pooling and resizing such as '
                    f'PSPHead and FCNHead') from error
    dataset_meta = getattr(model, 'dataset_meta', None) or {}
    metadata = dict(
        input='image: float32 (N, 3, H, W), pixels 0-255, channel order of '
        'the config (BGR for bgr_to_rgb=True)',
        output=output,
        shape=f'{int(shape[0])}x{int(shape[1])}')
    if dataset_meta.get('classes'):
        metadata['classes'] = ','.join(map(str, dataset_meta['classes']))
    _add_metadata(out, metadata)
    return wrapper, example


def export_torchscript(model: nn.Module,
                       shape: Sequence[int],
                       out: Union[str, Path],
                       output: str = 'logits') -> Tuple[nn.Module, Tensor]:
    """Trace ``model`` with ``torch.jit.trace`` at input size ``shape``.

    Args:
        model (nn.Module): An mmseg ``EncoderDecoder`` (e.g. PSPNet).
        shape (Sequence[int]): Input size ``(H, W)``.
        out (str | Path): The ``.pt`` file to write (``torch.jit.load``).
        output (str): ``'logits'`` or ``'mask'``. Defaults to ``'logits'``.

    Returns:
        tuple[nn.Module, Tensor]: The traced wrapper's eager original and the
        example input.
    """
    wrapper, example = prepare_for_export(model, shape, output)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(wrapper, (example, ), check_trace=False)
    traced.save(str(out))
    return wrapper, example


def compare_outputs(reference: np.ndarray, other: np.ndarray,
                    output: str = 'logits') -> Dict[str, float]:
    """Agreement of two exports' outputs.

    Args:
        reference (np.ndarray): PyTorch's output, logits (N, K, H, W) or
            mask (N, H, W).
        other (np.ndarray): The exported model's output, same shape.
        output (str): Which of the two the arrays are. Defaults to
            ``'logits'``.

    Returns:
        dict: ``max_abs_diff`` and ``max_abs_logit`` (the reference's
        largest logit magnitude, for scale; both NaN for masks) and
        ``argmax_agreement``, the fraction of pixels with the same class.
    """
    if reference.shape != other.shape:
        raise ExportError(f'exported output has shape {other.shape}, '
                          f'PyTorch gives {reference.shape}')
    if output == 'logits':
        diff = float(np.abs(reference - other).max())
        scale = float(np.abs(reference).max())
        same = reference.argmax(1) == other.argmax(1)
    else:
        diff = scale = float('nan')
        same = reference == other
    return dict(
        max_abs_diff=diff,
        max_abs_logit=scale,
        argmax_agreement=float(same.mean()))


def verify_onnx(path: Union[str, Path],
                wrapper: nn.Module,
                image: Optional[Tensor] = None,
                atol: float = 1e-4,
                min_agreement: float = 0.999) -> Dict[str, float]:
    """Run an exported file with onnxruntime and compare with PyTorch.

    Args:
        path (str | Path): The ``.onnx`` file.
        wrapper (nn.Module): The :class:`SegmentorForExport` it came from.
        image (Tensor, optional): Input (N, 3, H, W); a fixed random image
            of the export size if None.
        atol (float): Largest allowed absolute logit difference.
            Defaults to 1e-4.
        min_agreement (float): Smallest allowed fraction of pixels with the
            same class. Defaults to 0.999.

    Returns:
        dict: As :func:`compare_outputs`.
    """
    require_export_package('onnxruntime')
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(path), providers=['CPUExecutionProvider'])
    spec = session.get_inputs()[0]
    if image is None:
        generator = torch.Generator().manual_seed(1)
        image = torch.rand(spec.shape, generator=generator) * 255
    with torch.no_grad():
        reference = wrapper(image).numpy()
    other = session.run(None, {spec.name: image.numpy()})[0]
    result = compare_outputs(reference, other, wrapper.output)
    if result['argmax_agreement'] < min_agreement or (
            wrapper.output == 'logits' and result['max_abs_diff'] > atol):
        raise ExportError(
            f'{path} disagrees with PyTorch: max |logit diff| '
            f'{result["max_abs_diff"]:.3g} (allowed {atol:g}), same class on '
            f'{result["argmax_agreement"]:.4%} of pixels (needed '
            f'{min_agreement:.2%})')
    return result


def build_segmentor(config: Union[str, Config],
                    checkpoint: Optional[str] = None,
                    cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a segmentor from a config and load a checkpoint strictly.

    Args:
        config (str | Config): Config file or object (mmpsp or mmseg).
        checkpoint (str, optional): Checkpoint to load with
            :func:`mmpsp.engine.checks.checkpoint_check.load_checkpoint_checked`.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        nn.Module: The segmentor on CPU in eval mode, ``cfg`` attached.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmpsp.engine.checks import load_checkpoint_checked

    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pop('pretrained', None)
    model_cfg.train_cfg = None
    # The checkpoint provides every weight; skip downloading pretrained ones.
    model_cfg.get('backbone', {}).pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        load_checkpoint_checked(model, checkpoint, strict=True)
    model.cfg = cfg
    return model.cpu().eval()


__all__ = [
    'DEFAULT_OPSET', 'ExportError', 'OUTPUTS', 'SegmentorForExport',
    'build_segmentor', 'check_export_settings', 'check_exportable',
    'compare_outputs', 'export_onnx', 'export_torchscript',
    'prepare_for_export', 'verify_onnx'
]
