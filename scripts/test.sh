#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and integration tests against real lab
# clusters (etcd, Patroni from PyPI, PostgreSQL 15, sshd) on 127.0.0.41+ and 127.0.0.51+, so
# a demo lab on 127.0.0.11+ keeps running. The test labs are torn down at the end unless
# PGHA_KEEP_TEST_LAB=1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
export PGHA_TEST_LAB_ROOT=${PGHA_TEST_LAB_ROOT:-/var/lib/pgha/test-labs}

wipe_test_labs() {
    [ -x target/debug/pgha ] || return 0
    for lab in "$PGHA_TEST_LAB_ROOT"/*/; do
        [ -f "$lab/lab.json" ] && target/debug/pgha lab down --wipe --dir "$lab" >/dev/null 2>&1 || true
    done
}
teardown() {
    [ "${PGHA_KEEP_TEST_LAB:-0}" = 1 ] && return
    wipe_test_labs
}
trap teardown EXIT

# The workspace: pgha and the Consul double (crates/pgha-consul-double). The double is built
# first: pgha's lab tests start it from beside target/debug/pgha.
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets --quiet -- -D warnings
cargo build --locked --workspace --quiet
# Labs left by an interrupted run may be mid-drill (a replica behind WAL its leader no longer
# keeps): every run starts from new ones.
wipe_test_labs
cargo test --locked --workspace --quiet

# The fault matrix the suite just proved (from the README; tests/integration/fault_matrix.rs
# checks that every test it names exists).
echo
echo "Fault matrix (L: lab test, E: executor test, n/a: cannot happen):"
sed -n '/^| step in flight |/,/^$/p' README.md
