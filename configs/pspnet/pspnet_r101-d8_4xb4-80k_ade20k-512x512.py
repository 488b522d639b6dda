# PSPNet R101-D8, ADE20K 512x512, 80k iterations.
_base_ = './pspnet_r50-d8_ade20k.py'
model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            type='Pretrained', checkpoint='open-mmlab://resnet101_v1c')))
