# PSPNet R50-D8, PASCAL VOC 2012 + SBD aug, 512x512, 40k iterations.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/pascal_voc12_aug.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=21),
    auxiliary_head=dict(num_classes=21))
