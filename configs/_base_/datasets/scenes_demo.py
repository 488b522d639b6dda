# Scenes-demo: the synthetic scene-parsing set that mmpsp generates itself
# (mmpsp.demo.scenes.generate_scenes_demo; `tools/demo.py` writes it
# to <out>/data). 12 classes, no void, 128x128 RGB PNGs, 320 train / 80 val.
dataset_type = 'ScenesDemoDataset'
data_root = 'data/scenes_demo'
crop_size = (128, 128)
# The generator already varies exposure, tint and layout; a flip is the only
# augmentation that keeps a CPU iteration cheap.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
# Decoding a 128x128 PNG takes well under a millisecond: worker processes
# would cost more than they save on a laptop CPU.
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train', seg_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
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
