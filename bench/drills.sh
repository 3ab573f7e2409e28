#!/usr/bin/env bash
# Seed 003's drills on a 3-member lab, each ROUNDS times: how long until the cluster heals on
# its own (every member answering, one leader, every replica streaming, no warning in
# `pgha status`), measured from the fault by polling `pgha status -o json` every 0.2 s.
#   bench/drills.sh
#   ROUNDS=5 bench/drills.sh
# Drills: postgres SIGKILLed on a replica, on the leader; a replica's data deleted while it
# runs; the leader's machine crashed (Patroni and postgres SIGKILLed: failover at ttl), then
# the crashed member started again and rejoining; two of the three etcd members stopped (the
# quorum lost: the leader demotes itself at ttl), then one started again (a leader again). The
# lab's ttl is 20 s, loop_wait 2 s, retry_timeout 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
pgha=$PWD/target/release/pgha
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
export PGHA_LAB_DIR=${PGHA_LAB_DIR:-/var/lib/pgha/bench-drills}
trap '"$pgha" lab down --wipe >/dev/null 2>&1 || true' EXIT
"$pgha" lab up --first-address 127.0.0.191 --etcd-members 3 >/dev/null 2>&1

now() { python3 -c 'import time; print(time.monotonic())'; }
field() { "$pgha" status -o json 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
leader() { field 'd["leader"]'; }
replica() { field '[m["name"] for m in d["members"] if m["name"] != d["leader"]][0]'; }
healthy() {
    "$pgha" status -o json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
ok = len(d["members"]) == 3 and not d["warnings"] and all(
    m["role"] == "leader" or (m["role"] == "replica" and m["state"] == "streaming") for m in d["members"])
sys.exit(0 if ok else 1)'
}
# Seconds from $1 (a monotonic start) until the lab is healthy; gives up after 180 s.
until_healed() {
    local start=$1
    for _ in $(seq 1 900); do
        healthy && { python3 -c "print(round($(now) - $start, 1))"; return; }
        sleep 0.2
    done
    echo "did not heal within 180 s" >&2; exit 1
}
until_new_leader() {
    local start=$1 old=$2
    for _ in $(seq 1 900); do
        local current; current=$(leader 2>/dev/null || true)
        if [ -n "$current" ] && [ "$current" != "None" ] && [ "$current" != "$old" ]; then
            python3 -c "print(round($(now) - $start, 1))"; return
        fi
        sleep 0.2
    done
    echo "no new leader within 180 s" >&2; exit 1
}

# Seconds from $1 until `pgha status` says no leader (the demotion that takes writes away).
until_no_leader() {
    local start=$1
    for _ in $(seq 1 900); do
        "$pgha" status -o json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(w["code"] == "no_leader" for w in d["warnings"]) else 1)' &&
            { python3 -c "print(round($(now) - $start, 1))"; return; }
        sleep 0.2
    done
    echo "the leader did not demote within 180 s" >&2; exit 1
}

declare -A times
for _ in $(seq 1 "$rounds"); do
    m=$(replica); s=$(now); "$pgha" lab member kill "$m" --postgres >/dev/null 2>&1
    times[postgres_replica]+="$(until_healed "$s") "
    m=$(leader); s=$(now); "$pgha" lab member kill "$m" --postgres >/dev/null 2>&1
    times[postgres_leader]+="$(until_healed "$s") "
    m=$(replica); s=$(now); "$pgha" lab member wipe-live "$m" >/dev/null 2>&1
    times[wipe_live_replica]+="$(until_healed "$s") "
    m=$(leader); s=$(now); "$pgha" lab member kill "$m" --host >/dev/null 2>&1
    times[host_leader_failover]+="$(until_new_leader "$s" "$m") "
    s=$(now); "$pgha" lab member start "$m" >/dev/null 2>&1
    times[crashed_member_rejoins]+="$(until_healed "$s") "
    "$pgha" lab dcs stop --member 2 >/dev/null 2>&1
    s=$(now); "$pgha" lab dcs stop --member 3 >/dev/null 2>&1
    times[quorum_lost]+="$(until_no_leader "$s") "
    s=$(now); "$pgha" lab dcs start --member 2 >/dev/null 2>&1
    times[quorum_back]+="$(until_healed "$s") "
    "$pgha" lab dcs start --member 3 >/dev/null 2>&1
    until_healed "$(now)" >/dev/null
done

python3 - "${times[postgres_replica]}" "${times[postgres_leader]}" "${times[wipe_live_replica]}" \
    "${times[host_leader_failover]}" "${times[crashed_member_rejoins]}" \
    "${times[quorum_lost]}" "${times[quorum_back]}" <<'EOF'
import statistics, sys
names = [
    "postgres SIGKILLed on a replica → streaming again",
    "postgres SIGKILLed on the leader → healthy again",
    "a running replica's data deleted → rebuilt, streaming",
    "the leader's machine crashed → a new leader",
    "the crashed member started → rejoined, streaming",
    "two of three etcd members stopped → the leader demoted (status: no leader)",
    "one etcd member started again → a leader, every replica streaming",
]
print("| drill | runs | time to heal, median (min–max) |")
print("| --- | ---: | ---: |")
for name, text in zip(names, sys.argv[1:]):
    values = [float(x) for x in text.split()]
    print(f"| {name} | {len(values)} | {statistics.median(values):.1f} s ({min(values):.1f}–{max(values):.1f}) |")
EOF
