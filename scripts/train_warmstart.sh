#!/usr/bin/env bash
# Train the shipped default U-Fuser: the content-loss warm start (`emma train fusion --preset warmstart`).
#
# Usage: scripts/train_warmstart.sh DATA_ROOT RUN_DIR [STEPS]
#   DATA_ROOT holds MSRS/train, RoadScene/train and LLVIP/train (ir/, vi/). Training splits only:
#   no test pair is read. RUN_DIR receives val/ (links to held-in validation pairs), fusion/ (the run).
#   Re-running the same command resumes the run from its latest checkpoint.
#   Environment: THREADS (torch threads, default 1), SEED (default 0), LLVIP_WEIGHT (per-pair weight of
#   LLVIP/train, default 4; 0 leaves LLVIP out), MSRS_WEIGHT (per-pair weight of MSRS/train, default 14), GRAD_WEIGHT (the content loss's gradient weight; default: the preset's),
#   VAL_EVERY (steps between validations, default 500), INIT (U-Fuser to continue from, e.g. emma-default:
#   a warm restart of the shipped model), LR (peak learning rate of the cosine schedule; default the preset's),
#   SIGNED (true: the content loss's signed texture term, content_signed), GAIN (content_grad_gain),
#   MARGIN (content_ir_margin: how much stronger an infrared edge must be to be the texture target),
#   BASE (content_base_weight: the block-mean brightness term's weight),
#   POLARITY (content_polarity, 0-1: how far an infrared edge of the wrong sign moves to the max composite's),
#   VIF, QABF (content_vif_weight, content_qabf_weight: the scored metrics as loss terms),
#   VIF_CAP (content_vif_max_gain: 1 stops the VIF term from paying for contrast stretching),
#   VIF_VI (content_vif_visible_share: the visible image's share of the VIF term, default 0.5),
#   SKY (content_sky_weight: keep the visible image's bright, flat sky where the infrared is locally colder),
#   VAL_METRICS (monitor.val_metrics as a TOML list; default the preset's),
#   SELECT (monitor.select, the validation sum that picks the kept step; default VIF+Qabf+TCR),
#   VAL_ROADSCENE (N more held-in RoadScene validation pairs; default 0).
set -euo pipefail
DATA=${1:?data root}; RUN=${2:?run dir}; STEPS=${3:-3000}
mkdir -p "$RUN/val/ir" "$RUN/val/vi"
# Held-in validation pairs (fixed, night included): best-by-validation selection reads them.
for p in MSRS/train/00003N.png MSRS/train/00881N.png MSRS/train/00001D.png \
         LLVIP/train/010101.jpg RoadScene/train/FLIR_03952.jpg RoadScene/train/FLIR_04598.jpg; do
  for m in ir vi; do
    ln -sf "$(realpath "$DATA/$(dirname "$p")/$m/$(basename "$p")")" "$RUN/val/$m/$(echo "$p" | tr / _)"
  done
done
# VAL_ROADSCENE=N adds N more held-in RoadScene pairs (every 14th file): with SELECT=VIF+Qabf+TCR+SCD
# this catches an output that turns into the infrared image (docs/TRAINING_HISTORY.md, "Phases 10-14").
VAL_N=6
if [ "${VAL_ROADSCENE:-0}" -gt 0 ]; then
  for n in $(ls "$DATA/RoadScene/train/ir" | awk 'NR % 14 == 0' | head -n "$VAL_ROADSCENE"); do
    for m in ir vi; do ln -sf "$(realpath "$DATA/RoadScene/train/$m/$n")" "$RUN/val/$m/RoadScene_train_x_$n"; done
  done
  VAL_N=$((6 + VAL_ROADSCENE))
fi
# MSRS 12 pairs x 14 and RoadScene 171 x 1 are drawn about equally often; LLVIP 32 x 4 a little less.
LLVIP_SET=""
[ "${LLVIP_WEIGHT:-4}" != 0 ] && LLVIP_SET="{ root = \"$DATA/LLVIP/train\", weight = ${LLVIP_WEIGHT:-4} },"
cat > "$RUN/warmstart.toml" <<TOML
preset = "warmstart"

[fusion]
out = "$RUN/fusion"
steps = $STEPS
threads = ${THREADS:-1}
seed = ${SEED:-0}
${GRAD_WEIGHT:+content_grad_weight = $GRAD_WEIGHT}
${SIGNED:+content_signed = $SIGNED}
${GAIN:+content_grad_gain = $GAIN}
${MARGIN:+content_ir_margin = $MARGIN}
${BASE:+content_base_weight = $BASE}
${POLARITY:+content_polarity = $POLARITY}
${VIF:+content_vif_weight = $VIF}
${QABF:+content_qabf_weight = $QABF}
${VIF_CAP:+content_vif_max_gain = $VIF_CAP}
${VIF_VI:+content_vif_visible_share = $VIF_VI}
${SKY:+content_sky_weight = $SKY}
${INIT:+init_weights = \"$INIT\"}
${LR:+optim = { lr = $LR \}}
progress = false
log_every = 10
monitor = { val_dir = "$RUN/val", val_pairs = $VAL_N, val_every = ${VAL_EVERY:-500}${SELECT:+, select = \"$SELECT\"}${VAL_METRICS:+, val_metrics = $VAL_METRICS} }
data = { sets = [
  { root = "$DATA/MSRS/train", weight = ${MSRS_WEIGHT:-14.0} },
  { root = "$DATA/RoadScene/train", weight = 1.0 },
  $LLVIP_SET
] }
TOML
RESUME=""
[ -d "$RUN/fusion/checkpoints" ] && RESUME="--resume"
python3 -m emma_fusion train fusion --config "$RUN/warmstart.toml" $RESUME
