#!/usr/bin/env bash
# Tests cluster/ssh/launch.sh against real sshd daemons on network-namespace hosts: the
# launcher runs on the coordinator's host and starts workers on two others over SSH.
#   1. A run ends with the in-process final_params_sha256.
#   2. Ctrl-C (SIGINT) stops the coordinator (which checkpoints) and every remote worker.
# Exit 0: passed; 77: skipped (reason on stderr); anything else: failed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MEDMAML_BIN:-$REPO/.build/release}
. "$REPO/cluster/tests/netns-lib.sh"
why=$(netns_available) || { echo "SKIP: $why" >&2; exit 77; }
for c in sshd ssh scp ssh-keygen; do command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || { echo "SKIP: $c is not installed (apt-get install openssh-server)" >&2; exit 77; }; done

WORK=$(mktemp -d /tmp/medmaml-ssh.XXXXXX)
PIDS=()
cleanup() {
    status=$?
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    pkill -9 -f "medmaml-worker.*tcp://10.77.0.1" 2>/dev/null || true
    if [ $status -ne 0 ]; then for f in "$WORK"/*.log /tmp/medmaml-worker-*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done; fi
    rm -f /tmp/medmaml-worker-*.log
    netns_down
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT INT TERM

netns_up
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N "" -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N "" -f "$WORK/client_key"
cp "$WORK/client_key.pub" "$WORK/authorized_keys"
for entry in mmw1:10.77.0.2 mmw2:10.77.0.3; do
    ns=${entry%%:*} addr=${entry#*:}
    cat > "$WORK/sshd-$ns.conf" <<CONF
Port 22
ListenAddress $addr
HostKey $WORK/host_key
PidFile $WORK/sshd-$ns.pid
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
    ip netns exec "$ns" "$(command -v sshd || echo /usr/sbin/sshd)" -D -f "$WORK/sshd-$ns.conf" -E "$WORK/sshd-$ns.log" & PIDS+=($!)
done
export SSH="ssh -i $WORK/client_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
export SCP="scp -q -i $WORK/client_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
for i in $(seq 50); do ip netns exec mmc $SSH root@10.77.0.2 true 2>/dev/null && break; sleep 0.2; done

FLAGS="--image-size 32 --base-channels 4 --meta-batch 4 --seed 41 --checkpoint-every 0"
expected=$("$BIN/medmaml-coordinator" train $FLAGS --outer-steps 12 --in-process --threads 2 --checkpoint-dir "$WORK/ref" 2>/dev/null \
    | awk '/^final_params_sha256/ {print $2}')

echo "test 1: a run through the SSH launcher" >&2
ip netns exec mmc "$REPO/cluster/ssh/launch.sh" --hosts "root@10.77.0.2 root@10.77.0.3" --address 10.77.0.1 --keys "$WORK/keys" \
    -- $FLAGS --outer-steps 12 --checkpoint-dir "$WORK/run1" >"$WORK/run1.out" 2>"$WORK/run1.log"
got=$(awk '/^final_params_sha256/ {print $2}' "$WORK/run1.out")
[ -n "$expected" ] && [ "$got" = "$expected" ] || { echo "final_params_sha256 $got, expected $expected" >&2; exit 1; }
grep "worker ready" "$WORK/run1.log" | grep -q "worker=root@10.77.0.2-1 " && grep "worker ready" "$WORK/run1.log" | grep -q "worker=root@10.77.0.3-2 "
echo "  same final_params_sha256 as in process, with workers on both hosts" >&2

echo "test 2: Ctrl-C stops everything" >&2
# Job control on, as in a terminal: a non-interactive shell starts background jobs with SIGINT
# ignored, and a signal ignored on entry cannot be trapped.
set -m
ip netns exec mmc "$REPO/cluster/ssh/launch.sh" --hosts "root@10.77.0.2 root@10.77.0.3" --address 10.77.0.1 --keys "$WORK/keys" \
    -- $FLAGS --outer-steps 5000 --checkpoint-dir "$WORK/run2" >"$WORK/run2.out" 2>"$WORK/run2.log" &
LAUNCHER=$!
for i in $(seq 600); do grep -q "step 5/5000" "$WORK/run2.log" && break; sleep 0.05; done
grep -q "step 5/5000" "$WORK/run2.log" || { echo "the run did not start" >&2; exit 1; }
kill -INT "$LAUNCHER"
wait "$LAUNCHER" || true
set +m
sleep 1
if pgrep -f "medmaml-worker.*tcp://10.77.0.1" >/dev/null; then echo "workers still running after Ctrl-C" >&2; exit 1; fi
if pgrep -f "checkpoint-dir $WORK/run2" >/dev/null; then echo "coordinator still running after Ctrl-C" >&2; exit 1; fi
ls "$WORK/run2"/checkpoint-*.safetensors >/dev/null || { echo "no checkpoint after Ctrl-C" >&2; exit 1; }
grep -q "stopped the coordinator and 2 worker(s)" "$WORK/run2.log"
echo "  coordinator checkpointed and stopped; no worker left running" >&2
echo "ssh tests passed" >&2
