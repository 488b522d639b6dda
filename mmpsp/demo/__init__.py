"""The scenes demo: generate data, train PSPNet and its FCN baseline, report.
"""
from .pipeline import build_demo_config, run_demo, train_and_evaluate
from .report import (
    evaluate_segmentor,
    plot_curves,
    plot_predictions,
    read_scalars,
    results_table,
    write_results,
)

__all__ = [
    'build_demo_config', 'run_demo', 'train_and_evaluate',
    'evaluate_segmentor', 'plot_curves', 'plot_predictions', 'read_scalars',
    'results_table', 'write_results'
]
