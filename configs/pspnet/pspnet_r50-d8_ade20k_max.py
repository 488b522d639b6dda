# Ablation (paper Table 1): max pooling (MAX) in the pyramid instead of
# average pooling (AVE).
_base_ = './pspnet_r50-d8_ade20k.py'
model = dict(decode_head=dict(pool_type='max'))
