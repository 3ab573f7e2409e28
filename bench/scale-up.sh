#!/usr/bin/env bash
# `pgha scale-up --yes --done provisioning --done load-balancing` against the raw time the same join takes without pgha, on one lab in one
# run: a 2-member lab with a spare, a database of SCALE pgbench units (default 20, ~300 MiB).
# Raw: start the spare's Patroni and poll its REST API every 100 ms until its replication state
# is `streaming`.
# Then the spare is taken out again (Patroni stopped, data removed, DCS key expired) and
# `pgha scale-up` adds it, end to end. The overhead is pgha's total minus the raw join; the goal
# is at most one poll interval of pgha's wait (1 s), plus the steps the raw join skips (SSH and
# disk checks, the silence).
#   bench/scale-up.sh
#   SCALE=50 ROUNDS=3 bench/scale-up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-20}
rounds=${ROUNDS:-2}
pgha=$PWD/target/release/pgha
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
export PGHA_LAB_DIR=${PGHA_LAB_DIR:-/var/lib/pgha/bench-scale}
export PGHA_RUNS_DIR=$(mktemp -d)
trap '"$pgha" lab down --wipe >/dev/null 2>&1 || true; rm -rf "$PGHA_RUNS_DIR"' EXIT
"$pgha" lab up --members 2 --spare 1 --first-address 127.0.0.81 >/dev/null 2>&1
spare=node3
spare_api=http://127.0.0.83:8008/patroni
leader_host=$("$pgha" status -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print([m["host"] for m in d["members"] if m["name"]==d["leader"]][0])')
sock=$PGHA_LAB_DIR/members/$("$pgha" status -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -h "$sock" -p 5432 -U postgres -i -q -s "$scale" postgres >/dev/null 2>&1
size=$(runuser -u postgres -- psql -h "$sock" -U postgres -Atc "select pg_size_pretty(sum(pg_database_size(datname))) from pg_database" postgres)

now() { python3 -c 'import time; print(time.monotonic())'; }
in_dcs() { "$pgha" status -o json | python3 -c "import json,sys; d=json.load(sys.stdin); print([m['in_dcs'] for m in d['members'] if m['name']=='$spare'][0])"; }
take_out() {
    "$pgha" lab member stop "$spare" >/dev/null
    rm -rf "$PGHA_LAB_DIR/members/$spare/data"
    for _ in $(seq 1 120); do [ "$(in_dcs)" = "True" ] || return 0; sleep 1; done
    echo "the spare's DCS key did not expire" >&2; exit 1
}

raw=() tool=()
for _ in $(seq 1 "$rounds"); do
    start=$(now)
    "$pgha" lab member start "$spare" >/dev/null
    deadline=$(( $(date +%s) + 600 ))
    until curl -sf "$spare_api" 2>/dev/null | grep -q '"replication_state": *"streaming"'; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "the spare did not stream within 600 s" >&2; exit 1; }
        sleep 0.1
    done
    raw+=("$(python3 -c "print($(now) - $start)")")
    take_out
    start=$(now)
    "$pgha" scale-up --member "$spare" --yes --done provisioning --done load-balancing >/dev/null 2>&1
    tool+=("$(python3 -c "print($(now) - $start)")")
    take_out
done

python3 - "$size" "$scale" "${raw[*]}" "${tool[*]}" <<'EOF'
import statistics, sys
size, scale = sys.argv[1], sys.argv[2]
raw = [float(x) for x in sys.argv[3].split()]
tool = [float(x) for x in sys.argv[4].split()]
print(f"scale-up of a replica of a {size} database (pgbench -s {scale}), {len(raw)} rounds:\n")
print("| | median | runs |")
print("| --- | ---: | --- |")
print(f"| Patroni started by hand until `streaming` | {statistics.median(raw):.1f} s | {', '.join(f'{x:.1f}' for x in raw)} |")
print(f"| `pgha scale-up --yes`, end to end | {statistics.median(tool):.1f} s | {', '.join(f'{x:.1f}' for x in tool)} |")
print(f"\n- overhead: **{statistics.median(tool) - statistics.median(raw):.1f} s** (SSH and disk checks, a silence created and expired, enable, start, the agreement check; pgha's wait polls every 1 s)")
EOF
