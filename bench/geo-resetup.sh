#!/usr/bin/env bash
# The Geo re-setup (seed 001) of the lab's standby cluster `geo`, by pgha and by the plain scripted
# procedure (the rehearsal's commands), alternated on one standby lab in one run. Reports each
# run's wall time (first action until geo has a standby leader and every member replicates), the
# restore phase, and how often a poller (every 0.2 s, throughout) saw a geo member run as a
# writable primary.
#
#   bench/geo-resetup.sh                 # RUNS=3
#   RUNS=5 PGHA=target/release/pgha bench/geo-resetup.sh
#
# Settings: LAB_DIR (/tmp/geolab), FIRST_ADDRESS (127.0.0.171: etcd on .170, demo on .171-.173,
# geo1 .174, geo2 .175), RUNS, PGHA (default: built into CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "$0")/.."

lab=${LAB_DIR:-/tmp/geolab}
first=${FIRST_ADDRESS:-127.0.0.171}
runs=${RUNS:-3}
source bench/lib.sh
pgha_binary
prefix=${first%.*}
octet=${first##*.}
etcd="http://$prefix.$((octet - 1)):2379"
geo=(geo1 geo2)
address() { case $1 in geo1) echo "$prefix.$((octet + 3))" ;; geo2) echo "$prefix.$((octet + 4))" ;; esac; }
patroni() { curl -s --max-time 3 "http://$(address "$1"):8008/patroni" || true; }
now() { date +%s.%N; }
say() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

lab_down() { "$pgha" lab down --wipe --dir "$lab" >/dev/null 2>&1 || true; }
trap 'kill "${poller:-}" 2>/dev/null || true; [ -n "${KEEP_LAB:-}" ] || lab_down' EXIT

# Counts observations of a geo member running as a writable primary, until killed.
poll_writable() {
    local seen=0 m
    while true; do
        for m in "${geo[@]}"; do
            if patroni "$m" | grep -q '"role": *"\(primary\|master\)"'; then
                seen=$((seen + 1))
                echo "$seen" >"$lab.writable"
            fi
        done
        sleep 0.2
    done
}

# Until geo1 leads as standby leader and geo2 replicates (from geo1 or from the archive).
wait_rebuilt() {
    local deadline=$(($(date +%s) + 300))
    until patroni geo1 | grep -q '"role": *"standby_leader"' &&
        patroni geo2 | grep -q '"replication_state": *"\(streaming\|in archive recovery\)"'; do
        [ "$(date +%s)" -lt "$deadline" ] || { say "not rebuilt within 300 s"; return 1; }
        sleep 0.2
    done
}

# The rehearsal's procedure, as a script: stop, delete the keys (trailing slash), keep the files,
# wipe, start geo1 while geo2 restores, drop geo2's restored patroni.dynamic.json, put its files
# back, start it.
scripted() {
    local m data stops=() start
    # Waits name their PIDs: a bare `wait` would also wait for the poller (the rehearsal's trap).
    for m in "${geo[@]}"; do
        "$pgha" lab --dir "$lab" member stop "$m" >/dev/null 2>&1 &
        stops+=($!)
    done
    wait "${stops[@]}"
    local key end
    key=$(printf '/service/geo/' | base64)
    end=$(printf '/service/geo0' | base64)
    curl -sf "$etcd/v3/kv/deleterange" -d "{\"key\":\"$key\",\"range_end\":\"$end\"}" >/dev/null
    for m in "${geo[@]}"; do
        data=$lab/members/$m/data
        mkdir -p "$lab/members/$m/keep"
        cp -p "$data/pg_hba.conf" "$data/pg_ident.conf" "$lab/members/$m/keep/"
        find "$data" -mindepth 1 -delete
    done
    restore_started=$(now)
    "$pgha" lab --dir "$lab" member start geo1 >/dev/null 2>&1 &
    start=$!
    runuser -u postgres -- pgbackrest --config="$lab/members/geo2/pgbackrest/pgbackrest.conf" \
        --stanza=demo --pg1-path="$lab/members/geo2/data" --type=standby --delta restore >/dev/null
    restore_ended=$(now)
    wait "$start"
    local deadline=$(($(date +%s) + 300))
    until patroni geo1 | grep -q '"role": *"standby_leader"'; do
        [ "$(date +%s)" -lt "$deadline" ] || { say "geo1 never led"; return 1; }
        sleep 0.2
    done
    rm -f "$lab/members/geo2/data/patroni.dynamic.json"
    cp -p "$lab/members/geo2/keep/"* "$lab/members/geo2/data/"
    "$pgha" lab --dir "$lab" member start geo2 >/dev/null 2>&1
}

with_pgha() {
    "$pgha" --config "$lab/pgha.yml" --env lab --cluster geo geo-resetup --yes --confirm geo \
        >/dev/null 2>"$lab.pgha.log"
    # The restore phase, from the run's own step timings.
    restore_ended=$(grep -o 'restore-backup-geo2 done in [0-9.]*s' "$lab.pgha.log" | grep -o '[0-9.]*' | head -1)
}

lab_down
say "lab up on $first with a standby cluster"
"$pgha" lab up --dir "$lab" --first-address "$first" --standby-cluster >/dev/null 2>&1
echo 0 >"$lab.writable"
poll_writable &
poller=$!
results=()
for run in $(seq 1 "$runs"); do
    for procedure in scripted with_pgha; do
        wait_rebuilt
        sleep 2
        say "== $procedure, run $run"
        started=$(now)
        "$procedure"
        wait_rebuilt
        ended=$(now)
        total=$(awk "BEGIN { printf \"%.2f\", $ended - $started }")
        if [ "$procedure" = scripted ]; then
            restore=$(awk "BEGIN { printf \"%.2f\", $restore_ended - $restore_started }")
        else
            restore=$restore_ended
        fi
        say "   $total s (geo2's restore ${restore} s)"
        results+=("$procedure $total $restore")
    done
done
kill "$poller" 2>/dev/null || true
writable=$(cat "$lab.writable")

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
def med(p, i): return statistics.median(float(r[i]) for r in rows if r[0] == p)
def span(p, i):
    v = [float(r[i]) for r in rows if r[0] == p]
    return f"{statistics.median(v):.1f} s ({min(v):.1f}–{max(v):.1f})"
print("| procedure | runs | wall time, median (min–max) | geo2 restore |")
print("| --- | ---: | ---: | ---: |")
for p, name in (("scripted", "scripted (the rehearsal)"), ("with_pgha", "pgha geo-resetup")):
    print(f"| {name} | {sum(r[0] == p for r in rows)} | {span(p, 1)} | {span(p, 2)} |")
ratio = med("with_pgha", 1) / med("scripted", 1)
print()
print(f"pgha / scripted: {ratio:.2f}x")
'
echo "writable observations of a geo member: $writable"
