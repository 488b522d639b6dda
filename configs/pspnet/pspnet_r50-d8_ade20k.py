# PSPNet R50-D8, ADE20K 512x512, 80k iterations, 4 GPUs x 4 images (mmseg:
# pspnet_r50-d8_4xb4-80k_ade20k-512x512, 41.13 mIoU).
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_80k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
