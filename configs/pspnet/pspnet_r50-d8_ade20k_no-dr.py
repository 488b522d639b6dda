# Ablation (paper Table 1): no dimension reduction (DR) of the pooled features;
# each pyramid branch keeps the full channel width.
_base_ = './pspnet_r50-d8_ade20k.py'
model = dict(decode_head=dict(dim_reduction=False))
