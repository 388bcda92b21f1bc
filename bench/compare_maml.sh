#!/usr/bin/env bash
# W1 meta-gradient throughput (W2 with SIZE=128), MedMAML and PyTorch in one run, with the ratio.
# PyTorch runs in its best configuration on this machine: 1 process x 2 threads and
# 2 processes x 1 thread are both measured and the better is used.
# Usage: bench/compare_maml.sh [second|first] [tasks] [python-with-torch]
# VARIANT="--convolution primitives" (any MedMAML numerics flags) also times MedMAML with those
# flags in the same run, against the same PyTorch measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
ORDER=${1:-second}; TASKS=${2:-16}; PY=${3:-python3}; SIZE=${SIZE:-64}
swift build -c release --product medmaml-coordinator >/dev/null 2>&1
ours=$(.build/release/medmaml-coordinator bench maml --order "$ORDER" --threads 2 --tasks "$TASKS" --image-size "$SIZE" | awk '/^tasks_per_second/ {print $2}')
variant=""
if [ -n "${VARIANT:-}" ]; then
    # shellcheck disable=SC2086
    variant=$(.build/release/medmaml-coordinator bench maml --order "$ORDER" --threads 2 --tasks "$TASKS" --image-size "$SIZE" $VARIANT | awk '/^tasks_per_second/ {print $2}')
fi
one=$("$PY" bench/pytorch_w1.py maml --order "$ORDER" --threads 2 --tasks "$TASKS" --image-size "$SIZE" | awk '{print $2}')
half=$((TASKS / 2))
a=$(mktemp); b=$(mktemp)
"$PY" bench/pytorch_w1.py maml --order "$ORDER" --threads 1 --tasks "$half" --seed 1 --image-size "$SIZE" >"$a" &
"$PY" bench/pytorch_w1.py maml --order "$ORDER" --threads 1 --tasks "$half" --seed 2 --image-size "$SIZE" >"$b" &
wait
two=$(awk '{s += $2} END {print s}' "$a" "$b"); rm -f "$a" "$b"
best=$(awk -v x="$one" -v y="$two" 'BEGIN {print (x > y ? x : y)}')
echo "order $ORDER tasks $TASKS image_size $SIZE"
echo "medmaml_1proc_2threads $ours"
echo "pytorch_1proc_2threads $one"
echo "pytorch_2procs_1thread $two"
awk -v a="$ours" -v b="$best" 'BEGIN {printf "ratio_medmaml_over_pytorch_best %.3f\n", a/b}'
if [ -n "$variant" ]; then
    echo "medmaml_variant $variant ($VARIANT)"
    awk -v a="$variant" -v b="$best" 'BEGIN {printf "ratio_variant_over_pytorch_best %.3f\n", a/b}'
fi
