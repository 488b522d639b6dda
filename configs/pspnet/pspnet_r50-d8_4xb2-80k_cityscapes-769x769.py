# PSPNet R50-D8, Cityscapes 769x769 crops, 80k iterations, with sliding-window
# inference over 769x769 windows.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/cityscapes_769x769.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_80k.py',
]
crop_size = (769, 769)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=19, align_corners=True),
    auxiliary_head=dict(num_classes=19, align_corners=True),
    test_cfg=dict(mode='slide', crop_size=(769, 769), stride=(513, 513)))
