# mmpsp's PSPHead on MobileNetV2 (mmseg's backbone), dilated to output
# stride 8 as in mmseg's MobileNetV2 segmentation configs: the pyramid pools
# the last stage (320 channels), the auxiliary FCNHead supervises the
# 96-channel stage. SGD 160k schedule, 4 GPUs x 4 images. Runs under mmseg's
# default scope, so mmseg's own tools/train.py takes it as well as mmpsp's
# (docs/interop.md).
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_160k.py'
]
default_scope = 'mmseg'
custom_imports = dict(imports=['mmpsp'], allow_failed_imports=False)
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.,
        strides=(1, 2, 2, 1, 1, 1, 1),
        dilations=(1, 1, 1, 2, 2, 4, 4),
        out_indices=(1, 2, 4, 6),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')),
    decode_head=dict(type='mmpsp.PSPHead', in_channels=320,
                     num_classes=150),
    auxiliary_head=dict(type='mmpsp.FCNHead', in_channels=96,
                        num_classes=150))
