# PSPNet R101-D8, ADE20K 512x512, 160k iterations.
_base_ = './pspnet_r50-d8_4xb4-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained', checkpoint='open-mmlab://resnet101_v1c')))
