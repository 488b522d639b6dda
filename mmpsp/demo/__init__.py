"""The scenes demo (``make demo``): data, training pair and report.

Rule: everything the demo alone needs. ``scenes`` renders the synthetic
Figure-2 scene set and registers its dataset; ``pipeline`` trains PSPNet
and its FCN baseline through the same entry point as ``tools/train.py``;
``report`` scores and draws them.
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
from .scenes import ScenesDemoDataset, generate_scenes_demo

__all__ = [
    'ScenesDemoDataset', 'build_demo_config', 'evaluate_segmentor',
    'generate_scenes_demo', 'plot_curves', 'plot_predictions', 'read_scalars',
    'results_table', 'run_demo', 'train_and_evaluate', 'write_results'
]
