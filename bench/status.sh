#!/usr/bin/env bash
# `pgha status` against `patronictl list` and against one `curl` of /cluster (the floor for any
# process that asks the cluster), on the same lab, in one run. Prints medians of RUNS runs
# (hyperfine), their ratios, and the peak RSS of each (GNU time, median of 10), as Markdown.
#   bench/status.sh            # uses (and starts if needed) the default lab
#   RUNS=50 bench/status.sh
#   DCS=consul bench/status.sh # on a lab whose DCS is the Consul double (status also reads Consul)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-30}
pgha=target/release/pgha
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --workspace --quiet   # pgha and the Consul double (DCS=consul)
dcs=(--dcs "${DCS:-etcd}")
"$pgha" lab up "${dcs[@]}" >/dev/null 2>&1 || "$pgha" lab up "${dcs[@]}"

lab=${PGHA_LAB_DIR:-/var/lib/pgha/lab}
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["spec"]["patroni_version"])' "$lab/lab.json")
patronictl=/var/lib/pgha/venv/patroni-$version/bin/patronictl
leader_url=$("$pgha" status -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); print([m["api_url"] for m in d["members"] if m["name"]==d["leader"]][0])')
members=$("$pgha" status -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["members"]))')

commands=(
    "$pgha --env lab status"
    "$patronictl -c $lab/members/node1/patroni.yml list"
    "curl -sf $leader_url/cluster"
)
names=("pgha status" "patronictl list" "curl /cluster")

results=$(mktemp)
hyperfine -N --warmup 5 --runs "$runs" --export-json "$results" "${commands[@]}" >/dev/null 2>&1

peak_rss_kib() {
    local samples=()
    for _ in $(seq 1 10); do
        samples+=("$(/usr/bin/time -f '%M' $1 2>&1 >/dev/null | tail -1)")
    done
    printf '%s\n' "${samples[@]}" | sort -n | sed -n '5p'
}
rss=()
for command in "${commands[@]}"; do
    rss+=("$(peak_rss_kib "$command")")
done

python3 - "$results" "$members" "$runs" "${names[@]}" "${rss[@]}" <<'EOF'
import json, statistics, sys
results, members, runs = sys.argv[1], sys.argv[2], sys.argv[3]
names, rss = sys.argv[4:7], sys.argv[7:10]
data = json.load(open(results))["results"]
medians = [statistics.median(r["times"]) * 1000 for r in data]
pgha, patronictl, curl = medians
print(f"`pgha status` on a {members}-member lab, median of {runs} runs each, one run of bench/status.sh:\n")
print("| command | median | min | peak RSS |")
print("| --- | ---: | ---: | ---: |")
for name, median, result, kib in zip(names, medians, data, rss):
    print(f"| `{name}` | {median:.1f} ms | {min(result['times']) * 1000:.1f} ms | {int(kib) / 1024:.1f} MiB |")
print()
print(f"- `pgha status` is **{patronictl / pgha:.0f}x faster** than `patronictl list` (target: at least 40x)")
print(f"- `pgha status` takes **{pgha / curl:.2f}x** the time of one `curl` of `/cluster` (target: at most 1.5x),")
print(f"  while asking every member for `/patroni` and `/cluster` ({2 * int(members)} requests) plus one credential probe")
print(f"- peak RSS of `pgha status`: **{int(rss[0]) / 1024:.1f} MiB** (target: at most 15 MB)")
EOF
rm -f "$results"
