"""Deployment: fixed-size ONNX and TorchScript export of segmentors.
Names are imported on first use (:mod:`mmpsp.utils.lazy`).
"""
from mmpsp.utils.lazy import lazy_exports

_EXPORTS = {
    'DEFAULT_OPSET': '.export',
    'OUTPUTS': '.export',
    'ExportError': '.export',
    'FixedAdaptivePool2d': '.pooling',
    'SegmentorForExport': '.export',
    'adaptive_bins': '.pooling',
    'build_segmentor': '.export',
    'check_export_settings': '.export',
    'check_exportable': '.export',
    'compare_outputs': '.export',
    'export_onnx': '.export',
    'export_torchscript': '.export',
    'fix_adaptive_pooling': '.pooling',
    'prepare_for_export': '.export',
    'verify_onnx': '.export',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
