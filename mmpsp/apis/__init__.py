"""User entry points: train, test, inference and the process set-up.

Rule: what ``tools/*.py`` and the demo call. Entry points read a config,
apply the command line's options to it, adapt it to the machine
(:func:`adapt_to_machine`, the one place that changes a run without the
config saying so) and hand it to mmengine's Runner.
"""
from .inference import init_segmentor, segment_images
from .launch import (
    LaunchEnvironmentError,
    adapt_to_machine,
    init_cpu_process_group,
    load_config,
    revert_sync_bn_in_config,
)
from .run_options import add_speed_levers, enable_amp
from .test import build_test_config, run_test
from .train import (
    NothingToResumeWarning,
    build_train_config,
    build_train_runner,
    resolve_resume,
    run_train,
)

__all__ = [
    'LaunchEnvironmentError', 'NothingToResumeWarning', 'adapt_to_machine',
    'add_speed_levers', 'build_test_config', 'build_train_config',
    'build_train_runner',
    'enable_amp', 'init_cpu_process_group', 'init_segmentor', 'load_config',
    'resolve_resume', 'revert_sync_bn_in_config', 'run_test', 'run_train',
    'segment_images'
]
