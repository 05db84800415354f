#!/usr/bin/env bash
# Install what `make test` and `make demo` need, on Debian 12. Idempotent:
# a fast no-op when every package is already installed.
set -euo pipefail

PACKAGES=(
	postgresql-15
	postgresql-server-dev-15
	postgresql-15-cron
	postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl
	libdbd-pg-perl
	build-essential
	make
	gcc
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	# "ii " = wanted install, currently installed; anything else is missing
	# (not known, removed with config files left, half-installed, ...).
	if [[ "$status" != ii* ]]; then
		missing+=("$pkg")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	exit 0
fi

echo "deps: missing packages: ${missing[*]}"

if [[ $(id -u) -ne 0 ]]; then
	echo "deps: not running as root, so cannot install them." >&2
	echo "deps: run as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
