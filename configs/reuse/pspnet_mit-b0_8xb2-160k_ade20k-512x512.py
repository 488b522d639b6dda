# mmpsp's PSPHead on SegFormer's MiT-B0 transformer (mmseg's
# MixVisionTransformer), trained with SegFormer's ADE20K recipe (AdamW,
# head lr x10, 8 GPUs x 2 images). The pyramid pools the last stage
# (256 channels, stride 32); the auxiliary FCNHead supervises stage 3
# (160 channels, stride 16). Runs under mmseg's default scope, so mmseg's
# own tools/train.py takes it as well as mmpsp's (docs/interop.md).
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_160k.py'
]
default_scope = 'mmseg'
custom_imports = dict(imports=['mmpsp'], allow_failed_imports=False)
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b0_20220624-7e0fe6dd.pth'  # noqa
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='MixVisionTransformer',
        in_channels=3,
        embed_dims=32,
        num_stages=4,
        num_layers=[2, 2, 2, 2],
        num_heads=[1, 2, 5, 8],
        patch_sizes=[7, 3, 3, 3],
        sr_ratios=[8, 4, 2, 1],
        out_indices=(0, 1, 2, 3),
        mlp_ratio=4,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(
        type='mmpsp.PSPHead', in_channels=256, channels=256,
        num_classes=150),
    auxiliary_head=dict(
        type='mmpsp.FCNHead', in_channels=160, channels=128,
        num_classes=150))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'pos_block': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'head': dict(lr_mult=10.)
        }))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
        end=1500),
    dict(
        type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000,
        by_epoch=False)
]
train_dataloader = dict(batch_size=2, num_workers=2)
