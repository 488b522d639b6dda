# PSPNet R50-D8 with the paper's Cityscapes recipe: 713x713 crops, batch 16,
# 90k iterations, weight decay 1e-4.
_base_ = [
    '../_base_/models/pspnet_r50-d8.py',
    '../_base_/datasets/cityscapes_paper-713x713.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_90k_paper.py',
]
crop_size = (713, 713)
data_preprocessor = dict(size=crop_size)
# Odd crops (size - 1 divisible by 8) with align_corners, as the official
# code; inference slides the training crop with 2/3 overlap stride.
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=19, align_corners=True),
    auxiliary_head=dict(num_classes=19, align_corners=True),
    test_cfg=dict(mode='slide', crop_size=(713, 713), stride=(476, 476)))
