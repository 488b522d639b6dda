# PSPNet R50 with output stride 16 (stage 4 dilated only), ADE20K 512x512,
# 80k iterations.
_base_ = './pspnet_r50-d8_ade20k.py'
model = dict(backbone=dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))
