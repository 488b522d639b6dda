"""The scenes demo (``make demo``): data, training pair and report.

Rule: everything the demo alone needs. ``scenes`` renders the synthetic
Figure-2 scene set and registers its dataset; ``pipeline`` trains PSPNet
and its FCN baseline through the same entry point as ``tools/train.py``;
``report`` scores and draws them.
Names are imported on first use (:mod:`mmpsp.utils.lazy`).
"""
from mmpsp.utils.lazy import lazy_exports

_EXPORTS = {
    'ScenesDemoDataset': '.scenes',
    'build_demo_config': '.pipeline',
    'evaluate_segmentor': '.report',
    'generate_scenes_demo': '.scenes',
    'plot_curves': '.report',
    'plot_predictions': '.report',
    'read_scalars': '.report',
    'results_table': '.report',
    'run_demo': '.pipeline',
    'train_and_evaluate': '.pipeline',
    'write_results': '.report',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
