# Ablation (paper Table 1): a single global-pooling bin (B1) instead of
# B1236.
_base_ = './pspnet_r50-d8_ade20k.py'
model = dict(decode_head=dict(pool_scales=(1, )))
