#!/usr/bin/env bash
# What bf16 precision does to learning: one study candidate trained, tuned on meta-validation
# and met on the meta-test tasks once, three times over the same instances:
#   float32 at the budget;
#   bf16 at the same budget (its own measured step cost: more steps where bf16 is faster,
#   fewer where it is slower);
#   bf16 at float32's step count (float32's step costs read with --costs-from): bfloat16's
#   rounding alone.
# Prints each run's meta-test Dice and the paired differences bf16 - float32 (95% CI over the
# same instances, as the study's tables compute them).
# Usage: bench/precision_study.sh [budget-core-seconds] [out-folder] [candidate] [study flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET=${1:-300}; OUT=${2:-precision-study}; CANDIDATE=${3:-maml++-second}
shift $(( $# < 3 ? $# : 3 ))
swift build -c release >/dev/null 2>&1
B=.build/release/medmaml-coordinator
mkdir -p "$OUT"
common=(study --candidates "$CANDIDATE" --budget "$BUDGET" --shots-curve 5 --in-process --threads 2 --log-level warning "$@")
echo "float32..." >&2
$B "${common[@]}" --out "$OUT/float32" >"$OUT/float32.log" 2>&1
echo "bf16 at the same budget..." >&2
$B "${common[@]}" --precision bf16 --out "$OUT/bf16" >"$OUT/bf16.log" 2>&1
echo "bf16 at float32's step count..." >&2
$B "${common[@]}" --precision bf16 --costs-from "$OUT/float32/state.json" --out "$OUT/bf16-steps" >"$OUT/bf16-steps.log" 2>&1
python3 - "$OUT" <<'PY'
import json, math, sys
out = sys.argv[1]
def t975(df):
    table = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
             2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
    return table[df - 1] if df <= len(table) else 1.959964 + 2.37 / df
def ci(v):
    m = sum(v) / len(v); s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)); h = t975(len(v) - 1) * s / math.sqrt(len(v))
    return m, m - h, m + h
def load(name):
    state = json.load(open(f"{out}/{name}/state.json"))
    (result,) = state["test"].values()  # the one candidate's family
    steps = max(max(t["steps"]) for t in state["trained"].values())
    return result["instanceDice"], steps, state["stepCost"]
runs = {n: load(n) for n in ["float32", "bf16", "bf16-steps"]}
for n, (dice, steps, cost) in runs.items():
    m, lo, hi = ci(dice)
    print(f"{n:11s} steps {steps:5d}  step cost {', '.join(f'{v:.3f}' for v in cost.values())} s  meta-test Dice {m:.3f} [{lo:.3f}, {hi:.3f}] (n={len(dice)})")
base = runs["float32"][0]
for n in ["bf16", "bf16-steps"]:
    d = [a - b for a, b in zip(runs[n][0], base)]
    m, lo, hi = ci(d)
    verdict = "above zero" if lo > 0 else ("below zero" if hi < 0 else "includes zero")
    print(f"{n} - float32: {m:+.3f} [{lo:+.3f}, {hi:+.3f}]  {verdict}")
PY
