#!/usr/bin/env bash
# The demo: install dependencies, build pgha, start a real 3-member Patroni lab on loopback
# (127.0.0.11-13, etcd and sshd on 127.0.0.10) and show it the way an on-call engineer would.
# Stop it with `target/release/pgha lab down` (add --wipe to delete its data).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-deps.sh
cargo build --release --locked --workspace --quiet   # pgha and the Consul double beside it
pgha=target/release/pgha

"$pgha" lab up
echo
echo "\$ pgha --env lab status"
"$pgha" --env lab status
echo
echo "\$ pgha --env lab switchover --dry-run        # the plan, its pre-checks checked live"
"$pgha" --env lab switchover --dry-run
echo
echo "\$ pgha --env lab switchover --yes            # a real switchover, verified and journaled"
"$pgha" --env lab switchover --yes < /dev/null
echo
echo "\$ pgha --env lab status"
"$pgha" --env lab status
echo
echo "\$ pgha --env lab history"
"$pgha" --env lab history
