#!/usr/bin/env bash
# Seconds per W1 second-order step (meta-batch 8, 2 local workers x 1 thread), with and without --verify 0.05.
BIN=${1:-$(dirname "$0")/../.build/release}; STEPS=${2:-16}
for round in 1 2; do
  for v in 0 0.05; do
    d=$(mktemp -d)
    "$BIN/medmaml-coordinator" train --outer-steps $STEPS --meta-batch 8 --local-workers 2 --threads 1 --verify $v --checkpoint-every 0 \
        --checkpoint-dir $d --metrics $d/m.jsonl --log-level warning >/dev/null 2>$d/err
    python3 - "$d/m.jsonl" "$v" "$round" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print(f"round {sys.argv[3]} verify {sys.argv[2]}: {sum(r['seconds'] for r in rows)/len(rows):.3f} s/step over {len(rows)} steps")
PY
    grep -c "verified\|arbitrat" $d/err >/dev/null; rm -rf $d
  done
done
