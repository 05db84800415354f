#!/usr/bin/env bash
# Install what `make test` and `make demo` need, on Debian 12. Idempotent:
# a fast no-op when every package is already installed.
#
# Besides the Debian packages below, the end-to-end tests (test/e2e/) use the
# real migration clients: Sqitch (Debian package `sqitch`, with DBD::Pg) and
# dbmate, installed from npm into tools/node_modules (not committed). The npm
# package `dbmate` is a small launcher (dist/cli.js) that runs the static binary
# shipped in the platform package @dbmate/<os>-<arch> (an optional dependency,
# no install script, no download at run time), so once installed it works
# offline. The e2e tests run that binary, tools/node_modules/.bin/dbmate.
set -euo pipefail

cd "$(dirname "$0")/.."

DBMATE_VERSION=2.36.0
DBMATE_DIR=tools
DBMATE_BIN=$DBMATE_DIR/node_modules/.bin/dbmate

PACKAGES=(
	postgresql-15
	postgresql-server-dev-15
	postgresql-15-cron
	postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl
	libdbd-pg-perl
	sqitch
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

# npm (for dbmate): Node's own packages ship it with nodejs; otherwise take
# Debian's. Only needed when dbmate is not installed yet.
if ! dbmate_ok=$("$DBMATE_BIN" --version 2>/dev/null) || [[ "$dbmate_ok" != *" $DBMATE_VERSION"* ]]; then
	dbmate_ok=
	if ! command -v npm >/dev/null 2>&1; then
		command -v node >/dev/null 2>&1 || missing+=(nodejs)
		missing+=(npm)
	fi
fi

if [[ ${#missing[@]} -gt 0 ]]; then
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
	sqitch --version >/dev/null || {
		echo "deps: sqitch is installed but 'sqitch --version' fails" >&2
		exit 1
	}
fi

if [[ -z "$dbmate_ok" ]]; then
	echo "deps: installing dbmate $DBMATE_VERSION from npm into $DBMATE_DIR/node_modules"
	mkdir -p "$DBMATE_DIR"
	# --no-save / --no-package-lock: nothing to commit; the version is pinned here.
	npm install --prefix "$DBMATE_DIR" --no-save --no-package-lock --no-audit --no-fund \
		--loglevel=error "dbmate@$DBMATE_VERSION"
	if ! v=$("$DBMATE_BIN" --version) || [[ "$v" != *" $DBMATE_VERSION"* ]]; then
		echo "deps: $DBMATE_BIN --version does not report $DBMATE_VERSION (got: ${v:-nothing})" >&2
		exit 1
	fi
	echo "deps: installed $v"
fi
