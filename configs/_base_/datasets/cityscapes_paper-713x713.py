# Cityscapes with the paper recipe: 713x713 crops, resize 0.5-2 and mirror
# only; batch 16 = 8 GPUs x 2.
_base_ = './cityscapes.py'
crop_size = (713, 713)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 1024),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    # mmpsp.FastRandomCrop: mmseg's RandomCrop with bit-identical output
    # for less CPU time (mmpsp/datasets/transforms.py).
    dict(
        type='mmpsp.FastRandomCrop',
        crop_size=crop_size,
        cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
