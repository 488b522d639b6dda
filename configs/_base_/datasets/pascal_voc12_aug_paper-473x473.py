# PASCAL VOC 2012 + SBD aug with the paper recipe: 473x473 crops, resize
# 0.5-2, mirror, rotation in [-10, 10] degrees and Gaussian blur; batch
# 16 = 4 GPUs x 4.
_base_ = './pascal_voc12_aug.py'
crop_size = (473, 473)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomRotate', prob=1.0, degree=10.0),
    dict(type='RandomGaussianBlur', prob=0.5, kernel_size=5),
    # mmpsp.FastRandomCrop: mmseg's RandomCrop with bit-identical output
    # for less CPU time (mmpsp/datasets/transforms.py).
    dict(
        type='mmpsp.FastRandomCrop',
        crop_size=crop_size,
        cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
dataset_train = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline=train_pipeline)
dataset_aug = dict(
    type='PascalVOCDataset',
    data_root='data/VOCdevkit/VOC2012',
    data_prefix=dict(
        img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
    ann_file='ImageSets/Segmentation/aug.txt',
    pipeline=train_pipeline)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[dataset_train, dataset_aug]))
