# shellcheck shell=bash
# Shared helpers of the end-to-end tests (test/e2e/*.sh). Sourced, not run:
# scripts/test.sh runs only test/e2e/*.sh, so this file (in lib/) is no suite.
#
# Each test gets the environment of scripts/pgenv.sh from scripts/test.sh
# (PGHOST, PGPORT, PGUSER, PGDATABASE, RB_ROOT, RB_TMP, ...) with the server
# running, the extension installed and preloaded. Run by hand against a running
# server:  source scripts/pgenv.sh && pg_start && bash test/e2e/sqitch.sh
#
# A test calls e2e_init NAME first; it then has:
#   E2E_DB     its own database (dropped and created again by e2e_init)
#   E2E_DIR    a fresh work directory under $RB_TMP (kept after the run, for
#              a look at the tool's project and the captured states)
#   DBMATE     the dbmate installed by scripts/deps.sh (tools/node_modules)

if [[ -z "${RB_ROOT:-}" || -z "${PGHOST:-}" ]]; then
	# Run by hand: take the default environment (the server must be running).
	# shellcheck source=/dev/null
	source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/scripts/pgenv.sh"
fi

# Messages of the tools in English, whatever the caller's locale.
export LC_ALL=C.UTF-8 LANG=C.UTF-8
unset LANGUAGE

export DBMATE=$RB_ROOT/tools/node_modules/.bin/dbmate
# Every call of a client tool is bounded: a tool that waits on a lock forever
# (see e2e_tool) fails the test instead of hanging `make test`.
E2E_TOOL_TIMEOUT=${E2E_TOOL_TIMEOUT:-120}

E2E_NAME=e2e
E2E_STEP=0

step() {
	E2E_STEP=$((E2E_STEP + 1))
	echo
	echo "--- [$E2E_NAME] step $E2E_STEP: $*"
}

fail() {
	echo >&2
	echo "FAIL [$E2E_NAME] step $E2E_STEP: $*" >&2
	exit 1
}

# Any command that fails under set -e says where (errtrace: in functions too).
set -o errtrace
trap 'rc=$?; echo "FAIL [$E2E_NAME] step $E2E_STEP: command failed (exit $rc) at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2' ERR

# sql SQL...: run SQL in the test database; unaligned, tuples only.
sql() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$E2E_DB" "$@"
}

# show SQL: run SQL in the test database and print the result as a table.
show() {
	psql -X -q -v ON_ERROR_STOP=1 -P pager=off -d "$E2E_DB" -c "$1"
}

# e2e_tool CMD...: run a client tool with a time limit. On a timeout, show what
# the sessions of the test database wait for (before the tool is killed, so
# that its sessions are still there), then kill the tool and its children.
e2e_tool() {
	local rc=0 pid waited=0
	echo "\$ $*"
	# Its own process group (setsid), so that psql children go with it.
	setsid "$@" &
	pid=$!
	E2E_TOOL_PGID=$pid
	while kill -0 "$pid" 2>/dev/null; do
		if [[ $waited -ge $((E2E_TOOL_TIMEOUT * 10)) ]]; then
			echo >&2
			echo "[$E2E_NAME] '$1' did not finish within ${E2E_TOOL_TIMEOUT}s; sessions of $E2E_DB:" >&2
			psql -X -P pager=off -d "$E2E_DB" -c "
				SELECT a.pid, a.application_name AS app, a.state, a.wait_event_type AS wait,
				       a.wait_event, pg_blocking_pids(a.pid) AS blocked_by,
				       left(regexp_replace(a.query, '\s+', ' ', 'g'), 100) AS query
				  FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()" \
				-c "SELECT l.pid, l.locktype, coalesce(l.relation::regclass::text, l.objid::text) AS what, l.mode, l.granted
				  FROM pg_locks l JOIN pg_stat_activity a USING (pid)
				 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
				   AND l.locktype IN ('relation', 'advisory') AND (NOT l.granted OR l.mode <> 'AccessShareLock')
				   AND coalesce(l.relation, 0) NOT IN (SELECT oid FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace)
				 ORDER BY l.granted, l.pid" >&2 || true
			kill -TERM -- "-$pid" 2>/dev/null || true
			sleep 2
			kill -KILL -- "-$pid" 2>/dev/null || true
			wait "$pid" || true
			E2E_TOOL_PGID=
			echo "[$E2E_NAME] '$1' killed after ${E2E_TOOL_TIMEOUT}s (E2E_TOOL_TIMEOUT)" >&2
			return 124
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	wait "$pid" || rc=$?
	E2E_TOOL_PGID=
	return "$rc"
}

# A tool still running when the test exits (interrupted) goes too.
E2E_TOOL_PGID=
trap '[[ -z "$E2E_TOOL_PGID" ]] || kill -KILL -- "-$E2E_TOOL_PGID" 2>/dev/null || true' EXIT

e2e_init() {
	E2E_NAME=$1
	E2E_DB=rb_e2e_$1
	mkdir -p "$RB_TMP"
	E2E_DIR=$RB_TMP/e2e_$1
	rm -rf "$E2E_DIR"
	mkdir -p "$E2E_DIR"

	step "database $E2E_DB with the extension, schema public tracked (work dir $E2E_DIR)"
	psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'SET client_min_messages = warning' \
		-c "DROP DATABASE IF EXISTS $E2E_DB WITH (FORCE)" \
		-c "CREATE DATABASE $E2E_DB"
	sql -c 'CREATE EXTENSION rollback'
	local n
	n=$(sql -c "SELECT rollback.track_schema('public')")
	echo "track_schema('public') = $n"
}

# capture NAME: write the state of schema public to $E2E_DIR/NAME.schema (its
# pg_dump --schema-only) and $E2E_DIR/NAME.data (every row of every table as
# JSON, sorted, so independent of physical order and of column order; and the
# value every sequence's nextval would return: last_value 3 with is_called and
# last_value 4 without are the same state, as setval(s, 3) and ALTER SEQUENCE s
# RESTART WITH 4 leave it).
capture() {
	local name=$1
	# PostgreSQL 15.14+ pg_dump writes \restrict / \unrestrict with a random key.
	pg_dump --schema-only --schema=public --no-owner -d "$E2E_DB" |
		grep -v -E '^\\(un)?restrict |^-- Dumped (from|by) ' >"$E2E_DIR/$name.schema"
	sql >"$E2E_DIR/$name.data" <<'SQL'
SELECT format('SELECT %L || '' '' || coalesce(string_agg(to_jsonb(r)::text, E''\n  '' ORDER BY to_jsonb(r)::text), ''(no rows)'') FROM %I.%I r',
              'table ' || c.relname || ':' || E'\n ', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
 ORDER BY c.relname
\gexec
SELECT format('SELECT %L || CASE WHEN is_called THEN last_value + %s ELSE last_value END FROM %I.%I',
              'sequence ' || c.relname || ': next value ', s.seqincrement, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
 WHERE n.nspname = 'public' AND c.relkind = 'S'
 ORDER BY c.relname
\gexec
SQL
	echo "captured state '$name': $(grep -c '^CREATE' "$E2E_DIR/$name.schema") CREATE statements, $(grep -c '^  {' "$E2E_DIR/$name.data") rows"
}

# same_state A B WHAT: fail unless the captured states A and B are equal.
same_state() {
	local a=$1 b=$2 what=$3 ext ok=1
	for ext in schema data; do
		if ! diff -u "$E2E_DIR/$a.$ext" "$E2E_DIR/$b.$ext" >"$E2E_DIR/$a-vs-$b.$ext.diff"; then
			echo "---- $ext differs ($E2E_DIR/$a.$ext vs $E2E_DIR/$b.$ext):" >&2
			cat "$E2E_DIR/$a-vs-$b.$ext.diff" >&2
			ok=0
		fi
	done
	[[ $ok -eq 1 ]] || fail "$what: the state of schema public after '$b' is not the state after '$a' (diff above)"
	echo "ok: $what (schema dump and table contents equal)"
}

# different_state A B WHAT: a sanity check that the migration changed something.
different_state() {
	if cmp -s "$E2E_DIR/$1.schema" "$E2E_DIR/$2.schema" && cmp -s "$E2E_DIR/$1.data" "$E2E_DIR/$2.data"; then
		fail "$3: states '$1' and '$2' are equal, so the test would prove nothing"
	fi
}

show_migrations() {
	echo "rollback.migrations:"
	show 'SELECT version, tool, status FROM rollback.migrations ORDER BY id'
}

# migrations_list: "version|tool|status" per migration, in id order.
migrations_list() {
	sql -c "SELECT coalesce(version, '<null>') || '|' || coalesce(tool, '<null>') || '|' || status FROM rollback.migrations ORDER BY id"
}

# check_migrations EXPECTED...: each EXPECTED is "version|tool|status-regex";
# the labeled migrations (the rows from the first one whose version is the
# first EXPECTED's) must be exactly these, in this order. Rows before it (e.g.
# a tool creating its history table in a transaction of its own) are shown but
# allowed.
check_migrations() {
	local rows=() line i=0 first=${1%%|*} started=0 exp ver tool st
	mapfile -t rows < <(migrations_list)
	local got=()
	for line in "${rows[@]}"; do
		if [[ $started -eq 0 && "${line%%|*}" == "$first" ]]; then started=1; fi
		if [[ $started -eq 1 ]]; then got+=("$line"); else echo "note: migration before the tool's first: $line"; fi
	done
	if [[ ${#got[@]} -ne $# ]]; then
		fail "rollback.migrations from version '$first' on: expected $# rows ($*), got ${#got[@]}: ${got[*]:-none}"
	fi
	for exp in "$@"; do
		ver=${exp%%|*}; tool=${exp#*|}; st=${tool#*|}; tool=${tool%%|*}
		line=${got[$i]}
		if [[ "${line%%|*}" != "$ver" ]]; then
			fail "migration $((i + 1)) of the tool: version is '${line%%|*}', expected '$ver' (row: $line)"
		fi
		if [[ "$(cut -d'|' -f2 <<<"$line")" != "$tool" ]]; then
			fail "migration '$ver': tool is '$(cut -d'|' -f2 <<<"$line")', expected '$tool' (row: $line)"
		fi
		if ! [[ "$(cut -d'|' -f3 <<<"$line")" =~ ^($st)$ ]]; then
			fail "migration '$ver': status is '$(cut -d'|' -f3 <<<"$line")', expected $st (row: $line)"
		fi
		i=$((i + 1))
	done
	echo "ok: rollback.migrations has $*"
}

# revert_last: rollback.revert_migration() (the last migration), after a dry
# run that must change nothing.
revert_last() {
	local label=$1
	step "rollback.revert_migration(dry_run => true): the plan, nothing changed"
	show "SELECT * FROM rollback.revert_migration(dry_run => true)"
	capture after_dry_run
	same_state after_m2 after_dry_run "a dry run changes nothing"

	step "rollback.revert_migration(): revert the last migration ($label)"
	show "SELECT * FROM rollback.revert_migration(reason => 'e2e $E2E_NAME')"
	capture after_revert
}
