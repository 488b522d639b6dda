# PSPNet R50-D8 with the paper's ADE20K recipe: 473x473 crops, batch 16,
# 150k iterations, weight decay 1e-4, rotation and blur.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/ade20k_paper-473x473.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_150k_paper.py',
]
crop_size = (473, 473)
data_preprocessor = dict(size=crop_size)
# Odd crops (size - 1 divisible by 8) with align_corners, as the official
# code; inference slides the training crop with 2/3 overlap stride.
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=150, align_corners=True),
    auxiliary_head=dict(num_classes=150, align_corners=True),
    test_cfg=dict(mode='slide', crop_size=(473, 473), stride=(316, 316)))
