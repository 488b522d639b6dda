"""Deployment: fixed-size ONNX and TorchScript export of segmentors."""
from .export import (
    DEFAULT_OPSET,
    OUTPUTS,
    ExportError,
    SegmentorForExport,
    build_segmentor,
    check_export_settings,
    check_exportable,
    compare_outputs,
    export_onnx,
    export_torchscript,
    prepare_for_export,
    verify_onnx,
)
from .pooling import FixedAdaptivePool2d, adaptive_bins, fix_adaptive_pooling

__all__ = [
    'DEFAULT_OPSET', 'OUTPUTS', 'ExportError', 'FixedAdaptivePool2d',
    'SegmentorForExport', 'adaptive_bins', 'build_segmentor',
    'check_export_settings', 'check_exportable', 'compare_outputs',
    'export_onnx', 'export_torchscript', 'fix_adaptive_pooling',
    'prepare_for_export', 'verify_onnx'
]
