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

# channels_last (NHWC) changes the memory layout, not the result: cuDNN's
# fastest convolutions on recent GPUs take NHWC, and on CPU it costs
# nothing. Turn it off with tools/train.py --no-channels-last. compile=True
# (or --compile) adds torch.compile; see mmpsp/engine/speed.py.
custom_hooks = [
    dict(type='mmpsp.SpeedLeversHook', channels_last=True, compile=False)
]

# Multi-scale + flip inference (``--tta``) wraps the model in mmseg's
# SegTTAModel and feeds it the dataset base's ``tta_pipeline``.
tta_model = dict(type='SegTTAModel')
