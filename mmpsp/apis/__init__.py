"""User entry points: train, test, inference and the process set-up.

Rule: what ``tools/*.py`` and the demo call. Entry points read a config,
apply the command line's options to it, adapt it to the machine
(:func:`adapt_to_machine`, the one place that changes a run without the
config saying so) and hand it to mmengine's Runner. Names are imported on
first use, so the ``mmpsp`` command parses its arguments before loading
torch (:mod:`mmpsp.utils.lazy`).
"""
from mmpsp.utils.lazy import lazy_exports

_EXPORTS = {
    'init_segmentor': '.inference',
    'segment_images': '.inference',
    'LaunchEnvironmentError': '.launch',
    'adapt_to_machine': '.launch',
    'init_cpu_process_group': '.launch',
    'load_config': '.launch',
    'revert_sync_bn_in_config': '.launch',
    'add_speed_levers': '.run_options',
    'enable_amp': '.run_options',
    'build_test_config': '.test',
    'run_test': '.test',
    'NothingToResumeWarning': '.train',
    'build_train_config': '.train',
    'build_train_runner': '.train',
    'resolve_resume': '.train',
    'run_train': '.train',
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
