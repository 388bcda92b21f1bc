#!/usr/bin/env bash
# Step time on W1 with 20 ms of added one-way latency against none, on network-namespace hosts
# (cluster/tests/netns-lib.sh): a coordinator host and two worker hosts (1 compute thread each,
# the machine's 2 cores), CURVE on. Needs root and `ip netns`; removes what it creates.
#
# With tc netem (when the kernel has sch_netem) the delay is on every link. Without it, the
# workers connect through a relay on the switch (cluster/tests/delay_relay.py) that delays
# every chunk by 20 ms each way; the relay with no delay is then measured too, so that its
# own cost is not counted as latency.
# Each latency setting runs with the default prefetch (one task per thread sent ahead) and with
# --prefetch 0 (a thread asks for its next task only when it has finished one).
# Per-step times come from metrics.jsonl; the first step is left out; the configurations are
# interleaved over ROUNDS rounds to spread the machine's noise.
# Usage: sudo bench/latency.sh [steps] [order] [rounds]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${1:-8}; ORDER=${2:-second}; ROUNDS=${3:-2}
BIN=${MEDMAML_BIN:-$REPO/.build/release}
. "$REPO/cluster/tests/netns-lib.sh"
why=$(netns_available) || { echo "cannot run: $why" >&2; exit 1; }
(cd "$REPO" && swift build -c release >/dev/null 2>&1)

WORK=$(mktemp -d /tmp/medmaml-latency.XXXXXX)
PIDS=()
trap netns_cleanup EXIT INT TERM
"$BIN/medmaml-coordinator" keygen --out "$WORK/coordinator" >/dev/null
"$BIN/medmaml-coordinator" keygen --out "$WORK/worker" >/dev/null
netns_up

per_step() { python3 -c "import json,sys; s=[json.loads(l)['seconds'] for l in open(sys.argv[1])][1:]; print(f'{sum(s)/len(s):.4f}')" "$1"; }

relay() { # delay in seconds; sets TARGET
    ip -n mmsw addr add 10.77.0.254/24 dev br0 2>/dev/null || true
    ip netns exec mmsw python3 "$REPO/cluster/tests/delay_relay.py" 10.77.0.254:5555 10.77.0.1:5555 "$1" 0 \
        >"$WORK/relay.log" 2>&1 & RELAY=$!; PIDS+=($RELAY)
    for i in $(seq 100); do grep -q "relay ready" "$WORK/relay.log" && break; sleep 0.1; done
    TARGET=10.77.0.254:5555
}

netem() { # delay or "none"
    for ns in mmc mmw1 mmw2; do
        ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
        ip netns exec mmsw tc qdisc del dev "v$ns" root 2>/dev/null || true
        [ "$1" = none ] || netns_netem "$ns" "$1" 0%
    done
    TARGET=10.77.0.1:5555
}

run() { # name, prefetch; workers connect to $TARGET
    ip netns exec mmc "$BIN/medmaml-coordinator" train --outer-steps "$STEPS" --order "$ORDER" --meta-batch 8 --seed 3 --prefetch "$2" \
        --checkpoint-every 0 --bind tcp://10.77.0.1:5555 --min-workers 2 \
        --secret-key "$WORK/coordinator.key" --authorized-keys "$WORK/worker.pub" \
        --checkpoint-dir "$WORK/$1" --metrics "$WORK/$1.jsonl" >"$WORK/$1.out" 2>"$WORK/$1.log" & local coordinator=$!
    local workers=()
    for w in mmw1 mmw2; do
        ip netns exec "$w" "$BIN/medmaml-worker" --connect "tcp://$TARGET" --name "$w" --threads 1 --idle-timeout 30 \
            --secret-key "$WORK/worker.key" --coordinator-key "$WORK/coordinator.pub" 2>"$WORK/$1-$w.log" & workers+=($!)
    done
    wait "$coordinator"
    for p in "${workers[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    per_step "$WORK/$1.jsonl"
}

if netns_netem mmc 20ms 0% 2>/dev/null; then
    MODE=netem
    configurations="none 20ms none-p0 20ms-p0"
else
    MODE=relay
    configurations="direct relay-0ms relay-20ms relay-0ms-p0 relay-20ms-p0"
fi
echo "# W1, meta-batch 8, order $ORDER, 2 workers x 1 thread on namespace hosts, CURVE; latency by $MODE"
declare -A total
for round in $(seq "$ROUNDS"); do
    for c in $configurations; do
        case $c in
            none|none-p0|direct) netem none ;;
            20ms|20ms-p0) netem 20ms ;;
            relay-0ms|relay-0ms-p0) relay 0 ;;
            relay-20ms|relay-20ms-p0) relay 0.02 ;;
        esac
        prefetch=1; [ "${c%-p0}" != "$c" ] && prefetch=0
        s=$(run "$c-$round" $prefetch)
        [ "$MODE" = relay ] && [ "$c" != direct ] && { kill "$RELAY" 2>/dev/null || true; wait "$RELAY" 2>/dev/null || true; }
        echo "round $round $c seconds_per_step $s" >&2
        total[$c]=$(awk -v a="${total[$c]:-0}" -v b="$s" 'BEGIN { print a + b }')
    done
done
for c in $configurations; do
    total[$c]=$(awk -v a="${total[$c]}" -v r="$ROUNDS" 'BEGIN { printf "%.4f", a / r }')
    echo "${c}_seconds_per_step ${total[$c]}"
done
for p in "" -p0; do
    if [ "$MODE" = netem ]; then base=${total[none$p]}; slow=${total[20ms$p]}; else base=${total[relay-0ms$p]}; slow=${total[relay-20ms$p]}; fi
    name=prefetch_1; [ -n "$p" ] && name=prefetch_0
    awk -v a="$base" -v b="$slow" -v n="$name" 'BEGIN {
        printf "%s_latency_20ms_cost_seconds_per_step %.4f\n", n, b - a
        printf "%s_latency_20ms_cost_percent %+.2f%%\n", n, (b / a - 1) * 100
        printf "%s_latency_20ms_cost_in_round_trips_of_40ms %.1f\n", n, (b - a) / 0.04 }'
done
