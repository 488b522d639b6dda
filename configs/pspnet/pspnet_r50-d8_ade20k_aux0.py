# Ablation (paper Table 2): auxiliary loss weight 0 (the base uses 0.4).
_base_ = './pspnet_r50-d8_ade20k.py'
model = dict(auxiliary_head=dict(loss_decode=dict(loss_weight=0.0)))
