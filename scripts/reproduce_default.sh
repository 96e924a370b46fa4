#!/usr/bin/env bash
# Every run that led to the shipped emma-default, in order (docs/MODEL_CARD.md, "How it was trained").
#
# Usage: scripts/reproduce_default.sh DATA_ROOT [OUT]      (OUT default runs/repro; about 4 hours on one CPU thread)
#   Each phase is scripts/train_warmstart.sh started from the previous phase's best-by-validation
#   weights (RUN/fusion/ufuser_best.safetensors). A phase whose run already finished is skipped and an
#   interrupted one resumes, so re-running the script continues where it stopped. The last phase's
#   best weights are what `python scripts/ship_model.py OUT/p14/fusion/ufuser_best.safetensors --note ...`
#   packages. Runs on other machines or thread counts differ in the last bits (crop order is seeded,
#   floating-point sums are not), so expect figures close to, not equal to, the model card's.
#   DRY_STEPS=N runs every phase for N steps instead (a quick check of the chain).
set -euo pipefail
DATA=${1:?data root}; OUT=${2:-runs/repro}
export THREADS=${THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PREV=""
phase() {  # phase NAME STEPS [VAR=value ...]: one warm-start run from the previous phase
  local name=$1 steps=${DRY_STEPS:-$2}; shift 2
  local run="$OUT/$name"
  if [ -f "$run/fusion/ufuser.safetensors" ]; then
    echo "$name: done, skipped"
  else
    echo "$name: $* ($steps steps)"
    env ${PREV:+INIT=$PREV} "$@" scripts/train_warmstart.sh "$DATA" "$run" "$steps"
  fi
  PREV="$run/fusion/ufuser_best.safetensors"
}
SIGNED="SIGNED=true GRAD_WEIGHT=10"
METRIC="$SIGNED GAIN=1.15 LR=1e-4 VAL_EVERY=150"
# phases 1-2: |Sobel| texture term, gradient weight 2
phase p1 3000 GRAD_WEIGHT=2 VAL_EVERY=250
phase p2 1200 LR=3e-4 GRAD_WEIGHT=2 VAL_EVERY=250
# phases 3-4: the signed texture term at weight 10
phase p3 1200 $SIGNED LR=3e-4 VAL_EVERY=150
phase p4 900 $SIGNED LR=1e-4 VAL_EVERY=150
# phases 5-6: texture target gain 1.1, then 1.15
phase p5 900 $SIGNED GAIN=1.1 LR=1e-4 VAL_EVERY=150
phase p6 900 $SIGNED GAIN=1.15 LR=1e-4 VAL_EVERY=150
# phases 7-9: VIF and Qabf as loss terms, VIF gain capped
phase p7 900 $METRIC VIF=4 VIF_CAP=1 QABF=8
phase p8 900 $METRIC VIF=4 VIF_CAP=1 QABF=8 SEED=1
phase p9 600 $METRIC VIF=4 VIF_CAP=1.1 QABF=8 SEED=5
# phases 10-14: cap 1.3, heavier Qabf, then both terms heavier
phase p10 600 $METRIC VIF=4 VIF_CAP=1.3 QABF=12 SEED=12
phase p11 600 $METRIC VIF=4 VIF_CAP=1.3 QABF=12 SEED=21
phase p12 600 $METRIC VIF=4 VIF_CAP=1.3 QABF=12 SEED=31
phase p13 600 $METRIC VIF=6 VIF_CAP=1.3 QABF=16 SEED=42
phase p14 600 $METRIC VIF=6 VIF_CAP=1.3 QABF=16 SEED=51
echo "best weights: $PREV"
