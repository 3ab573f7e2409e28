#!/usr/bin/env bash
# A rolling Patroni upgrade of the lab's 3-member cluster to TO (4.1.5), with bench/writer.py
# inserting a row every 50 ms throughout, by each procedure, from each source release. One lab
# (started and wiped by this script, on its own addresses), one run, a Markdown table printed.
#
#   bench/rolling-upgrade.sh                       # FROMS="2.1.7 3.3.11", RUNS=1, all procedures
#   RUNS=3 bench/rolling-upgrade.sh
#   PROCEDURES="rest" FROMS=3.3.11 bench/rolling-upgrade.sh
#
# Procedures:
#   rest        the plain REST floor: PATCH /config pause, swap each replica's Patroni (lab member
#               stop + start --patroni-version TO), wait for it to stream, resume, POST /switchover
#               to an upgraded replica, pause, swap the old leader, resume. curl only.
#   patronictl  seed 002's commands: `patronictl pause --wait`, the same swaps, `resume --wait`,
#               `switchover --candidate … --force`, `pause --wait`, swap, `resume --wait`; each
#               command run "on" a member (its patroni.yml, the patronictl of the release it runs).
#   pgha        HOOK: `pgha rolling-upgrade --to TO --yes` (skipped, with a note, while
#               `pgha rolling-upgrade --help` fails).
#
# Per run: write-unavailability window (longest gap between acknowledged inserts minus 50 ms),
# acknowledged and lost writes (acknowledged, missing on the new leader), the paused window (from
# the first pause to the last resume returning) and the total time of the procedure.
#
# Settings: LAB_DIR (/tmp/ulab), FIRST_ADDRESS (127.0.0.101; the lab puts etcd and sshd on .100),
# TO (4.1.5), FROMS, RUNS, PROCEDURES, PGHA (the pgha binary; default: built into
# CARGO_TARGET_DIR or target/), RESULTS (a JSON-lines file, default under /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."

lab=${LAB_DIR:-/tmp/ulab}
first=${FIRST_ADDRESS:-127.0.0.101}
to=${TO:-4.1.5}
froms=${FROMS:-"2.1.7 3.3.11"}
runs=${RUNS:-1}
procedures=${PROCEDURES:-"rest patronictl pgha"}
venv=/var/lib/pgha/venv
py=$venv/patroni-4.1.5/bin/python
results=${RESULTS:-/tmp/rolling-upgrade-$(date +%Y%m%d-%H%M%S).jsonl}
logs=${results%.jsonl}.logs
mkdir -p "$logs"
source bench/lib.sh
pgha_binary

prefix=${first%.*}
last_octet=${first##*.}
members=(node1 node2 node3)
address() { echo "$prefix.$((last_octet + ${1#node} - 1))"; }
api() { echo "http://$(address "$1"):8008"; }

now() { date +%s.%N; }
say() { printf '%s %s\n' "$(date +%T.%N | cut -c1-12)" "$*" >&2; }
rest() { curl -sS -f --max-time 90 -u "patroni:$(cat "$lab/secrets/rest-password")" "$@"; }

# The member that holds the leader key, from any member's /cluster.
leader() {
    local m
    for m in "${members[@]}"; do
        rest "$(api "$m")/cluster" 2>/dev/null |
            jq -er '.members[] | select(.role == "leader" or .role == "master") | .name' && return
    done
    return 1
}

version_of() { rest "$(api "$1")/patroni" | jq -r .patroni.version; }

# Until every member reports pause true (or false): what `patronictl pause --wait` checks.
wait_paused() {
    local want=$1 deadline=$((SECONDS + 60)) m ok
    while ((SECONDS < deadline)); do
        ok=1
        for m in "${members[@]}"; do
            [ "$(rest "$(api "$m")/patroni" 2>/dev/null | jq -r '.pause // false')" = "$want" ] || ok=0
        done
        ((ok)) && return 0
        sleep 0.1
    done
    say "members did not report pause=$want within 60 s"
    return 1
}

# Until MEMBER runs Patroni VERSION and the leader reports it streaming.
wait_streaming() {
    local member=$1 version=$2 deadline=$((SECONDS + 120)) l
    while ((SECONDS < deadline)); do
        if [ "$(version_of "$member" 2>/dev/null)" = "$version" ] && l=$(leader 2>/dev/null) &&
            rest "$(api "$l")/patroni" 2>/dev/null | jq -e --arg m "$member" \
                '.replication // [] | any(.application_name == $m and .state == "streaming")' >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    say "$member did not stream on Patroni $version within 120 s"
    return 1
}

swap() {
    say "swap $1 to Patroni $to"
    "$pgha" lab member stop "$1" --dir "$lab" >/dev/null
    "$pgha" lab member start "$1" --dir "$lab" --patroni-version "$to" >/dev/null
    wait_streaming "$1" "$to"
}

# The procedures run in a pipeline (a subshell): their pause/resume times go to a file.
marks=/dev/null
mark_pause() { echo "pause $(now)" >>"$marks"; }
mark_resume() { echo "resume $(now)" >>"$marks"; }

procedure_rest() {
    local old candidate m
    old=$(leader)
    mark_pause
    say "pause (PATCH /config)"
    rest -XPATCH "$(api "$old")/config" -d '{"pause": true}' >/dev/null
    wait_paused true
    for m in "${members[@]}"; do [ "$m" = "$old" ] || swap "$m"; done
    say "resume (PATCH /config)"
    rest -XPATCH "$(api "$old")/config" -d '{"pause": false}' >/dev/null
    wait_paused false
    mark_resume
    candidate=$(for m in "${members[@]}"; do [ "$m" = "$old" ] || echo "$m"; done | head -1)
    say "switchover $old -> $candidate (POST /switchover)"
    rest -XPOST "$(api "$old")/switchover" -d "{\"leader\": \"$old\", \"candidate\": \"$candidate\"}" >&2
    echo >&2
    wait_streaming "$old" "$(version_of "$old")"
    mark_pause
    say "pause (PATCH /config)"
    rest -XPATCH "$(api "$candidate")/config" -d '{"pause": true}' >/dev/null
    wait_paused true
    swap "$old"
    say "resume (PATCH /config)"
    rest -XPATCH "$(api "$candidate")/config" -d '{"pause": false}' >/dev/null
    wait_paused false
    mark_resume
}

# patronictl "on" MEMBER: its patroni.yml and the patronictl of the release it runs.
pctl() {
    local member=$1
    shift
    "$venv/patroni-$(version_of "$member")/bin/patronictl" -c "$lab/members/$member/patroni.yml" "$@"
}

procedure_patronictl() {
    local old candidate m
    old=$(leader)
    mark_pause
    say "patronictl pause --wait (on $old)"
    pctl "$old" pause --wait demo >&2
    for m in "${members[@]}"; do [ "$m" = "$old" ] || swap "$m"; done
    candidate=$(for m in "${members[@]}"; do [ "$m" = "$old" ] || echo "$m"; done | head -1)
    say "patronictl resume --wait (on $candidate)"
    pctl "$candidate" resume --wait demo >&2
    mark_resume
    say "patronictl switchover --candidate $candidate --force (on $candidate)"
    pctl "$candidate" switchover demo --leader "$old" --candidate "$candidate" --force >&2
    wait_streaming "$old" "$(version_of "$old")"
    mark_pause
    say "patronictl pause --wait (on $candidate)"
    pctl "$candidate" pause --wait demo >&2
    swap "$old"
    say "patronictl resume --wait (on $candidate)"
    pctl "$candidate" resume --wait demo >&2
    mark_resume
}

# ---- (c) pgha: the hook for `pgha rolling-upgrade` ------------------------------------------
pgha_available() { "$pgha" rolling-upgrade --help >/dev/null 2>&1; }
procedure_pgha() {
    # pgha pauses and resumes itself: the paused window is read from its journal (when the
    # pause step and the resume step succeeded).
    local journal_dir="$logs/$tag.runs"
    PGHA_RUNS_DIR=$journal_dir "$pgha" --config "$lab/pgha.yml" --env lab rolling-upgrade --to "$to" --yes >&2
    python3 - "$journal_dir" >>"$marks" <<'PY'
import datetime, glob, json, sys
for path in glob.glob(sys.argv[1] + "/*.jsonl"):
    for line in open(path):
        event = json.loads(line)
        if event.get("event") == "step_succeeded" and event.get("step") in ("pause", "resume"):
            at = datetime.datetime.fromisoformat(event["at"].replace("Z", "+00:00")).timestamp()
            print(event["step"], at)
PY
}
# ----------------------------------------------------------------------------------------------

lab_down() { "$pgha" lab down --wipe --dir "$lab" >/dev/null 2>&1 || true; }
trap 'if [ -n "${writer:-}" ]; then kill "$writer" 2>/dev/null || true; fi; [ -n "${TABLE_ONLY:-}" ] || lab_down' EXIT

one_run() {
    local procedure=$1 from=$2 run=$3 tag acks started ended m ok=true
    tag="$procedure-$from-$run"
    acks="$logs/$tag.acks"
    lab_down
    say "== $tag: lab up on $first with Patroni $from"
    "$pgha" lab up --dir "$lab" --first-address "$first" --patroni-version "$from" >"$logs/$tag.lab-up" 2>&1 ||
        { cat "$logs/$tag.lab-up" >&2; return 1; }
    "$py" bench/writer.py write --lab "$lab" --acks "$acks" --run "$tag-$(date +%s)" 2>"$logs/$tag.writer" &
    writer=$!
    sleep 2
    marks="$logs/$tag.marks"
    : >"$marks"
    started=$(now)
    "procedure_$procedure" 2>&1 | tee "$logs/$tag.steps" >&2 || ok=false
    ended=$(now)
    sleep 2
    kill -TERM "$writer"
    wait "$writer" || true
    writer=
    for m in "${members[@]}"; do
        [ "$(version_of "$m")" = "$to" ] || { say "$m still runs $(version_of "$m")"; ok=false; }
    done
    [ "$(rest "$(api "$(leader)")/patroni" | jq -r '.pause // false')" = false ] || ok=false
    "$py" bench/writer.py check --lab "$lab" --acks "$acks" | python3 -c '
import json, sys
check = json.loads(sys.stdin.read())
procedure, source, run, ok, started, ended, paused, resumed = sys.argv[1:9]
paused = [float(x) for x in paused.split()]
resumed = [float(x) for x in resumed.split()]
check.update(procedure=procedure, source=source, run_no=int(run), ok=ok == "true",
             total_s=round(float(ended) - float(started), 2),
             paused_span_s=round(resumed[-1] - paused[0], 2) if paused and resumed else None,
             paused_sum_s=round(sum(r - p for p, r in zip(paused, resumed)), 2) if paused else None)
print(json.dumps(check))' "$procedure" "$from" "$run" "$ok" "$started" "$ended" \
        "$(awk '$1 == "pause" {print $2}' "$marks" | xargs)" \
        "$(awk '$1 == "resume" {print $2}' "$marks" | xargs)" | tee -a "$results" >&2
}

notes=()
[ -z "${TABLE_ONLY:-}" ] || { results=$TABLE_ONLY; procedures=; }   # re-print a results file's table
for procedure in $procedures; do
    if [ "$procedure" = pgha ] && ! pgha_available; then
        notes+=("- (c) pgha: skipped: \`pgha rolling-upgrade --help\` fails (not implemented in this build)")
        continue
    fi
    for from in $froms; do
        for run in $(seq 1 "$runs"); do
            one_run "$procedure" "$from" "$run" || notes+=("- $procedure from $from, run $run: failed (logs in $logs)")
        done
    done
done
[ -n "${TABLE_ONLY:-}" ] || lab_down

python3 - "$results" "$to" "$runs" "${notes[@]}" <<'EOF'
import json, statistics, sys
path, to, runs, notes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rows = [json.loads(line) for line in open(path)] if open(path).read().strip() else []
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
def fmt(values, unit=" s", digits=2):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = f"{med(values):.{digits}f}{unit}"
    return m if len(values) == 1 else f"{m} ({min(values):.{digits}f}–{max(values):.{digits}f})"
print(f"Rolling upgrade of a 3-member lab to Patroni {to} with a writer inserting every 50 ms "
      f"(median, min–max over runs):\n")
print("| procedure | from | runs (ok) | write-unavailability window | acknowledged writes | lost writes | paused window (first pause → last resume) | of which paused | total |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
names = {"rest": "(a) REST floor (curl)", "patronictl": "(b) seed 002 patronictl", "pgha": "(c) pgha rolling-upgrade"}
keys = []
for row in rows:
    if (row["procedure"], row["source"]) not in keys:
        keys.append((row["procedure"], row["source"]))
for procedure, source in keys:
    group = [r for r in rows if (r["procedure"], r["source"]) == (procedure, source)]
    print(f"| {names.get(procedure, procedure)} | {source} | {len(group)} ({sum(r['ok'] for r in group)}) "
          f"| {fmt([r['window_s'] for r in group])} | {fmt([r['acknowledged'] for r in group], '', 0)} "
          f"| {sum(r['lost'] for r in group)} | {fmt([r['paused_span_s'] for r in group])} "
          f"| {fmt([r['paused_sum_s'] for r in group])} "
          f"| {fmt([r['total_s'] for r in group])} |")
print()
for note in notes:
    print(note)
print(f"- results: {path}")
EOF
