#!/usr/bin/env bash
# Installs what pgha's lab, tests and benchmarks need on Debian 12, as root: PostgreSQL 15,
# etcd, OpenSSH server, pgBackRest, Alertmanager, Python's venv, hyperfine and GNU time.
# Idempotent and quiet when everything is present. Debian would start its own etcd,
# PostgreSQL and sshd on install; a temporary policy-rc.d stops that: the lab runs its own.
# Patroni itself comes from PyPI into a virtualenv, installed by `pgha lab up` on first use.
set -euo pipefail

packages=(
    postgresql-15 postgresql-client-15 etcd-server openssh-server openssh-client pgbackrest
    prometheus-alertmanager python3 python3-venv openssl ca-certificates curl hyperfine time
)

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (it installs Debian packages)" >&2
    exit 2
fi

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        guard=/usr/sbin/policy-rc.d
    fi
    trap '[ -z "$guard" ] || rm -f "$guard"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    echo "install-deps: no Rust toolchain found (cargo); install one with rustup" >&2
    exit 2
fi
echo "install-deps: ready"
