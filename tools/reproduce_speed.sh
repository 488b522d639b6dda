#!/usr/bin/env bash
# Measure the speed and memory figures of docs/speed.md on this machine's
# GPU, mmseg's PSPNet next to mmpsp's, in one go:
#   tools/reproduce_speed.sh CAMVID_ROOT [OUT_DIR]
# 1. model-only training and inference for every setting (R50-D8, 150
#    classes, 512x512, train batch 16, inference batch 1);
# 2. memory mode (docs/speed.md#memory): the loss path alone, and a whole
#    training step at batch 16, bf16 + channels_last, mmpsp's config next
#    to mmseg's own: peak memory, time ratios, and the largest batch that
#    fits 24 GiB;
# 3. CamVid end to end (R18-D8 from scratch, 6000 iterations, batch 8,
#    bf16, WORKERS loader workers), once with mmpsp's model and once with
#    mmseg's backbone and heads in the same config: s/iter with data
#    loading, and val mIoU.
# Set STEPS=quick for a 200-iteration CamVid check (iteration time only).
set -euo pipefail

if [ "$#" -lt 1 ]; then
    echo "usage: $0 CAMVID_ROOT [OUT_DIR]" >&2
    exit 2
fi
CAMVID=$1
OUT=${2:-work_dirs/speed}
WORKERS=${WORKERS:-12}
TOOLS=$(dirname "$0")
# PYTHON: the environment variable, else `python` on PATH; must have torch.
. "$TOOLS/check_python.sh"
CONFIG=$TOOLS/../configs/pspnet/pspnet_r18-d8_camvid-360x480.py
if [ ! -d "$CAMVID/images/train" ]; then
    echo "$CAMVID has no images/train: pass the CamVid root (layout in docs/datasets.md)" >&2
    exit 2
fi
ITERS=6000
[ "${STEPS:-full}" = quick ] && ITERS=200
mkdir -p "$OUT"

$PYTHON "$TOOLS/analysis_tools/benchmark.py" --device cuda --json "$OUT/benchmark.json" \
    | tee "$OUT/benchmark.md"
$PYTHON "$TOOLS/analysis_tools/benchmark.py" --device cuda --memory --batch-size 16 \
    --setting bf16+cl --repeats 10 --budget-gb 24 --json "$OUT/memory.json" \
    | tee "$OUT/memory.md"

DATA="train_dataloader.dataset.data_root=$CAMVID val_dataloader.dataset.data_root=$CAMVID \
test_dataloader.dataset.data_root=$CAMVID train_dataloader.num_workers=$WORKERS \
train_cfg.max_iters=$ITERS"
MMSEG_MODEL="model.backbone.type=mmseg.ResNetV1c model.decode_head.type=mmseg.PSPHead \
model.auxiliary_head.type=mmseg.FCNHead"
# shellcheck disable=SC2086
$PYTHON "$TOOLS/train.py" "$CONFIG" --amp bf16 --work-dir "$OUT/camvid_mmpsp" \
    --cfg-options $DATA
# mmseg's model as the reference ran it: bf16, no channels_last.
# shellcheck disable=SC2086
$PYTHON "$TOOLS/train.py" "$CONFIG" --amp bf16 --no-channels-last \
    --work-dir "$OUT/camvid_mmseg" --cfg-options $DATA $MMSEG_MODEL
$PYTHON "$TOOLS/analysis_tools/benchmark.py" --log "$OUT/camvid_mmseg" "$OUT/camvid_mmpsp" \
    | tee "$OUT/camvid.md"
