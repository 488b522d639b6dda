# PSPNet R50-D8, Pascal Context (59 classes), 480x480, 40k iterations;
# mmseg's lr 0.004 and weight decay 1e-4 for this dataset.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/pascal_context_59.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_40k.py',
]
crop_size = (480, 480)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    test_cfg=dict(mode='slide', crop_size=(480, 480), stride=(320, 320)),
    decode_head=dict(num_classes=59),
    auxiliary_head=dict(num_classes=59))
optimizer = dict(type='SGD', lr=0.004, momentum=0.9, weight_decay=0.0001)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer)
