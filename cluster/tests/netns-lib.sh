# Shared by the network-namespace tests and benchmarks: several "hosts" on this machine.
# mmsw holds a bridge; mmc (coordinator, 10.77.0.1) and mmw1, mmw2 (workers, .2 and .3) each
# connect to it by a veth pair. All traffic stays inside these namespaces.
NETNS_HOSTS="mmc:10.77.0.1 mmw1:10.77.0.2 mmw2:10.77.0.3"

netns_available() {
    [ "$(id -u)" -eq 0 ] || { echo "needs root"; return 1; }
    command -v ip >/dev/null || { echo "iproute2 is not installed"; return 1; }
    ip netns add mmprobe$$ 2>/dev/null || { echo "this machine does not allow network namespaces"; return 1; }
    ip netns del mmprobe$$
}

netns_up() {
    netns_down 2>/dev/null || true
    ip netns add mmsw
    ip -n mmsw link add br0 type bridge
    ip -n mmsw link set br0 up
    ip -n mmsw link set lo up
    for entry in $NETNS_HOSTS; do
        local ns=${entry%%:*} addr=${entry#*:}
        ip netns add "$ns"
        ip link add "v$ns" netns mmsw type veth peer name eth0 netns "$ns"
        ip -n mmsw link set "v$ns" master br0
        ip -n mmsw link set "v$ns" up
        ip -n "$ns" addr add "$addr/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
    done
}

netns_down() {
    for entry in $NETNS_HOSTS; do ip netns del "${entry%%:*}" 2>/dev/null || true; done
    ip netns del mmsw 2>/dev/null || true
}

# Adds DELAY (e.g. 20ms) and LOSS (e.g. 2%) in both directions of a host's link.
netns_netem() {
    local ns=$1 delay=$2 loss=$3
    ip netns exec "$ns" tc qdisc replace dev eth0 root netem delay "$delay" loss "$loss"
    ip netns exec mmsw tc qdisc replace dev "v$ns" root netem delay "$delay" loss "$loss"
}

# For an EXIT/INT/TERM trap: kills the processes in PIDS, shows the logs in WORK when the
# script failed (and SHOW_LOGS is set), removes the namespaces and WORK, keeps the status.
netns_cleanup() {
    local status=$?
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ $status -ne 0 ] && [ -n "${SHOW_LOGS:-}" ]; then
        for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
    fi
    netns_down
    rm -rf "$WORK"
    exit $status
}
