#!/usr/bin/env bash
# Multi-host tests with real network faults, in network namespaces this script creates and
# removes (also on failure): a coordinator and two workers on their own hosts, CURVE on.
#   1. 20 ms added latency and 2% loss on every link: the run ends with the in-process hash.
#   2. A partition: one worker's link down for longer than the heartbeat expiry, then back:
#      its tasks are reassigned, it rejoins, and the hash is unchanged. The coordinator
#      heartbeats every 0.25 s (--heartbeat; its workers adopt it), so the expiry is 1.25 s
#      and a reconnecting worker waits at most 5 s: a run of 30 steps outlasts it all (the worker
#      rejoins by step 10-11 on an idle machine).
# Exit 0: passed; 77: skipped (reason on stderr); anything else: failed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MEDMAML_BIN:-$REPO/.build/release}
. "$REPO/cluster/tests/netns-lib.sh"
why=$(netns_available) || { echo "SKIP: $why" >&2; exit 77; }
command -v tc >/dev/null || { echo "SKIP: tc (iproute2) is not installed" >&2; exit 77; }

WORK=$(mktemp -d /tmp/medmaml-netns.XXXXXX)
PIDS=()
SHOW_LOGS=1
trap netns_cleanup EXIT INT TERM
"$BIN/medmaml-coordinator" keygen --out "$WORK/coordinator" >/dev/null
"$BIN/medmaml-coordinator" keygen --out "$WORK/worker" >/dev/null

FLAGS="--image-size 32 --base-channels 8 --meta-batch 4 --seed 31 --checkpoint-every 0"
reference() {
    "$BIN/medmaml-coordinator" train $FLAGS --outer-steps "$1" --in-process --threads 2 --checkpoint-dir "$WORK/ref-$1" 2>/dev/null \
        | awk '/^final_params_sha256/ {print $2}'
}

# Starts the coordinator and two workers; $1 = steps, $2 = name, $3 = more coordinator
# options; workers connect to $TARGET.
TARGET=10.77.0.1:5555
start_run() {
    ip netns exec mmc "$BIN/medmaml-coordinator" train $FLAGS ${3:-} --outer-steps "$1" --bind tcp://10.77.0.1:5555 --min-workers 2 \
        --secret-key "$WORK/coordinator.key" --authorized-keys "$WORK/worker.pub" --checkpoint-dir "$WORK/$2" \
        >"$WORK/$2.out" 2>"$WORK/$2.log" & PIDS+=($!); COORD=$!
    for w in mmw1 mmw2; do
        ip netns exec "$w" "$BIN/medmaml-worker" --connect "tcp://$TARGET" --name "$w" --idle-timeout 60 \
            --secret-key "$WORK/worker.key" --coordinator-key "$WORK/coordinator.pub" 2>"$WORK/$2-$w.log" & PIDS+=($!)
    done
}

finish() { # $1 name, $2 expected hash
    local deadline=$((SECONDS + 300))
    while kill -0 "$COORD" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "$1: coordinator still running after 300 s" >&2; return 1; }
        sleep 0.5
    done
    wait "$COORD" || { echo "$1: coordinator failed" >&2; return 1; }
    local got; got=$(awk '/^final_params_sha256/ {print $2}' "$WORK/$1.out")
    [ "$got" = "$2" ] || { echo "$1: final_params_sha256 $got, expected $2" >&2; return 1; }
    echo "$1: same final_params_sha256 as in process ($got)" >&2
}

netns_up

echo "test 1: 20 ms latency and 2% loss on every link" >&2
if netns_netem mmc 20ms 2% 2>/dev/null; then
    for ns in mmw1 mmw2; do netns_netem "$ns" 20ms 2%; done
    echo "  with tc netem" >&2
else
    # This kernel has no sch_netem: a relay on the switch adds the latency and loss-like stalls.
    echo "  tc netem is not available in this kernel; using the delaying relay (20 ms each way, 2% of segments stalled 200 ms)" >&2
    ip -n mmsw addr add 10.77.0.254/24 dev br0
    ip netns exec mmsw python3 "$REPO/cluster/tests/delay_relay.py" 10.77.0.254:5555 10.77.0.1:5555 0.02 0.02 0.2 \
        >"$WORK/relay.log" 2>&1 & PIDS+=($!)
    for i in $(seq 100); do grep -q "relay ready" "$WORK/relay.log" && break; sleep 0.1; done
    TARGET=10.77.0.254:5555
fi
start_run 15 lossy
finish lossy "$(reference 15)"
TARGET=10.77.0.1:5555
for ns in mmc mmw1 mmw2; do
    ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
    ip netns exec mmsw tc qdisc del dev "v$ns" root 2>/dev/null || true
done

echo "test 2: partition of one worker longer than the heartbeat expiry" >&2
start_run 30 partition "--heartbeat 0.25"
for i in $(seq 600); do grep -q "step 5/30" "$WORK/partition.log" && break; sleep 0.05; done
grep -q "step 5/30" "$WORK/partition.log" || { echo "the run did not start" >&2; exit 1; }
ip -n mmsw link set vmmw2 down
for i in $(seq 400); do grep "worker silent" "$WORK/partition.log" | grep -q "worker=mmw2 " && break; sleep 0.05; done
grep "worker silent" "$WORK/partition.log" | grep -q "worker=mmw2 " || { echo "the partition was not noticed" >&2; exit 1; }
sleep 1
ip -n mmsw link set vmmw2 up
rejoined=no
for i in $(seq 1200); do
    if sed -n '/worker=mmw2 .*worker silent/,$p' "$WORK/partition.log" | grep "worker ready" | grep -q "worker=mmw2 "; then rejoined=yes; break; fi
    kill -0 "$COORD" 2>/dev/null || break
    sleep 0.05
done
[ $rejoined = yes ] || { echo "partition: mmw2 did not rejoin" >&2; exit 1; }
echo "partition: mmw2 declared dead, its tasks reassigned, and it rejoined by $(grep -o 'step [0-9]*/30' "$WORK/partition.log" | tail -1)" >&2
finish partition "$(reference 30)"
echo "netns tests passed" >&2
