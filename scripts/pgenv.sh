# shellcheck shell=bash
# A throwaway PostgreSQL 15 server for tests and the demo. Source this file:
#
#   source scripts/pgenv.sh
#   trap pg_stop EXIT
#   pg_fresh            # or pg_start to reuse an existing data directory
#   psql -c 'select 1'  # PGHOST/PGPORT/PGUSER/PGDATABASE point at the server
#
# Settings (environment):
#   RB_TMP      where the server lives (default: <repo>/tmp)
#   RB_PORT     port (default 54329); the server listens on a unix socket only
#   RB_PRELOAD  shared_preload_libraries (default 'rollback,pg_cron');
#               e.g. RB_PRELOAD= to start a server before the extension builds
#   RB_DESTDIR  install into this copy of the PostgreSQL tree instead of the
#               system one (`make install DESTDIR=...`), and run the server and
#               clients from it; it must hold a copy of /usr/lib/postgresql/15
#               and /usr/share/postgresql/15 (default: empty, the system tree)
#
# The server runs as the `postgres` OS user when we are root (PostgreSQL
# refuses to run as root); clients run as whoever we are.

RB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RB_TMP=${RB_TMP:-$RB_ROOT/tmp}
RB_PORT=${RB_PORT:-54329}
RB_PRELOAD=${RB_PRELOAD-rollback,pg_cron}
RB_PGDATA=$RB_TMP/pgdata
RB_SOCK=$RB_TMP/sock
RB_LOG=$RB_TMP/server.log
RB_DESTDIR=${RB_DESTDIR-}
RB_PGBIN=$RB_DESTDIR/usr/lib/postgresql/15/bin
export RB_ROOT RB_TMP RB_PORT RB_PRELOAD RB_PGDATA RB_SOCK RB_LOG RB_DESTDIR RB_PGBIN

case ":$PATH:" in
	*":$RB_PGBIN:"*) ;;
	*) PATH=$RB_PGBIN:$PATH ;;
esac
export PATH

# Clients: point libpq at our server, and nothing else.
unset PGHOSTADDR PGSERVICE PGSERVICEFILE PGPASSWORD PGPASSFILE PGSSLMODE PGOPTIONS
export PGHOST=$RB_SOCK
export PGPORT=$RB_PORT
export PGUSER=postgres
export PGDATABASE=postgres

# as_pg CMD...: run CMD as the postgres OS user if we are root, else as ourselves.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$RB_TMP" && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# Make sure RB_TMP and its subdirectories exist, belong to the server's user,
# and that the postgres user can reach them (o+x on parent directories).
_rb_prepare_dirs() {
	mkdir -p "$RB_TMP" "$RB_SOCK"
	chmod 700 "$RB_SOCK"
	if [[ $(id -u) -ne 0 ]]; then
		return 0
	fi
	if ! getent passwd postgres >/dev/null; then
		echo "pgenv: there is no 'postgres' OS user (is postgresql-15 installed? run scripts/deps.sh)" >&2
		return 1
	fi
	chown postgres: "$RB_TMP" "$RB_SOCK"
	if [[ -d "$RB_PGDATA" ]]; then chown -R postgres: "$RB_PGDATA"; fi
	if [[ -e "$RB_LOG" ]]; then chown postgres: "$RB_LOG"; fi
	if ! runuser -u postgres -- test -w "$RB_TMP" -a -x "$RB_TMP"; then
		local dir
		dir=$(dirname "$RB_TMP")
		while [[ "$dir" != / ]]; do
			if ! runuser -u postgres -- test -x "$dir"; then
				echo "pgenv: chmod o+x $dir (so that the postgres user can reach $RB_TMP)"
				chmod o+x "$dir"
			fi
			dir=$(dirname "$dir")
		done
	fi
	if ! runuser -u postgres -- test -w "$RB_TMP"; then
		echo "pgenv: the postgres user cannot write to $RB_TMP" >&2
		return 1
	fi
}

# Settings rewritten on every start, so that RB_PORT / RB_PRELOAD changes apply
# to an existing data directory too.
_rb_write_conf() {
	cat >"$RB_PGDATA/rollback_test.conf" <<EOF
# Written by scripts/pgenv.sh on every start; edits are lost.
port = $RB_PORT
listen_addresses = ''
unix_socket_directories = '$RB_SOCK'
shared_preload_libraries = '$RB_PRELOAD'
cron.database_name = 'postgres'
cron.host = '$RB_SOCK'
max_prepared_transactions = 10
# one rollback worker per database with the extension, plus the launcher
max_worker_processes = 32
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres: "$RB_PGDATA/rollback_test.conf"
	fi
}

pg_is_running() {
	[[ -f "$RB_PGDATA/postmaster.pid" ]] && as_pg pg_ctl -D "$RB_PGDATA" status >/dev/null 2>&1
}

pg_start() {
	_rb_prepare_dirs || return 1
	if [[ ! -f "$RB_PGDATA/PG_VERSION" ]]; then
		rm -rf "$RB_PGDATA"
		echo "pgenv: initdb $RB_PGDATA"
		as_pg initdb -D "$RB_PGDATA" -U postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 --no-sync >"$RB_TMP/initdb.log" 2>&1 || {
			cat "$RB_TMP/initdb.log" >&2
			return 1
		}
		echo "include_if_exists = 'rollback_test.conf'" >>"$RB_PGDATA/postgresql.conf"
	fi
	if pg_is_running; then
		# A server left over from an interrupted run: restart it with our settings.
		pg_stop
	fi
	_rb_write_conf
	echo "pgenv: starting server (port $RB_PORT, socket dir $RB_SOCK, preload '$RB_PRELOAD', log $RB_LOG)"
	if ! as_pg pg_ctl -D "$RB_PGDATA" -l "$RB_LOG" -w -t 60 start >/dev/null; then
		echo "pgenv: server did not start; end of $RB_LOG:" >&2
		tail -n 30 "$RB_LOG" >&2 || true
		return 1
	fi
}

# Stop the server (fast shutdown). Safe to call when it is not running.
pg_stop() {
	if pg_is_running; then
		as_pg pg_ctl -D "$RB_PGDATA" -m fast -w -t 60 stop >/dev/null || true
		echo "pgenv: server stopped"
	fi
}

# A new, empty cluster: stop, remove the data directory and the log, start.
pg_fresh() {
	pg_stop
	rm -rf "$RB_PGDATA" "$RB_LOG"
	pg_start
}

# Start the server if it is not running (e.g. a test crashed or stopped it).
pg_ensure() {
	pg_is_running || pg_start
}

# rb_setup: what `make demo` and `make test` both do first: install what is
# missing, build and install the extension, start a fresh throwaway server
# (stopped again when the calling script exits).
rb_setup() {
	bash scripts/deps.sh
	# The system's pg_config, also with RB_DESTDIR: the copy's would report
	# paths inside the copy, which DESTDIR would then prefix a second time.
	local pg_config=/usr/lib/postgresql/15/bin/pg_config
	echo "== build"
	make -j"$(nproc)" PG_CONFIG="$pg_config"
	echo "== install${RB_DESTDIR:+ into $RB_DESTDIR}"
	if ! make install PG_CONFIG="$pg_config" ${RB_DESTDIR:+DESTDIR="$RB_DESTDIR"}; then
		echo "make install failed (it writes into $(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib); run as root)" >&2
		exit 1
	fi
	trap pg_stop EXIT
	trap 'exit 130' INT TERM
	pg_fresh
}
