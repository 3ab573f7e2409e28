# Sourced by the bench scripts (from the repository's root).

# `$PGHA`, or pgha built (debug, with the Consul double) into CARGO_TARGET_DIR or target/:
# sets `pgha`.
pgha_binary() {
    if [ -z "${PGHA:-}" ]; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
        cargo build --workspace --quiet
        PGHA=${CARGO_TARGET_DIR:-target}/debug/pgha
    fi
    pgha=$PGHA
}
