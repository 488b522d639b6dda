# The no-pyramid-pooling baseline of the scenes demo: the PSPNet demo's
# backbone, auxiliary head, data and schedule, with PSPHead replaced by a
# dilated FCN head of the same width (two 3x3 convs plus the concat conv,
# about the PSP bottleneck's cost). Only the pyramid pooling module differs.
_base_ = '../pspnet/pspnet_r18-d8_scenes-demo.py'
model = dict(
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=256,
        in_index=3,
        channels=64,
        num_convs=2,
        concat_input=True,
        dropout_ratio=0.1,
        num_classes=12,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
