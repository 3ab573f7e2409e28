#!/usr/bin/env bash
# `pgha status --all` on three 3-member clusters (three labs, each with its own etcd and REST
# password, in one inventory environment) against `patronictl list` run for each of the three
# and against one `curl` of one leader's /cluster (the floor for any process that asks a
# cluster) and one `curl --parallel` of every request pgha sends the members (the floor for
# asking all of them at once, on this machine whose two cores also run the nine Patronis), in
# one run. Prints medians of RUNS runs (hyperfine) and their ratios as Markdown.
#   bench/status-all.sh
#   RUNS=50 bench/status-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-30}
pgha=$PWD/target/release/pgha
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --quiet
root=${PGHA_BENCH_DIR:-/var/lib/pgha/bench-fleet}
labs=(201 211 221)
down() {
    for first in "${labs[@]}"; do
        "$pgha" lab down --wipe --dir "$root/lab$first" >/dev/null 2>&1 || true
    done
}
[ "${KEEP:-0}" = 1 ] || trap down EXIT
for first in "${labs[@]}"; do
    "$pgha" lab up --dir "$root/lab$first" --first-address "127.0.0.$first" >/dev/null 2>&1 &
done
wait

# One environment, three clusters: each lab's members, etcd and REST password.
inventory=$root/fleet.yml
{
    echo "environments:"
    echo "  fleet:"
    echo "    clusters:"
    for first in "${labs[@]}"; do
        echo "      c$first:"
        echo "        scope: demo"
        echo "        rest: {username: patroni, password_file: $root/lab$first/secrets/rest-password}"
        echo "        dcs: {kind: etcd, hosts: [127.0.0.$((first - 1)):2379]}"
        echo "        members:"
        for index in 0 1 2; do
            echo "        - {name: node$((index + 1)), host: 127.0.0.$((first + index))}"
        done
    done
} > "$inventory"

version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["patroni_version"])' "$root/lab${labs[0]}/lab.json")
patronictl=/var/lib/pgha/venv/patroni-$version/bin/patronictl
lists=""
for first in "${labs[@]}"; do
    lists+="$patronictl -c $root/lab$first/members/node1/patroni.yml list >/dev/null; "
done
leader_url=$("$pgha" --config "$inventory" --env fleet --cluster "c${labs[0]}" status -o json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print([m["api_url"] for m in d["members"] if m["name"]==d["leader"]][0])')
"$pgha" --config "$inventory" --env fleet status --all >/dev/null
# What pgha asks the members: /patroni and /cluster of each (with the REST credentials).
requests=()
for first in "${labs[@]}"; do
    password=$(cat "$root/lab$first/secrets/rest-password")
    for index in 0 1 2; do
        for path in patroni cluster; do
            requests+=("http://patroni:$password@127.0.0.$((first + index)):8008/$path")
        done
    done
done
parallel="curl -sf --parallel --parallel-immediate --parallel-max 64 ${requests[*]/#/-o /dev/null }"

results=$(mktemp)
hyperfine -N --warmup 5 --runs "$runs" --export-json "$results" \
    "$pgha --config $inventory --env fleet status --all" \
    "sh -c '$lists'" \
    "curl -sf $leader_url/cluster" \
    "$parallel" >/dev/null 2>&1

python3 - "$results" "$runs" <<'EOF'
import json, statistics, sys
data = json.load(open(sys.argv[1]))["results"]
pgha, patronictl, curl, parallel = [statistics.median(r["times"]) * 1000 for r in data]
print(f"`pgha status --all` on three 3-member clusters, median of {sys.argv[2]} runs each:\n")
print("| command | median |")
print("| --- | ---: |")
print(f"| `pgha status --all` (3 clusters, 9 members, 3 etcd) | {pgha:.1f} ms |")
print(f"| `patronictl list` × 3 | {patronictl:.1f} ms |")
print(f"| one `curl` of one leader's `/cluster` | {curl:.1f} ms |")
print(f"| one `curl --parallel` of the 18 requests pgha sends the members | {parallel:.1f} ms |")
print()
print(f"- **{pgha / curl:.2f}x** one `curl` (target: at most 1.5x); **{pgha / parallel:.2f}x** the parallel `curl` of the same requests;")
print(f"  **{patronictl / pgha:.0f}x faster** than `patronictl list` three times")
EOF
rm -f "$results"
