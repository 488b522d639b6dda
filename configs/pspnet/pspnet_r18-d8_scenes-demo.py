# PSPNet with a slim ResNet-18-D8 (32 base channels) trained from scratch on
# the synthetic scenes-demo set: the `make demo` model. BN, one process,
# batch 8 of 128x128, 600 SGD iterations: a few minutes on a laptop CPU.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/scenes_demo.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_6k.py'
]
norm_cfg = dict(type='BN', requires_grad=True)
crop_size = (128, 128)
max_iters = 600
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        depth=18,
        stem_channels=32,
        base_channels=32,
        norm_cfg=norm_cfg,
        init_cfg=None),
    decode_head=dict(
        in_channels=256, channels=64, num_classes=12, norm_cfg=norm_cfg),
    auxiliary_head=dict(
        in_channels=128, channels=32, num_classes=12, norm_cfg=norm_cfg))
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 5)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_iters))
randomness = dict(seed=0)
