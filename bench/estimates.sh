#!/usr/bin/env bash
# How close a dry-run's estimate comes to the run it estimates, on one lab in one run: a
# 2-member lab with a spare and a database of SCALE pgbench units (default 10, ~150 MiB).
# `pgha reinit` of the replica, ROUNDS times (default 4): from the second on, the dry-run's
# estimate (from the journals of the runs before it) is read first, then the run's own time
# (its journal's run_finished) is compared with it. The same for `pgha scale-up` of the spare,
# taken out again between rounds (Patroni stopped, data removed, DCS key expired).
# The goal: within 25 % of the real run.
#   bench/estimates.sh
#   SCALE=30 ROUNDS=5 bench/estimates.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${SCALE:-10}
rounds=${ROUNDS:-4}
pgha=$PWD/target/release/pgha
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
export PGHA_LAB_DIR=${PGHA_LAB_DIR:-/var/lib/pgha/bench-estimates}
# The journals are kept when PGHA_RUNS_DIR is given.
[ -n "${PGHA_RUNS_DIR:-}" ] && keep_runs=1 || { keep_runs=0; export PGHA_RUNS_DIR=$(mktemp -d); }
results=$(mktemp)
trap '"$pgha" lab down --wipe >/dev/null 2>&1 || true; [ "$keep_runs" = 1 ] || rm -rf "$PGHA_RUNS_DIR"; rm -f "$results"' EXIT
"$pgha" lab up --members 2 --spare 1 --first-address 127.0.0.241 >/dev/null 2>&1
leader=$("$pgha" status -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
replica=$("$pgha" status -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print([m["name"] for m in d["members"] if m["in_dcs"] and m["name"]!=d["leader"]][0])')
spare=node3
sock=$PGHA_LAB_DIR/members/$leader
runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -h "$sock" -p 5432 -U postgres -i -q -s "$scale" postgres >/dev/null 2>&1
size=$(runuser -u postgres -- psql -h "$sock" -U postgres -Atc "select pg_size_pretty(sum(pg_database_size(datname))) from pg_database" postgres)

in_dcs() { "$pgha" status -o json | python3 -c "import json,sys; d=json.load(sys.stdin); print([m['in_dcs'] for m in d['members'] if m['name']=='$spare'][0])"; }
take_out() {
    "$pgha" lab member stop "$spare" >/dev/null
    rm -rf "$PGHA_LAB_DIR/members/$spare/data"
    for _ in $(seq 1 120); do [ "$(in_dcs)" = "True" ] || return 0; sleep 1; done
    echo "the spare's DCS key did not expire" >&2; exit 1
}
# The newest journal's run time, in seconds.
last_run_seconds() {
    python3 - "$PGHA_RUNS_DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
newest = max((f for f in os.listdir(d) if f.endswith(".jsonl")), key=lambda f: os.path.getmtime(os.path.join(d, f)))
for line in open(os.path.join(d, newest)):
    event = json.loads(line)
    if event["event"] == "run_finished":
        assert event["outcome"] == "succeeded", event
        print(event["duration_ms"] / 1000)
PY
}
estimate() {
    "$pgha" "$@" --dry-run -o json | python3 -c 'import json,sys; e=json.load(sys.stdin).get("estimate"); print("%s %s %s" % (e["total_seconds"], *e["total_range"]) if e else "- - -")'
}
round() { # RUNBOOK ROUND ARGS…
    local runbook=$1 round=$2; shift 2
    local estimated
    estimated=$(estimate "$runbook" "${@:1:2}")
    "$pgha" "$runbook" "$@" >/dev/null 2>&1
    echo "$runbook $round $estimated $(last_run_seconds)" >> "$results"
}

for i in $(seq 1 "$rounds"); do
    round reinit "$i" --member "$replica" --yes --confirm "$replica"
done
for i in $(seq 1 "$rounds"); do
    [ "$i" = 1 ] || take_out
    round scale-up "$i" --member "$spare" --yes --done provisioning --done load-balancing
done

python3 - "$results" "$size" "$scale" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
print(f"dry-run estimates against the runs they estimate, database {sys.argv[2]} (pgbench -s {sys.argv[3]}):\n")
print("| runbook | round | estimated | earlier runs' range | ran | error |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
errors, inside = {}, {}
for runbook, round_, estimated, low, high, ran in rows:
    ran = float(ran)
    if estimated == "-":
        print(f"| {runbook} | {round_} | (no earlier run) | | {ran:.1f} s | |")
        continue
    error = (float(estimated) - ran) / ran * 100
    errors.setdefault(runbook, []).append(abs(error))
    inside.setdefault(runbook, []).append(float(low) <= ran <= float(high))
    print(f"| {runbook} | {round_} | {float(estimated):.1f} s | {float(low):.1f}-{float(high):.1f} s | {ran:.1f} s | {error:+.0f} % |")
print()
for runbook, off in errors.items():
    off.sort()
    print(f"{runbook}: median error {off[len(off) // 2]:.0f} %, worst {off[-1]:.0f} % (goal: 25 %); "
          f"{sum(inside[runbook])} of {len(off)} runs inside the range of the runs before")
PY
