#!/usr/bin/env bash
# Evaluates the metric detector (the defaults of a new monitor, via `driftlock score`) on every
# development set in ../shared/data and prints one table with published figures beside ours
# (issue 20). With --check, also compares each figure with its floor in eval/floors.txt and
# exits 1 if any is below (a regression guard for CI, not a timed test).
# Usage: scripts/evaluate.sh [--check] [--bin path/to/driftlock] [--keep DIR]
# (floors: `name value` = at least, `name value max` = at most; --keep leaves the scored CSVs)
# Runs scripts/evaluate-streams.sh too when it exists (passing --check through).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${SHARED_DIR:-$repo/../shared}"
tools="$shared/tools"
check=0 bin="" keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --bin) bin="$2"; shift ;;
    --keep) keep="$2"; shift ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "evaluate.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --quiet --bin driftlock)
  bin="${CARGO_TARGET_DIR:-$repo/target}/release/driftlock"
fi
if [ -n "$keep" ]; then
  out="$keep"; mkdir -p "$out"
else
  out="$(mktemp -d "${TMPDIR:-/tmp}/evaluate.XXXXXX")"
  trap 'rm -rf "$out"' EXIT
fi
start=$(date +%s)

# Score every CSV of a set (two at a time: the scorer is single-threaded).
score_set() { # data_dir results_dir file...
  local data="$1" res="$2"; shift 2
  printf '%s\n' "$@" | xargs -P 2 -I{} sh -c \
    'mkdir -p "$(dirname "$3/$1")" && "$4" score --input "$2/$1" --output "$3/$1" 2>>"$3.log"' \
    _ {} "$data" "$res" "$bin"
}
nab="$shared/data/nab-dev" ucr="$shared/data/ucr-dev" wsd="$shared/data/wsd-dev"
# shellcheck disable=SC2046
score_set "$nab" "$out/nab" $(cd "$nab" && ls */*.csv)
# shellcheck disable=SC2046
score_set "$ucr" "$out/ucr" $(cd "$ucr" && ls data/*.csv)
# shellcheck disable=SC2046
score_set "$wsd" "$out/wsd" $(cd "$wsd" && ls data/*.csv)

python3 "$tools/nab_score.py" --data "$nab" --windows "$nab/windows.json" \
  --results "$out/nab" --json >"$out/nab.json" &
python3 "$tools/ucr_score.py" --data "$ucr" --results "$out/ucr" --json >"$out/ucr.json" &
python3 "$tools/vus_score.py" --data "$wsd" --results "$out/wsd" --json >"$out/wsd.json"
wait

floors="$repo/eval/floors.txt"
python3 - "$out" "$floors" "$check" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
out, floors_path, check, secs = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
nab = json.load(open(f"{out}/nab.json"))
ucr = json.load(open(f"{out}/ucr.json"))
wsd = json.load(open(f"{out}/wsd.json"))
p = nab["profiles"]
# name, figure, label, published references (from issue 20 and the shared READMEs)
rows = [
    ("nab_standard_optimized", p["standard"]["optimized"], "NAB dev (42 files), standard, optimized",
     "ARTime 71.9, HTM 69.9 (these 42 files)"),
    ("nab_standard_shipped", p["standard"]["as_shipped"], "NAB dev, standard, as shipped", "-"),
    ("nab_low_fp_optimized", p["reward_low_FP_rate"]["optimized"], "NAB dev, low FP, optimized", "-"),
    ("nab_low_fn_optimized", p["reward_low_FN_rate"]["optimized"], "NAB dev, low FN, optimized", "-"),
    ("nab_false_positive_rows", nab["false_positive_rows_as_shipped"],
     "NAB dev, false-positive rows as shipped (lower is better)", "-"),
    ("nab_windows_detected", nab["windows_detected_as_shipped"],
     f"NAB dev, windows detected as shipped (of {nab['windows']})", "-"),
    ("ucr_accuracy", ucr["accuracy"], f"UCR dev ({ucr['series']} series), accuracy +-100",
     "rolling z-score (W = 100): 0.342 on these series; TriAD, MDI ~0.5 (all 250)"),
    ("wsd_vus_pr", wsd["vus_pr"], f"WSD dev ({wsd['files']} KPIs), VUS-PR",
     "rolling z-score: 0.088 on these KPIs; TSB-AD WSD: MOMENT 0.51, POLY 0.41, IForest 0.17"),
    ("wsd_auc_pr", wsd["auc_pr"], "WSD dev, AUC-PR", "rolling z-score: 0.172 on these KPIs"),
]
fmt = lambda v: f"{v:.3f}" if isinstance(v, float) and v < 1.5 else f"{v:g}"
print(f"| benchmark | driftlock | published / reference |")
print(f"| --- | --- | --- |")
for name, v, label, ref in rows:
    print(f"| {label} | {fmt(v)} | {ref} |")
print(f"(scored in {secs}s; the hidden-set goals of issue 20: NAB all 58 >= 75 / 72, UCR >= 0.5, "
      f"TSB-AD WSD VUS-PR >= 0.42)")
if check:
    floors, ceilings = {}, {}
    for line in open(floors_path):
        line = line.split("#")[0].split()
        if len(line) == 2:
            floors[line[0]] = float(line[1])
        elif len(line) == 3 and line[2] == "max":
            ceilings[line[0]] = float(line[1])
    figures = {name: v for name, v, _, _ in rows}
    bad = []
    for name, floor in floors.items():
        if name not in figures:
            bad.append(f"{name}: no such figure")
        elif figures[name] < floor:
            bad.append(f"{name}: {fmt(figures[name])} is below its floor {floor:g}")
    for name, cap in ceilings.items():
        if name not in figures:
            bad.append(f"{name}: no such figure")
        elif figures[name] > cap:
            bad.append(f"{name}: {fmt(figures[name])} is above its ceiling {cap:g}")
    for b in bad:
        print("FLOOR CHECK FAILED:", b)
    if bad:
        sys.exit(1)
    print(f"floor check: all {len(floors) + len(ceilings)} figures within eval/floors.txt")
PY
streams="$repo/scripts/evaluate-streams.sh"
if [ -x "$streams" ]; then
  # The same binary scores the streams (no second build).
  if [ "$check" = 1 ]; then "$streams" --check "$bin"; else "$streams" "$bin"; fi
fi
