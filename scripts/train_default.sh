#!/usr/bin/env bash
# The full EMMA pipeline, the paper's recipe at GPU or CPU scale: pseudo ground truth, stage 1 (A_i, A_v),
# stage 2 (U-Fuser). (The shipped emma-default is the content warm start: configs/emma-default.toml.)
#
# Usage: scripts/train_default.sh DATA_ROOT RUN_DIR [SCALE]
#   DATA_ROOT holds MSRS/train, RoadScene/train (ir/, vi/) and results/<Peer>/<Dataset>_train/
#   (other methods' fused training images: IFCNN, SeAFusion). Training splits only.
#   SCALE=full (GPU, default), cpu (2-core CPU, hours), or tiny (a CPU dry run of the pipeline in a minute or two).
#   Environment: S1_SEC, S2_SEC (time budget per stage), S2_TPS, S2_LR, INIT (U-Fuser weights to warm-start from),
#   ABLATION_II=1, SKIP_S1=1 (reuse RUN_DIR/sensing).
# Writes RUN_DIR/{gt,sensing,fusion,fusion_II}; the U-Fuser is RUN_DIR/fusion/ufuser.safetensors.
set -uo pipefail
DATA=${1:?data root}; RUN=${2:?run dir}; SCALE=${3:-full}
EMMA="python3 -m emma_fusion"
mkdir -p "$RUN"
if [ "$SCALE" = full ]; then
  DEV=cuda; AMP=bf16; WIDTH=64; S1_BATCH=32; S2_BATCH=8; CROP=128; S1_SEC=${S1_SEC:-130}; S2_SEC=${S2_SEC:-240}; GT_METHODS="gff lp tif"
  S1_LR=3e-4; S2_LR=2e-4; EVERY=200; S2_TPS=${S2_TPS:-3}
elif [ "$SCALE" = cpu ]; then  # 2-core CPU; INIT=weights warm-starts the U-Fuser
  DEV=cpu; AMP=none; WIDTH=16; S1_BATCH=8; S2_BATCH=4; CROP=96; S1_SEC=${S1_SEC:-900}; S2_SEC=${S2_SEC:-3000}; GT_METHODS="gff lp tif"
  S1_LR=1e-3; S2_LR=${S2_LR:-1e-4}; EVERY=100; S2_TPS=1; NOISE=0.1
else
  DEV=cpu; AMP=none; WIDTH=8; S1_BATCH=4; S2_BATCH=2; CROP=64; S1_SEC=15; S2_SEC=15; GT_METHODS="lp"
  S1_LR=1e-3; S2_LR=2e-4; EVERY=20; S2_TPS=1
fi

# 1. Pseudo ground truth from classical methods, one process per (dataset, method).
for ds in MSRS RoadScene; do
  for m in $GT_METHODS; do
    [ -d "$DATA/gt/$ds/$m" ] && continue  # made beforehand (same command), reused
    $EMMA pseudo-gt --ir "$DATA/$ds/train/ir" --vi "$DATA/$ds/train/vi" --methods "$m" --out "$RUN/gt/$ds" --no-progress > "$RUN/gt_${ds}_$m.log" 2>&1 &
  done
done
wait
fused_list() {  # TOML list of the pseudo-GT folders of dataset $1
  local ds=$1 items=()
  for m in $GT_METHODS; do
    if [ -d "$DATA/gt/$ds/$m" ]; then items+=("\"$DATA/gt/$ds/$m\""); else items+=("\"$RUN/gt/$ds/$m\""); fi
  done
  for p in IFCNN SeAFusion; do [ -d "$DATA/results/$p/${ds}_train" ] && items+=("\"$DATA/results/$p/${ds}_train\""); done
  local IFS=,; echo "[${items[*]}]"
}
# MSRS has 12 pairs and RoadScene 171: weight MSRS pairs so each data set is drawn about equally.
cat > "$RUN/train.toml" <<TOML
[sensing]
out = "$RUN/sensing"
device = "$DEV"
amp = "$AMP"
width = $WIDTH
batch = $S1_BATCH
steps = 100000
max_seconds = $S1_SEC
checkpoint_every = 500
progress = false
log_every = 10
optim = { lr = $S1_LR, lr_step_epochs = 1e9 }
data = { crop = $CROP, noise_std = ${NOISE:-0.05}, sets = [
  { root = "$DATA/MSRS/train", weight = 14.0, fused = $(fused_list MSRS) },
  { root = "$DATA/RoadScene/train", weight = 1.0, fused = $(fused_list RoadScene) },
] }

[fusion]
out = "$RUN/fusion"
init_weights = "${INIT:-}"
sensing = "$RUN/sensing"
device = "$DEV"
amp = "$AMP"
batch = $S2_BATCH
steps = 100000
max_seconds = $S2_SEC
checkpoint_every = 500
progress = false
log_every = 10
optim = { lr = $S2_LR, lr_step_epochs = 1e9 }
transforms = { per_step = $S2_TPS }
monitor = { every = $EVERY, crops = 8, stop = false }
data = { crop = $CROP, sets = [
  { root = "$DATA/MSRS/train", weight = 14.0 },
  { root = "$DATA/RoadScene/train", weight = 1.0 },
] }
TOML

# 2. Stage 1.
if [ "${SKIP_S1:-0}" != 1 ]; then
  $EMMA train sensing --config "$RUN/train.toml" > "$RUN/sensing.log" 2>&1 || { echo "stage 1 failed"; tail -5 "$RUN/sensing.log"; }
fi
tail -n 3 "$RUN/sensing.log"
# 3. Stage 2: the full EMMA loss (ABLATION_II=1 also trains ablation II, plain l1 + equivariance, beside it).
$EMMA train fusion --config "$RUN/train.toml" --skip-gate > "$RUN/fusion.log" 2>&1 &
if [ "${ABLATION_II:-0}" = 1 ]; then
  $EMMA train fusion --config "$RUN/train.toml" --ablation II --skip-gate --out "$RUN/fusion_II" --seed 1 > "$RUN/fusion_II.log" 2>&1 &
fi
wait
tail -n 4 "$RUN"/fusion*.log
ls -la "$RUN"/fusion*/ufuser.safetensors
