#!/usr/bin/env bash
# Where a switchover's write-unavailability goes: N switchovers (POST /switchover, alternating
# between two members) on a lab, with bench/writer.py inserting every 50 ms, a watch on the etcd
# leader key, both members' PostgreSQL and Patroni log lines and (STRACE=1) an strace of the old
# leader's Patroni (its pg_ctl / pg_controldata runs and its 1 s sleeps). Prints, per switchover,
# the time of each step from the POST, and the writer's window, as Markdown. See bench/DEMOTE.md.
#
#   bench/demote.sh                  # 5 switchovers on the lab at LAB_DIR (started if absent)
#   N=3 STRACE=1 bench/demote.sh
#   BEFORE='CHECKPOINT' bench/demote.sh    # SQL run on the leader right before each POST
# Settings: LAB_DIR (/tmp/ulab), FIRST_ADDRESS (127.0.0.101), N (5), STRACE, BEFORE, PGHA.
set -euo pipefail
cd "$(dirname "$0")/.."
lab=${LAB_DIR:-/tmp/ulab}
first=${FIRST_ADDRESS:-127.0.0.101}
n=${N:-5}
py=/var/lib/pgha/venv/patroni-4.1.5/bin/python
pgha=${PGHA:-${CARGO_TARGET_DIR:-target}/debug/pgha}
out=${OUT:-/tmp/demote-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
[ -f "$lab/lab.json" ] || "$pgha" lab up --dir "$lab" --first-address "$first" >&2
prefix=${first%.*}
last_octet=${first##*.}
api() { echo "http://$prefix.$((last_octet + ${1#node} - 1)):8008"; }
rest() { curl -sS -f --max-time 90 -u "patroni:$(cat "$lab/secrets/rest-password")" "$@"; }
leader() { rest "$(api node1)/cluster" | jq -er '.members[] | select(.role == "leader") | .name'; }
etcd=$(python3 -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["environments"]["lab"]["dcs"]["hosts"][0])' "$lab/pgha.yml" 2>/dev/null ||
    grep -A2 'hosts:' "$lab/pgha.yml" | sed -n 's/^ *- //p' | head -1)

# The etcd leader key, watched over the v3 JSON gateway: one line per event with its time.
"$py" - "$etcd" >"$out/etcd-watch" <<'EOF' &
import base64, json, sys, time, urllib.request
key = base64.b64encode(b"/service/demo/leader").decode()
body = json.dumps({"create_request": {"key": key}}).encode()
response = urllib.request.urlopen(urllib.request.Request(f"http://{sys.argv[1]}/v3/watch", data=body))
for line in response:
    now = time.time()
    for event in json.loads(line).get("result", {}).get("events", []):
        value = base64.b64decode(event["kv"].get("value", "")).decode() if event["kv"].get("value") else ""
        print(f"{now:.6f} {event.get('type', 'PUT')} {value}", flush=True)
EOF
watcher=$!
"$py" bench/writer.py write --lab "$lab" --acks "$out/acks" 2>"$out/writer" &
writer=$!
trap 'kill $writer $watcher 2>/dev/null || true; [ -z "${tracer:-}" ] || kill $tracer 2>/dev/null || true' EXIT
sleep 2

: >"$out/switchovers"
for i in $(seq 1 "$n"); do
    old=$(leader)
    case $old in node1) new=node2 ;; *) new=node1 ;; esac
    tracer=
    if [ -n "${STRACE:-}" ]; then
        strace -f -tt -e trace=execve,clock_nanosleep,exit_group -o "$out/strace-$i" \
            -p "$(cat "$lab/members/$old/patroni.pid")" &
        tracer=$!
        sleep 1
    fi
    if [ -n "${BEFORE:-}" ]; then
        PGPASSWORD=$(cat "$lab/secrets/superuser-password") psql -qAt -h "$(api "$old" | sed 's|http://||;s|:8008||')" \
            -U postgres -d postgres -c "$BEFORE" >/dev/null
    fi
    posted=$(date +%s.%N)
    rest -XPOST "$(api "$old")/switchover" -d "{\"leader\": \"$old\", \"candidate\": \"$new\"}" >/dev/null
    answered=$(date +%s.%N)
    echo "$i $old $new $posted $answered" >>"$out/switchovers"
    sleep 8   # the old leader rejoins; its demote thread sleeps 2 s after the release
    if [ -n "$tracer" ]; then kill "$tracer"; wait "$tracer" 2>/dev/null || true; tracer=; fi
done
kill -TERM "$writer"; wait "$writer" || true
kill "$watcher" 2>/dev/null || true

python3 - "$out" "$lab" "${STRACE:-}" <<'EOF'
import datetime, re, statistics, sys
out, lab, traced = sys.argv[1], sys.argv[2], sys.argv[3]
def ts(date, clock):  # both logs are in this machine's time zone (UTC here)
    return datetime.datetime.strptime(f"{date} {clock}", "%Y-%m-%d %H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()
def log_lines(member):
    for line in open(f"{lab}/members/{member}/patroni.log", errors="replace"):
        m = re.match(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)[.,](\d+)( UTC)? (.*)", line)
        if m:
            yield ts(m[1], f"{m[2]}.{m[3]}"), m[5]
acks = [tuple(l.split("\t")[:2]) for l in open(f"{out}/acks")]
acks = [(int(s), float(t)) for s, t in acks]
watch = [(float(l.split()[0]), l.split()[1], " ".join(l.split()[2:])) for l in open(f"{out}/etcd-watch")]
patterns = {
    "old": [("demote", "Demoting self (graceful)"), ("pg_stop", "received fast shutdown request"),
            ("pg_down", "database system is shut down"), ("released", "Leader key released")],
    "new": [("promote_req", "received promote request"), ("pg_ready", "database system is ready to accept connections"),
            ("promoted", "promoted self to leader")],
}
rows = []
for line in open(f"{out}/switchovers"):
    i, old, new, posted, answered = line.split()
    posted, answered = float(posted), float(answered)
    row = {"i": i}
    for side, member in (("old", old), ("new", new)):
        for name, needle in patterns[side]:
            row[name] = next((t for t, text in log_lines(member) if t >= posted - 0.05 and needle in text), None)
    row["key_deleted"] = next((t for t, kind, _ in watch if t >= posted and kind == "DELETE"), None)
    row["key_taken"] = next((t for t, kind, v in watch if t >= posted and kind == "PUT" and v == new), None)
    after = [t for s, t in acks if t > (row["pg_ready"] or posted + 1e9)]
    row["first_ack"] = min(after) if after else None
    row["answered"] = answered
    if traced:
        sleeps, execs = [], []
        for l in open(f"{out}/strace-{i}"):
            m = re.match(r"\d+ +(\d\d:\d\d:\d\d\.\d+) (.*)", l)
            if not m:
                continue
            t = ts(datetime.date.fromtimestamp(posted).isoformat(), m[1])
            if "clock_nanosleep" in m[2] and "tv_sec=1, tv_nsec=0" in m[2]:
                sleeps.append(t)
            if "execve(" in m[2] and ("pg_controldata" in m[2] or "pg_ctl" in m[2]):
                execs.append((t, "pg_controldata" if "pg_controldata" in m[2] else "pg_ctl"))
        row["sleeps_1s"] = [round(t - posted, 3) for t in sleeps if posted <= t <= (row["key_deleted"] or posted + 5)]
        row["execs"] = [(round(t - posted, 3), name) for t, name in execs if posted <= t <= (row["key_deleted"] or posted + 5)]
    rows.append(row)
def rel(row, key, base):
    return None if row.get(key) is None or row.get(base) is None else row[key] - row[base]
steps = [("POST → old leader's Patroni 'Demoting self'", "demote", None), ("→ PG fast shutdown request", "pg_stop", "demote"),
         ("→ PG 'shut down'", "pg_down", "pg_stop"), ("→ leader key deleted (etcd)", "key_deleted", "pg_down"),
         ("→ candidate PG promote request", "promote_req", "key_deleted"),
         ("→ candidate PG accepts connections", "pg_ready", "promote_req"),
         ("→ first acknowledged insert", "first_ack", "pg_ready")]
print(f"{len(rows)} switchovers, times in seconds (median, min–max):\n")
print("| step | median | min | max |")
print("| --- | ---: | ---: | ---: |")
def line(label, values):
    values = [v for v in values if v is not None]
    if values:
        print(f"| {label} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} |")
posted = {l.split()[0]: float(l.split()[3]) for l in open(f"{out}/switchovers")}
for label, key, base in steps:
    line(label, [(r[key] - posted[r["i"]] if r.get(key) else None) if base is None else rel(r, key, base) for r in rows])
def window(r):  # the longest gap between acknowledged inserts around this switchover, minus 50 ms
    times = [t for _, t in acks if posted[r["i"]] - 0.5 <= t <= posted[r["i"]] + 8]
    return max(b - a for a, b in zip(times, times[1:])) - 0.05 if len(times) > 1 else None
line("**window**: longest gap between acknowledged inserts, minus 50 ms", [window(r) for r in rows])
line("leader key deleted → candidate holds it", [rel(r, "key_taken", "key_deleted") for r in rows])
line("POST → answered", [r["answered"] - posted[r["i"]] for r in rows])
if traced:
    print("\nstrace of the old leader's Patroni (seconds from the POST, up to the key's deletion):\n")
    for r in rows:
        print(f"- switchover {r['i']}: 1 s sleeps at {r['sleeps_1s']}; execs {r['execs']}; "
              f"PG shut down at {rel(r, 'pg_down', 'demote') + r['demote'] - posted[r['i']]:.3f}, key deleted at {r['key_deleted'] - posted[r['i']]:.3f}")
EOF
echo "raw data: $out" >&2
