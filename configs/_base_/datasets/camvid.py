# CamVid, SegNet's 11-class split (367 train / 101 val, 360x480 frames).
# Void (label 11) is mapped to 255 by CamVidDataset and ignored by the loss
# and IoUMetric. Layout: docs/datasets.md.
dataset_type = 'CamVidDataset'
data_root = 'data/camvid'
crop_size = (360, 480)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(480, 360),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    # mmpsp.Fast*: mmseg's RandomCrop and PhotoMetricDistortion with
    # bit-identical output for less CPU time (mmpsp/datasets/transforms.py).
    dict(
        type='mmpsp.FastRandomCrop',
        crop_size=crop_size,
        cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='mmpsp.FastPhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(480, 360), keep_ratio=True),
    # Annotations load after Resize so metrics use the original labels.
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    # Page-locked batches copy to the GPU without blocking the host
    # (off on a machine without CUDA, logged by mmpsp.apis.adapt_to_machine).
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train', seg_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    # Page-locked batches copy to the GPU without blocking the host
    # (off on a machine without CUDA, logged by mmpsp.apis.adapt_to_machine).
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val', seg_map_path='annotations/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
