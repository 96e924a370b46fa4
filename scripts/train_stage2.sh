#!/usr/bin/env bash
# EMMA stage 2 (Eq. 6) fine-tuned from a warm-start U-Fuser, with frozen sensing nets; scored on validation.
#
# Usage: scripts/train_stage2.sh DATA_ROOT RUN_DIR NAME INIT_WEIGHTS SENSING_DIR [LR] [CONTENT_WEIGHT] [STEPS]
#   RUN_DIR/val must hold the validation pairs (scripts/train_warmstart.sh makes it).
#   CONTENT_WEIGHT > 0 keeps the warm start's content loss as an anchor term beside Eq. 6.
#   Writes RUN_DIR/NAME/ (log.jsonl with validation every 100 steps, ufuser_best.safetensors).
#   Re-running the same command resumes. Environment: THREADS (default 1), GRAD_WEIGHT (the content
#   anchor's gradient weight, default 2 as in the warmstart preset), SIGNED (true: the anchor's signed
#   texture term), GAIN (the anchor's content_grad_gain, default 1), VIF, QABF, VIF_CAP (the anchor's
#   metric terms: content_vif_weight, content_qabf_weight, content_vif_max_gain; default 0),
#   ABLATION (default full; equivariant: Eq. 6's equivariant term alone, beside the anchor), A2 (its weight a2, default 0.1).
#   SENSING_DIR may be a packaged pair's name (emma-sensing).
set -euo pipefail
DATA=${1:?data root}; RUN=${2:?run dir}; NAME=${3:?run name}; INIT=${4:?init weights}; SENSE=${5:?sensing run}
LR=${6:-2e-5}; CW=${7:-0}; STEPS=${8:-600}
cat > "$RUN/$NAME.toml" <<TOML
preset = "cpu"

[fusion]
out = "$RUN/$NAME"
init_weights = "$INIT"
sensing = "$SENSE"
skip_gate = true
ablation = "${ABLATION:-full}"
a2 = ${A2:-0.1}
content_weight = $CW
content_grad_weight = ${GRAD_WEIGHT:-2}
content_signed = ${SIGNED:-false}
content_grad_gain = ${GAIN:-1.0}
content_vif_weight = ${VIF:-0}
content_qabf_weight = ${QABF:-0}
content_vif_max_gain = ${VIF_CAP:-0}
steps = $STEPS
threads = ${THREADS:-1}
checkpoint_every = 100
progress = false
log_every = 10
optim = { lr = $LR, lr_step_epochs = 0.0 }
monitor = { every = 100, stop = false, val_dir = "$RUN/val", val_pairs = 6, val_every = 100, val_metrics = ["EN", "SD", "SF", "AG", "SCD", "VIF", "Qabf", "TCR"], select = "VIF+Qabf+TCR" }
data = { crop = 96, hflip = true, sets = [
  { root = "$DATA/MSRS/train", weight = 14.0 },
  { root = "$DATA/RoadScene/train", weight = 1.0 },
  { root = "$DATA/LLVIP/train", weight = 4.0 },
] }
TOML
RESUME=""
[ -d "$RUN/$NAME/checkpoints" ] && RESUME="--resume"
python3 -m emma_fusion train fusion --config "$RUN/$NAME.toml" $RESUME
