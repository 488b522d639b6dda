# Pascal Context (VOC 2010 images, 60 classes with background).
dataset_type = 'PascalContextDataset'
data_root = 'data/VOCdevkit/VOC2010/'
crop_size = (480, 480)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(520, 520),
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
    dict(type='Resize', scale=(520, 520), keep_ratio=True),
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
    batch_size=4,
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
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/train.txt',
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
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
