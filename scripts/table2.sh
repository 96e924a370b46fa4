#!/usr/bin/env bash
# The paper's Table 2 at CPU compute: configs/table2.toml once per loss, in turn (issue 24).
# Usage: scripts/table2.sh [LOSS ...]   (default: full I II III IV content; from the repository root)
# A finished run (ufuser.safetensors present) is skipped; an interrupted one resumes.
set -euo pipefail
losses=("$@")
(( $# )) || losses=(full I II III IV content)
for loss in "${losses[@]}"; do
  out="runs/table2/$loss"
  if [[ -f "$out/ufuser.safetensors" ]]; then echo "$loss: done ($out)"; continue; fi
  resume=()
  [[ -f "$out/checkpoints/latest.json" ]] && resume=(--resume)
  echo "$loss: $(date -u +%H:%M:%S) -> $out"
  emma train fusion --config configs/table2.toml --ablation "$loss" --out "$out" "${resume[@]}"
done
