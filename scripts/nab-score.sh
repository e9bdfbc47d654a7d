#!/usr/bin/env bash
# Scores the metric detector on the 42 labelled NAB files (issue 3).
# Usage: scripts/nab-score.sh [path/to/driftlock]   (run from anywhere; default builds release)
# Prints NAB's standard, reward_low_FP_rate and reward_low_FN_rate figures, each optimized
# (best shared threshold on anomaly_score) and as shipped (the is_anomaly column).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${SHARED_DIR:-$repo/../shared}"
data="$shared/data/nab-dev"
bin="${1:-}"
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --quiet)
  bin="${CARGO_TARGET_DIR:-$repo/target}/release/driftlock"
fi
results="$(mktemp -d "${TMPDIR:-/tmp}/nab-results.XXXXXX")"
trap 'rm -rf "$results"' EXIT
start=$(date +%s)
(cd "$data" && ls */*.csv) | while read -r f; do
  mkdir -p "$results/$(dirname "$f")"
  "$bin" score --input "$data/$f" --output "$results/$f"
done
echo "scored $(cd "$data" && ls */*.csv | wc -l) files in $(( $(date +%s) - start ))s with $bin"
python3 "$shared/tools/nab_score.py" --data "$data" --windows "$data/windows.json" --results "$results"
