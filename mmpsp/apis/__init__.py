"""High-level entry points: training, testing and their process setup."""
from . import checkpoint  # noqa: F401  (registers CheckpointCheckHook)
from .amp import BF16AutocastOptimWrapper, enable_amp
from .data_profile import mmseg_pipeline_options, profile_train_pipeline
from .inference import init_segmentor, segment_images
from .launch import (
    init_cpu_process_group,
    load_config,
    prepare_launch,
    revert_sync_bn_in_config,
)
from .test import build_test_config, run_test
from .train import (
    NothingToResumeWarning,
    build_train_config,
    resolve_resume,
    run_train,
)

__all__ = [
    'BF16AutocastOptimWrapper', 'NothingToResumeWarning',
    'build_test_config', 'build_train_config', 'enable_amp',
    'init_segmentor', 'segment_images',
    'init_cpu_process_group', 'load_config', 'prepare_launch',
    'resolve_resume', 'revert_sync_bn_in_config', 'run_test', 'run_train',
    'mmseg_pipeline_options', 'profile_train_pipeline'
]
