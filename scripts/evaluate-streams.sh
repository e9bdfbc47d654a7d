#!/usr/bin/env bash
# Scores the stream (event) detector on the SKAB development files (issue 21).
# Usage: scripts/evaluate-streams.sh [--check] [path/to/driftlock]
# Builds the release binary if none is given, runs `driftlock score-events` (a new stream's
# defaults) over every SKAB dev file, and prints F1, FAR and MAR pooled over all rows (and after
# the leaderboard's 400-row split), and the false alarms per 1,000 events on anomaly-free.csv,
# with SKAB's leaderboard figures beside them. With --check it exits non-zero when a figure is
# worse than its floor in eval/stream-floors.txt (`name value` per line; f1_* are lower
# bounds, far_*, mar_* and fa_per_1000_* upper bounds).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${SHARED_DIR:-$repo/../shared}"
data="$shared/data/skab-dev"
check=0
bin=""
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) bin="$a" ;;
  esac
done
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --quiet --bin driftlock)
  bin="${CARGO_TARGET_DIR:-$repo/target}/release/driftlock"
fi
results="$(mktemp -d "${TMPDIR:-/tmp}/stream-results.XXXXXX")"
trap 'rm -rf "$results"' EXIT
start=$(date +%s)
(cd "$data/events" && ls */*.ndjson) | while read -r f; do
  mkdir -p "$results/$(dirname "$f")"
  "$bin" score-events --input "$data/events/$f" --output "$results/$f" 2>/dev/null
done
echo "scored $(cd "$data/events" && ls */*.ndjson | wc -l) SKAB files in $(( $(date +%s) - start ))s with $bin"
python3 "$shared/tools/skab_score.py" --data "$data" --results "$results" --json > "$results/all.json"
python3 "$shared/tools/skab_score.py" --data "$data" --results "$results" --skip-first 400 --json > "$results/split.json"
python3 - "$results" "$repo/eval/stream-floors.txt" "$check" <<'PY'
import json, sys, os
res, floors_path, check = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def pick(path):
    j = json.load(open(path))
    # The scorer's JSON keeps the pooled figures at the top or under "pooled"/"total".
    for k in ("pooled", "total", "overall", "all"):
        if isinstance(j.get(k), dict):
            j = j[k]
            break
    get = lambda *names: next(float(j[n]) for n in names if n in j)
    return get("f1", "F1"), get("far_pct", "far", "FAR"), get("mar_pct", "mar", "MAR")
f1, far, mar = pick(os.path.join(res, "all.json"))
f1s, fars, mars = pick(os.path.join(res, "split.json"))
af = os.path.join(res, "anomaly-free", "anomaly-free.ndjson")
lines = [json.loads(l) for l in open(af) if l.strip()]
fa = 1000.0 * sum(1 for l in lines if l.get("anomaly")) / max(len(lines), 1)
figs = {
    "f1_all": f1, "far_all": far, "mar_all": mar,
    "f1_split400": f1s, "far_split400": fars, "mar_split400": mars,
    "fa_per_1000_anomaly_free": fa,
}
print()
print("| figure | driftlock streams | SKAB leaderboard (34 files, 400-row split) |")
print("| --- | --- | --- |")
ref = {"f1": "Conv-AE 0.78, MSET 0.78, T2+Q 0.76, T2 0.66, iForest 0.29",
       "far": "Conv-AE 13.55, MSET 39.73, T2+Q 26.62, T2 19.21",
       "mar": "Conv-AE 28.02, MSET 14.13, T2+Q 24.92, T2 42.60"}
for name, v in figs.items():
    kind = name.split("_")[0]
    unit = "" if kind == "f1" else (" %" if kind in ("far", "mar") else "")
    print(f"| {name} | {v:.3f}{unit} | {ref.get(kind, 'none published')} |")
if not check:
    sys.exit(0)
bad = []
for raw in open(floors_path):
    raw = raw.split("#")[0].strip()
    if not raw:
        continue
    name, value = raw.split()
    value = float(value)
    if name not in figs:
        bad.append(f"{name}: unknown figure")
        continue
    v = figs[name]
    worse = v < value if name.startswith("f1") else v > value
    if worse:
        bad.append(f"{name} = {v:.3f}, floor {value}")
if bad:
    print("stream floors not met:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("stream floors met")
PY
