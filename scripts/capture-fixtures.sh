#!/usr/bin/env bash
# Captures real Patroni REST responses from lab clusters, one per release, into
# tests/fixtures/patroni/<version>/. The unit tests of the normalised model parse these files.
# Each lab runs on its own address block (127.0.0.31…) and directory, so a running main lab is
# not touched. Re-run after adding a release:  scripts/capture-fixtures.sh [VERSION...]
set -euo pipefail
cd "$(dirname "$0")/.."

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(2.1.7 3.0.4 3.3.11 4.1.5)
pgha=${PGHA:-target/debug/pgha}
[ -x "$pgha" ] || cargo build --quiet
first=127.0.0.31
api() { curl -sf --max-time 5 "$@"; }

capture_healthy() {
    local version=$1 dir out password leader replica
    dir=$(mktemp -d /tmp/pgha-capture.XXXXXX)
    chmod 755 "$dir"
    out=tests/fixtures/patroni/$version
    mkdir -p "$out"
    trap '"$pgha" lab down --wipe --dir "$dir" >/dev/null 2>&1 || true' RETURN
    "$pgha" lab up --dir "$dir" --first-address "$first" --patroni-version "$version" >/dev/null
    password=$(cat "$dir/secrets/rest-password")
    # The DCS view trails the members' own state by up to one loop_wait: let it settle so the
    # recorded /cluster shows every replica streaming (running before 3.0.4) with no lag.
    local settled=""
    for _ in $(seq 1 40); do
        if api "http://$first:8008/cluster" | python3 -c '
import json, sys
members = json.load(sys.stdin)["members"]
replicas = [m for m in members if m["role"] != "leader"]
sys.exit(0 if replicas and all(m.get("lag") == 0 and m["state"] in ("streaming", sys.argv[1]) for m in replicas) else 1)
' "$( [[ $version == 2.* || $version == 3.0.[0-3] ]] && echo running || echo streaming)"; then settled=yes; break; fi
        sleep 0.5
    done
    [ -n "$settled" ] || { echo "the DCS view of Patroni $version did not settle" >&2; return 1; }
    leader=$(api "http://$first:8008/cluster" | python3 -c 'import json,sys; print([m["api_url"] for m in json.load(sys.stdin)["members"] if m["role"]=="leader"][0].rsplit("/",1)[0])')
    replica=$(api "http://$first:8008/cluster" | python3 -c 'import json,sys; print([m["api_url"] for m in json.load(sys.stdin)["members"] if m["role"]!="leader"][0].rsplit("/",1)[0])')
    api "$leader/patroni" > "$out/patroni_leader.json"
    api "$replica/patroni" > "$out/patroni_replica.json"
    api "$leader/cluster" > "$out/cluster_from_leader.json"
    api "$replica/cluster" > "$out/cluster_from_replica.json"
    api "$leader/config" > "$out/config.json"
    # A switchover writes a history line, and a paused cluster shows `pause`.
    local candidate=${replica#http://}; candidate=${candidate%%:*}
    local candidate_name
    candidate_name=$(api "$replica/cluster" | python3 -c "import json,sys; print([m['name'] for m in json.load(sys.stdin)['members'] if m['host']=='$candidate'][0])")
    local leader_name
    leader_name=$(api "$leader/cluster" | python3 -c 'import json,sys; print([m["name"] for m in json.load(sys.stdin)["members"] if m["role"]=="leader"][0])')
    # The credential probe pgha uses: an empty body after the auth check must give 400.
    printf '%s\n' "$(curl -s -o /dev/null -w '%{http_code}' -X POST -u "patroni:$password" -H 'Content-Type: application/json' -d '{}' "$leader/switchover")" > "$out/credential_probe_status.txt"
    printf '%s\n' "$(curl -s -o /dev/null -w '%{http_code}' -X POST -u "patroni:wrong" -H 'Content-Type: application/json' -d '{}' "$leader/switchover")" > "$out/credential_probe_wrong_status.txt"
    curl -sf -X POST -u "patroni:$password" -H 'Content-Type: application/json' \
        -d "{\"leader\":\"$leader_name\",\"candidate\":\"$candidate_name\"}" "$leader/switchover" > /dev/null
    for _ in $(seq 1 60); do
        api "$replica/history" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin) else 1)' && break
        sleep 0.5
    done
    api "$replica/history" > "$out/history.json"
    curl -sf -X PATCH -u "patroni:$password" -H 'Content-Type: application/json' -d '{"pause":true}' "$replica/config" > /dev/null
    sleep 3
    api "$replica/cluster" > "$out/cluster_paused.json"
    api "$replica/patroni" > "$out/patroni_paused.json"
    echo "captured Patroni $version into $out"
}

for version in "${versions[@]}"; do
    capture_healthy "$version"
done
