# Runtime shared by every mmpsp config. ``default_scope='mmpsp'`` resolves
# ResNetV1c, PSPHead, FCNHead and CamVidDataset in mmpsp's registries and
# everything else (EncoderDecoder, datasets, transforms, IoUMetric, Runner
# parts) in their mmseg and mmengine parents. ``default_hooks`` live in the
# schedule files: mmengine forbids the same key in two bases, and the
# checkpoint interval belongs to the schedule.
default_scope = 'mmpsp'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

# Every hook an mmpsp run has is declared here or in default_hooks (the
# schedules): mmseg's own tools/train.py and tools/test.py run the same
# hooks as mmpsp's. A config that sets ``custom_hooks = [...]`` replaces
# this list (the entry points warn, naming what is missing); extend it with
# ``custom_hooks = _base_.custom_hooks + [...]`` instead.
custom_hooks = [
    # Stop at the first non-finite loss, naming the last finite checkpoint.
    dict(type='mmpsp.NonFiniteLossHook'),
    # Refuse label values outside [0, num_classes) other than ignore_index.
    dict(type='mmpsp.LabelRangeHook'),
    # Reseed torch per iteration so that --resume repeats the same run.
    dict(type='mmpsp.IterationSeedHook'),
    # channels_last (NHWC) changes the memory layout, not the result:
    # cuDNN's fastest convolutions on recent GPUs take NHWC, and on CPU it
    # costs nothing. tools/train.py --no-channels-last turns it off;
    # compile=True (or --compile) adds torch.compile
    # (mmpsp/engine/hooks/speed_levers_hook.py).
    dict(type='mmpsp.SpeedLeversHook', channels_last=True, compile=False),
    # Refuse a load_from checkpoint that does not fit the model (another
    # class count or architecture) instead of running a partly random head.
    dict(type='mmpsp.CheckpointCheckHook'),
    # Multi-process runs without SyncBN: validate with rank 0's BN
    # statistics, which the checkpoint holds (nothing in one process).
    dict(type='mmpsp.RankZeroBuffersHook'),
]

# Multi-scale + flip inference (``--tta``) wraps the model in mmseg's
# SegTTAModel and feeds it the dataset base's ``tta_pipeline``.
tta_model = dict(type='SegTTAModel')
