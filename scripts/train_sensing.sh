#!/usr/bin/env bash
# Train pseudo-sensing nets A_i, A_v (stage 1) on every pseudo-ground-truth source we have.
#
# Usage: scripts/train_sensing.sh DATA_ROOT RUN_DIR [SECONDS]
#   DATA_ROOT holds {MSRS,RoadScene,LLVIP}/train (ir/, vi/) and results/<Peer>/<Dataset>_train/.
#   Writes RUN_DIR/gt/<Dataset>/<method>/ (classical pseudo ground truth) and RUN_DIR/sensing/.
#   Re-running the same command resumes. Environment: WIDTH (default 32), THREADS (default 1),
#   METHODS (built-in methods whose outputs are pseudo ground truth, default "gff lp tif average dwt";
#   "emma" is the shipped U-Fuser: A then learns to undo this project's own fusion), PEERS (result
#   folders under DATA_ROOT/results used as well, default "IFCNN SeAFusion"; "" for none).
set -euo pipefail
DATA=${1:?data root}; RUN=${2:?run dir}; SECONDS_BUDGET=${3:-4500}
METHODS=${METHODS-"gff lp tif average dwt"}
PEERS=${PEERS-"IFCNN SeAFusion"}
for ds in MSRS RoadScene LLVIP; do
  python3 -m emma_fusion pseudo-gt --ir "$DATA/$ds/train/ir" --vi "$DATA/$ds/train/vi" \
    --methods "$(echo $METHODS | tr ' ' ,)" --out "$RUN/gt/$ds" --no-progress
done
fused_list() {  # TOML list of every pseudo-GT folder of dataset $1
  local ds=$1 items=()
  for m in $METHODS; do items+=("\"$RUN/gt/$ds/$m\""); done
  for p in $PEERS; do [ -d "$DATA/results/$p/${ds}_train" ] && items+=("\"$DATA/results/$p/${ds}_train\""); done
  local IFS=,; echo "[${items[*]}]"
}
cat > "$RUN/sensing.toml" <<TOML
preset = "cpu"

[sensing]
out = "$RUN/sensing"
width = ${WIDTH:-32}
steps = 200000
max_seconds = $SECONDS_BUDGET
threads = ${THREADS:-1}
checkpoint_every = 500
progress = false
log_every = 20
data = { crop = 96, noise_std = 0.1, hflip = true, sets = [
  { root = "$DATA/MSRS/train", weight = 14.0, fused = $(fused_list MSRS) },
  { root = "$DATA/RoadScene/train", weight = 1.0, fused = $(fused_list RoadScene) },
  { root = "$DATA/LLVIP/train", weight = 4.0, fused = $(fused_list LLVIP) },
] }
TOML
RESUME=""
[ -d "$RUN/sensing/checkpoints" ] && RESUME="--resume"
python3 -m emma_fusion train sensing --config "$RUN/sensing.toml" $RESUME
