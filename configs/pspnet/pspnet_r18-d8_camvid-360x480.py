# PSPNet R18-D8 on CamVid, trained from scratch: 6k iterations, batch 8,
# 360x480 crops, the CamVid end-to-end reference recipe.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/camvid.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_6k.py'
]
crop_size = (360, 480)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(depth=18, init_cfg=None),
    decode_head=dict(in_channels=512, channels=128, num_classes=11),
    auxiliary_head=dict(in_channels=256, channels=64, num_classes=11))
