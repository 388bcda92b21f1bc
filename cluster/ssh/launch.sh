#!/usr/bin/env bash
# Starts a MedMAML coordinator on this machine and workers on a list of hosts over SSH, with
# CURVE keys copied to the hosts, and stops everything on Ctrl-C (or when the run ends).
#
#   cluster/ssh/launch.sh --hosts "gpu1 gpu2 gpu3" --threads 8 -- --outer-steps 2000 --meta-batch 32
#
# Options (before --; everything after -- goes to `medmaml-coordinator train`):
#   --hosts "H1 H2 ..."   hosts that run workers (one worker each; repeat a host for more)
#   --threads N           compute threads per worker (default 1)
#   --address A           this machine's address as the hosts see it (default: first of hostname -I)
#   --port P              coordinator port (default 5555)
#   --remote-bin DIR      folder with medmaml-worker on the hosts (default: this machine's build folder)
#   --keys DIR            key folder here (default ~/.medmaml/keys; made with keygen if missing)
#   --command C           train or pretrain (default train)
#   --metrics-port P      serve Prometheus metrics: the coordinator on P, worker i on P+i; the
#                         targets go to medmaml-targets.json here (Prometheus file_sd, see
#                         cluster/monitoring/prometheus.yml)
# Environment: SSH and SCP to override the ssh and scp commands (for options or identities).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MEDMAML_BIN:-$REPO/.build/release}
SSH=${SSH:-ssh -o BatchMode=yes}
SCP=${SCP:-scp -q -o BatchMode=yes}
HOSTS="" THREADS=1 ADDRESS="" PORT=5555 REMOTE_BIN="" KEYS="$HOME/.medmaml/keys" COMMAND=train METRICS_PORT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) HOSTS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --address) ADDRESS=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --remote-bin) REMOTE_BIN=$2; shift 2 ;;
        --keys) KEYS=$2; shift 2 ;;
        --command) COMMAND=$2; shift 2 ;;
        --metrics-port) METRICS_PORT=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ -n "$HOSTS" ] || { echo "--hosts is required" >&2; exit 2; }
ADDRESS=${ADDRESS:-$(hostname -I | awk '{print $1}')}
REMOTE_BIN=${REMOTE_BIN:-$BIN}
RUN_ID=$$-$(date +%s)

if [ ! -f "$KEYS/coordinator.key" ]; then
    mkdir -p "$KEYS/authorized"; chmod 700 "$KEYS"
    "$BIN/medmaml-coordinator" keygen --out "$KEYS/coordinator" >/dev/null
    "$BIN/medmaml-coordinator" keygen --out "$KEYS/worker" >/dev/null
    cp "$KEYS/worker.pub" "$KEYS/authorized/worker.pub"
fi

STARTED=()
COORDINATOR=""
stop() {
    trap - INT TERM EXIT
    [ -n "$COORDINATOR" ] && kill -INT "$COORDINATOR" 2>/dev/null && wait "$COORDINATOR" 2>/dev/null || true
    for entry in "${STARTED[@]}"; do
        h=${entry%%#*} i=${entry#*#}
        $SSH "$h" "pid=\$(cat /tmp/medmaml-worker-$RUN_ID-$i.pid 2>/dev/null) && kill \$pid 2>/dev/null; rm -rf /tmp/medmaml-worker-$RUN_ID-$i.pid /tmp/medmaml-keys-$RUN_ID" || true
    done
    echo "stopped the coordinator and ${#STARTED[@]} worker(s)" >&2
}
trap 'stop; exit 130' INT TERM
trap 'stop' EXIT

# The coordinator first (it waits for the workers), then one worker per host entry.
METRICS=()
if [ -n "$METRICS_PORT" ]; then
    METRICS=(--metrics-address "0.0.0.0:$METRICS_PORT")
    {
        printf '[{"targets": ["%s:%s"], "labels": {"role": "coordinator"}}' "$ADDRESS" "$METRICS_PORT"
        i=0
        for h in $HOSTS; do i=$((i + 1)); printf ',\n {"targets": ["%s:%s"], "labels": {"role": "worker"}}' "${h#*@}" "$((METRICS_PORT + i))"; done
        printf ']\n'
    } > medmaml-targets.json
fi
"$BIN/medmaml-coordinator" "$COMMAND" --bind "tcp://*:$PORT" --secret-key "$KEYS/coordinator.key" \
    --authorized-keys "$KEYS/authorized" --min-workers "$(wc -w <<< "$HOSTS")" "${METRICS[@]}" "$@" &
COORDINATOR=$!
i=0
for h in $HOSTS; do
    i=$((i + 1))
    $SSH "$h" "mkdir -p -m 700 /tmp/medmaml-keys-$RUN_ID"
    $SCP "$KEYS/worker.key" "$KEYS/coordinator.pub" "$h:/tmp/medmaml-keys-$RUN_ID/"
    $SSH "$h" "chmod 600 /tmp/medmaml-keys-$RUN_ID/worker.key; cd /tmp; nohup sh -c 'echo \$\$ > /tmp/medmaml-worker-$RUN_ID-$i.pid; \
        exec env OPENBLAS_NUM_THREADS=1 $REMOTE_BIN/medmaml-worker --connect tcp://$ADDRESS:$PORT --threads $THREADS \
        --name $h-$i --secret-key /tmp/medmaml-keys-$RUN_ID/worker.key \
        --coordinator-key /tmp/medmaml-keys-$RUN_ID/coordinator.pub --idle-timeout 300 \
        ${METRICS_PORT:+--metrics-address 0.0.0.0:$((METRICS_PORT + i))}' \
        >/tmp/medmaml-worker-$RUN_ID-$i.log 2>&1 </dev/null &"
    STARTED+=("$h#$i")
done
wait "$COORDINATOR"
status=$?
COORDINATOR=""
exit $status
