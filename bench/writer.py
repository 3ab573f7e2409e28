#!/usr/bin/env python3
"""A concurrent writer for the pgha lab, and its check.

Run it with the python of the lab's Patroni 4.1.5 virtualenv (it has psycopg 3 and PyYAML):

    PY=/var/lib/pgha/venv/patroni-4.1.5/bin/python
    $PY bench/writer.py write --lab /tmp/ulab --acks /tmp/acks.tsv &   # SIGTERM/SIGINT stops it
    $PY bench/writer.py check --lab /tmp/ulab --acks /tmp/acks.tsv     # one JSON line

`write` connects with a libpq multi-host connection string over every member of the lab
inventory (`<lab>/pgha.yml`) with `target_session_attrs=read-write`, creates the table if
needed, and inserts one row every INTERVAL (50 ms) with a sequence number, in autocommit. Only
after the INSERT returns (the commit was acknowledged) is the row written to the acks file:
`seq<TAB>unix_time<TAB>server_address`. A failed INSERT (or a lost connection) is not
acknowledged; its sequence number is never reused. On an error it reconnects (connect_timeout
2 s per host), again every 50 ms, and gives up after --max-outage seconds without a connection
(exit 3). Errors go to stderr with their time, so gaps can be attributed.

`check` reads the acks file, asks the current leader (read-write session) which of those
sequence numbers are present, and prints lost writes (acknowledged, missing) and the
write-unavailability window: the longest gap between consecutive acknowledged inserts minus
the interval.
"""

import argparse
import json
import os
import signal
import sys
import time

import psycopg
import yaml

TABLE = "pgha_bench_writes"


def conninfo(lab, connect_timeout=2):
    inventory = yaml.safe_load(open(os.path.join(lab, "pgha.yml")))
    environment = inventory["environments"]["lab"]
    postgres = environment["postgres"]
    password_file = postgres["password_file"]
    if not os.path.isabs(password_file):
        password_file = os.path.join(lab, password_file)
    password = open(password_file).read().strip()
    (cluster,) = environment["clusters"].values()
    hosts = [member["host"] for member in cluster["members"]]
    port = str(postgres.get("port", 5432))
    return psycopg.conninfo.make_conninfo(
        host=",".join(hosts),
        port=",".join([port] * len(hosts)),
        dbname=postgres.get("dbname", "postgres"),
        user=postgres["user"],
        password=password,
        sslmode=postgres.get("sslmode", "disable"),
        target_session_attrs="read-write",
        connect_timeout=str(connect_timeout),
        application_name="pgha-bench-writer",
        # a hung server must not hold a write for long: the gap shows it instead
        options="-c statement_timeout=5000",
        keepalives="1",
        keepalives_idle="2",
        keepalives_interval="1",
        keepalives_count="2",
    )


def log(message):
    print(f"{time.time():.3f} writer: {message}", file=sys.stderr, flush=True)


def write(args):
    stop = False

    def on_signal(signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    dsn = conninfo(args.lab)
    acks = open(args.acks, "w", buffering=1)  # one run per file: check reads one run id
    run = args.run or f"run-{os.getpid()}-{int(time.time())}"
    seq = 0
    connection = None
    down_since = None
    acknowledged = failed = reconnects = 0
    last_error = None
    next_at = time.monotonic()
    log(f"run {run}, interval {args.interval * 1000:.0f} ms")
    while not stop:
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)
            continue
        # one attempt per tick; after a long attempt the next one starts at once (no burst)
        next_at = max(next_at + args.interval, time.monotonic())
        if connection is None:
            try:
                connection = psycopg.connect(dsn, autocommit=True)
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                    " run text NOT NULL, seq bigint NOT NULL,"
                    " at timestamptz NOT NULL DEFAULT clock_timestamp(),"
                    " PRIMARY KEY (run, seq))"
                )
                if down_since is not None:
                    reconnects += 1
                    log(f"connected to {connection.info.host} after "
                        f"{time.monotonic() - down_since:.3f} s")
                down_since = None
                last_error = None
            except psycopg.Error as error:
                connection = None
                if down_since is None:
                    down_since = time.monotonic()
                message = str(error).strip().splitlines()
                message = message[-1] if message else type(error).__name__
                if message != last_error:  # one line per distinct error, not one per tick
                    log(f"connect failed: {message}")
                    last_error = message
                if time.monotonic() - down_since > args.max_outage:
                    log(f"no read-write server for {args.max_outage} s: giving up")
                    sys.exit(3)
                continue
        seq += 1
        try:
            connection.execute(
                f"INSERT INTO {TABLE} (run, seq) VALUES (%s, %s)", (run, seq)
            )
        except psycopg.Error as error:
            failed += 1
            message = str(error).strip().splitlines()
            log(f"insert {seq} failed: {message[0] if message else type(error).__name__}")
            try:
                connection.close()
            except psycopg.Error:
                pass
            connection = None
            down_since = time.monotonic()
            continue
        acknowledged += 1
        acks.write(f"{seq}\t{time.time():.6f}\t{connection.info.host}\n")
    acks.close()
    log(f"stopped: {acknowledged} acknowledged, {failed} failed, {reconnects} reconnects")
    with open(args.acks + ".run", "w") as handle:
        handle.write(run + "\n")


def check(args):
    rows = []
    for line in open(args.acks):
        seq, at, host = line.rstrip("\n").split("\t")
        rows.append((int(seq), float(at), host))
    run = open(args.acks + ".run").read().strip()
    connection = psycopg.connect(conninfo(args.lab), autocommit=True)
    present = {
        seq
        for (seq,) in connection.execute(
            f"SELECT seq FROM {TABLE} WHERE run = %s", (run,)
        ).fetchall()
    }
    leader = connection.info.host
    lost = sorted(seq for seq, _, _ in rows if seq not in present)
    gaps = sorted(
        ((b[1] - a[1], a[1], b[2]) for a, b in zip(rows, rows[1:])), reverse=True
    )
    longest, at, after_host = gaps[0] if gaps else (0.0, 0.0, "")
    print(json.dumps({
        "run": run,
        "leader": leader,
        "acknowledged": len(rows),
        "lost": len(lost),
        "lost_seqs": lost[:20],
        "window_s": round(max(longest - args.interval, 0.0), 3),
        "window_at": round(at, 3),
        "window_ends_on": after_host,
        "next_gaps_s": [round(g - args.interval, 3) for g, _, _ in gaps[1:4]],
        "first_ack": round(rows[0][1], 3) if rows else None,
        "last_ack": round(rows[-1][1], 3) if rows else None,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("write", "check"):
        p = sub.add_parser(name)
        p.add_argument("--lab", required=True, help="lab directory (has pgha.yml)")
        p.add_argument("--acks", required=True, help="acknowledged inserts file")
        p.add_argument("--interval", type=float, default=0.05, help="seconds between inserts")
    sub.choices["write"].add_argument("--run", help="run id (default: pid and time)")
    sub.choices["write"].add_argument(
        "--max-outage", type=float, default=120.0,
        help="seconds without a read-write server before giving up")
    args = parser.parse_args()
    (write if args.command == "write" else check)(args)


if __name__ == "__main__":
    main()
