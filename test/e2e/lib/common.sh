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
#
# and the helpers below: step, fail, sql, show, e2e_tool, capture and
# same_state (the state of schema public), check_migrations; dbmate_init / dm
# and sqitch_init / sq (the real tools); for the tests with the worker
# (auto_*.sh): wait_for (a bounded poll that shows rollback's tables and the
# server log when it times out), listen_start / listen_wait (a LISTEN client,
# lib/listen.pl), expect_auto_revert (the audit log, NOTIFY payload and
# metrics of an automatic revert), on_exit (cleanup on any exit).

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

# On exit (passed, failed or interrupted): a tool still running goes, the
# LISTEN client too (listen_start), and each command given to on_exit runs.
E2E_TOOL_PGID=
E2E_LISTEN_PID=
E2E_ON_EXIT=()
on_exit() {
	E2E_ON_EXIT+=("$1")
}
e2e_cleanup() {
	local c
	[[ -z "$E2E_TOOL_PGID" ]] || kill -KILL -- "-$E2E_TOOL_PGID" 2>/dev/null || true
	[[ -z "$E2E_LISTEN_PID" ]] || kill -TERM "$E2E_LISTEN_PID" 2>/dev/null || true
	for c in "${E2E_ON_EXIT[@]}"; do
		eval "$c" || true
	done
}
trap e2e_cleanup EXIT

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

E2E_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---- dbmate (dbmate.sh, auto_dbmate.sh)

# urlencode S: S percent-encoded for a URL.
urlencode() {
	local s=$1 out='' c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case "$c" in
			[a-zA-Z0-9./_~-]) out+=$c ;;
			*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

# dbmate_init PROJ: dbmate's environment for the project directory PROJ and
# the test database. A URL for dbmate: it takes a unix socket directory and a
# port as query parameters (host=, port=); percent-encode what would break the
# URL. dm then runs dbmate in PROJ (it reads .env from there) and writes its
# schema dump, like a project's own runs would, to db/schema.sql.
dbmate_init() {
	DBMATE_PROJ=$1
	[[ -x "$DBMATE" ]] || fail "dbmate is not installed in $DBMATE (run scripts/deps.sh)"
	"$DBMATE" --version
	mkdir -p "$DBMATE_PROJ/db/migrations"
	DATABASE_URL="postgres://$PGUSER@/$E2E_DB?host=$(urlencode "$PGHOST")&port=$PGPORT&sslmode=disable"
	export DATABASE_URL
	unset DBMATE_MIGRATIONS_DIR DBMATE_MIGRATIONS_TABLE DBMATE_SCHEMA_FILE DBMATE_NO_DUMP_SCHEMA DBMATE_STRICT
	echo "DATABASE_URL=$DATABASE_URL"
}

dm() { (cd "$DBMATE_PROJ" && e2e_tool "$DBMATE" --migrations-dir db/migrations --schema-file db/schema.sql "$@"); }

# dbmate_expect_status APPLIED PENDING: dbmate status marks each version of
# APPLIED "[X]" and each of PENDING "[ ]" (space-separated lists), and
# --exit-code says whether anything is pending.
dbmate_expect_status() {
	local applied=$1 pending=$2 out v rc=0
	out=$(dm status 2>&1) || { echo "$out"; fail "dbmate status failed"; }
	echo "$out"
	for v in $applied; do
		grep -qE "^\[X\] ${v}_" <<<"$out" || fail "dbmate status does not report $v as applied"
	done
	for v in $pending; do
		grep -qE "^\[ \] ${v}_" <<<"$out" || fail "dbmate status does not report $v as pending"
	done
	dm status --exit-code --quiet >/dev/null 2>&1 || rc=$?
	if [[ -n "$pending" && $rc -ne 1 ]]; then fail "dbmate status --exit-code returned $rc, expected 1 (pending)"; fi
	if [[ -z "$pending" && $rc -ne 0 ]]; then fail "dbmate status --exit-code returned $rc, expected 0 (nothing pending)"; fi
	echo "ok: dbmate reports applied: ${applied:-none}; pending: ${pending:-none}"
}

# ---- Sqitch (sqitch.sh, auto_sqitch.sh)

# sqitch_init PROJ: Sqitch's environment for the project directory PROJ and
# the test database (SQITCH_TARGET_URI); sq then runs sqitch in PROJ.
sqitch_init() {
	SQITCH_PROJ=$1
	command -v sqitch >/dev/null || fail "sqitch is not installed (run scripts/deps.sh as root)"
	sqitch --version
	mkdir -p "$SQITCH_PROJ"
	SQITCH_TARGET_URI="db:pg://$PGUSER@/$E2E_DB" # host and port: PGHOST / PGPORT (libpq, for DBD::Pg and psql)
	# Sqitch reads no configuration of this machine's users.
	export SQITCH_USER_CONFIG=$E2E_DIR/sqitch-user.conf
	export SQITCH_SYSTEM_CONFIG=$E2E_DIR/sqitch-system.conf
	export SQITCH_FULLNAME='rollback e2e' SQITCH_EMAIL='e2e@rollback.invalid'
	unset SQITCH_TARGET SQITCH_CONFIG SQITCH_PASSWORD
}

sq() { e2e_tool sqitch --chdir "$SQITCH_PROJ" "$@"; }

# sqitch_expect_status LAST PENDING: Sqitch reports LAST as the last deployed
# change, and PENDING (a change name) as undeployed, or nothing pending when
# empty. `sqitch status` reads the newest sqitch.changes row of the project.
sqitch_expect_status() {
	local last=$1 pending=$2 status
	status=$(sq status "$SQITCH_TARGET_URI" 2>&1) || {
		echo "$status"
		fail "sqitch status failed"
	}
	echo "$status"
	grep -qE "^# Name: +$last\$" <<<"$status" ||
		fail "sqitch status does not report '$last' as the last deployed change"
	if [[ -n "$pending" ]]; then
		if ! grep -qE "^Undeployed changes?:" <<<"$status" || ! grep -qE "^  \* $pending\$" <<<"$status"; then
			fail "sqitch status does not report '$pending' as undeployed"
		fi
	else
		grep -q "Nothing to deploy (up-to-date)" <<<"$status" ||
			fail "sqitch status does not report the database as up to date"
	fi
	echo "ok: sqitch reports '$last' deployed${pending:+, '$pending' undeployed}"
}

# sqitch_no_orphan_dependencies: Sqitch deletes a change's
# sqitch.dependencies rows through the foreign key's ON DELETE CASCADE when
# it reverts. Rows left behind make the next deploy fail with a duplicate key
# on dependencies_pkey: the change id is the same.
sqitch_no_orphan_dependencies() {
	local left
	left=$(sql -c "SELECT count(*) FROM sqitch.dependencies d WHERE NOT EXISTS (SELECT FROM sqitch.changes c WHERE c.change_id = d.change_id)")
	[[ "$left" == 0 ]] || fail "the revert left $left sqitch.dependencies row(s) of changes no longer in sqitch.changes"
	echo "ok: no sqitch.dependencies row left without its change"
}

# ---- The worker (auto_*.sh): bounded waits, a LISTENing client, what an
# automatic revert must leave behind.

# diagnose: rollback's tables of the test database and the end of the server
# log, on stderr (a wait that timed out, a failed assertion on the worker).
diagnose() {
	{
		echo
		echo "---- rollback.migrations"
		show "SELECT m.id, m.version, m.tool, m.kind, m.status, m.point, x.checked_at, m.applied_at, m.reverted_at
		        FROM rollback.migrations m JOIN rollback.migration x USING (id) ORDER BY m.id" || true
		echo "---- rollback.audit_log"
		show "SELECT id, at, actor, action, migration_id, reason, detail FROM rollback.audit_log ORDER BY id" || true
		echo "---- rollback.check_runs"
		show "SELECT id, batch, check_name, migration_id, tag, status, runs, failures, detail, left(failing_rows::text, 200) AS failing_rows
		        FROM rollback.check_runs ORDER BY id" || true
		echo "---- rollback.status()"
		show "SELECT * FROM rollback.status()" || true
		echo "---- the last 40 lines of the server log ($RB_LOG)"
		tail -n 40 "$RB_LOG" || true
	} >&2
}

# wait_for SECONDS WHAT SQL: poll SQL (a query that returns one boolean, run
# in the test database, or in $WAIT_DB) every 0.2 s until it returns true;
# after SECONDS show diagnose and fail: "timed out waiting for WHAT".
wait_for() {
	local secs=$1 what=$2 q=$3 polls=0 got
	echo "waiting (at most ${secs}s) for: $what"
	while :; do
		got=$(psql -X -q -A -t -v ON_ERROR_STOP=1 -d "${WAIT_DB:-$E2E_DB}" -c "$q" 2>&1) || true
		if [[ "$got" == t ]]; then
			echo "ok: $what"
			return 0
		fi
		if [[ $polls -ge $((secs * 5)) ]]; then
			echo "last answer of the query: $got" >&2
			diagnose
			fail "timed out after ${secs}s waiting for: $what"
		fi
		sleep 0.2
		polls=$((polls + 1))
	done
}

# migration_is VERSION STATUS...: SQL, true when the newest migration labeled
# VERSION (kind 'migration') has one of the STATUS.
migration_is() {
	local v=$1
	shift
	local list
	list=$(printf "'%s'," "$@")
	printf "SELECT coalesce((SELECT status IN (%s) FROM rollback.migration WHERE version = '%s' AND kind = 'migration' ORDER BY id DESC LIMIT 1), false)" \
		"${list%,}" "$v"
}

# migration_checked VERSION: SQL, true once the worker has run the checks of
# the newest migration labeled VERSION (or found none to run).
migration_checked() {
	printf "SELECT coalesce((SELECT checked_at IS NOT NULL FROM rollback.migration WHERE version = '%s' AND kind = 'migration' ORDER BY id DESC LIMIT 1), false)" "$1"
}

# listen_start STOP_EVENT SECONDS: start a client that LISTENs on
# rollback_events in the test database (lib/listen.pl, DBD::Pg), in the
# background. It appends each payload as a line to $E2E_EVENTS and ends at
# the first event STOP_EVENT, or after SECONDS. Returns once it listens.
listen_start() {
	local stop=$1 secs=$2 i=0
	E2E_EVENTS=$E2E_DIR/events.jsonl
	rm -f "$E2E_EVENTS" "$E2E_DIR/listen.ready" "$E2E_DIR/listen.err"
	: >"$E2E_EVENTS"
	perl "$E2E_LIB/listen.pl" "$E2E_DB" rollback_events "$E2E_EVENTS" "$E2E_DIR/listen.ready" "$stop" "$secs" \
		2>"$E2E_DIR/listen.err" &
	E2E_LISTEN_PID=$!
	until [[ -s "$E2E_DIR/listen.ready" ]]; do
		if ! kill -0 "$E2E_LISTEN_PID" 2>/dev/null; then
			cat "$E2E_DIR/listen.err" >&2
			fail "the LISTEN client ended before it listened"
		fi
		[[ $i -lt 100 ]] || fail "the LISTEN client did not listen within 10s"
		sleep 0.1
		i=$((i + 1))
	done
	echo "a client LISTENs on rollback_events (lib/listen.pl, until a '$stop' event; payloads in $E2E_EVENTS)"
}

# listen_wait: wait for the LISTEN client to end; fail unless it received
# its STOP_EVENT. Shows the payloads it received.
listen_wait() {
	local rc=0
	wait "$E2E_LISTEN_PID" || rc=$?
	E2E_LISTEN_PID=
	echo "payloads received on rollback_events:"
	sed 's/^/  /' "$E2E_EVENTS"
	if [[ $rc -ne 0 ]]; then
		cat "$E2E_DIR/listen.err" >&2
		diagnose
		fail "the LISTEN client did not receive the event it waited for (exit $rc)"
	fi
}

# payload_get EVENT KEY: member KEY (text) of the first payload received
# whose event is EVENT.
payload_get() {
	local line
	line=$(grep -m1 -F "\"event\": \"$1\"" "$E2E_EVENTS") || fail "no '$1' payload received"
	sql -v p="$line" -v k="$2" <<'SQL'
SELECT (:'p'::jsonb) ->> :'k'
SQL
}

# metric NAME: the value of the sample NAME (with its labels, as printed) in
# rollback.metrics().
metric() {
	local out
	out=$(sql -c 'SELECT rollback.metrics()')
	awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "missing" }' <<<"$out"
}

# expect_auto_revert VERSION TRIGGER CHECK: the worker reverted the newest
# migration labeled VERSION because CHECK failed (TRIGGER: check or
# scheduled), and everything says so: the audit log has 'revert_started' then
# 'revert' for it with the trigger and the check (and nothing in between or
# after), its chain is intact, the LISTEN client received a 'reverted'
# payload that names the migration, the check, the trigger, carries the
# revert's figures and the audit entry's id and hash, and rollback.metrics()
# counts one revert of that trigger (and none of any other) with the time of
# the last revert. Sets REVERT_AUDIT_ID.
expect_auto_revert() {
	local v=$1 trigger=$2 check=$3 id got exp key val
	grep -q -F '"event": "reverted"' "$E2E_EVENTS" || { diagnose; fail "the LISTEN client received no 'reverted' payload"; }
	id=$(sql -c "SELECT id FROM rollback.migration WHERE version = '$v' AND kind = 'migration' ORDER BY id DESC LIMIT 1")
	[[ -n "$id" ]] || fail "no migration labeled '$v'"
	got=$(sql -c "SELECT status FROM rollback.migration WHERE id = $id")
	[[ "$got" == reverted ]] || { diagnose; fail "migration '$v' is '$got', expected 'reverted'"; }

	echo "audit log entries of migration '$v':"
	show "SELECT id, actor, action, reason, detail FROM rollback.audit_log WHERE migration_id = $id ORDER BY id"
	got=$(sql -c "SELECT string_agg(action || '|' || actor || '|' || coalesce(detail->>'trigger', '-') || '|' || coalesce(detail->>'check', '-'), ' ' ORDER BY id)
	                FROM rollback.audit_log WHERE migration_id = $id")
	exp="revert_started|rollback worker|$trigger|$check revert|rollback worker|$trigger|$check"
	[[ "$got" == "$exp" ]] || { diagnose; fail "audit entries of '$v': got '$got', expected '$exp'"; }
	got=$(sql -c "SELECT reason FROM rollback.audit_log WHERE migration_id = $id AND action = 'revert'")
	[[ "$got" == "check \"$check\" failed" ]] || fail "the revert's audit reason is '$got', expected 'check \"$check\" failed'"
	echo "ok: audit log: revert_started and revert by the worker, trigger '$trigger', check '$check'"
	REVERT_AUDIT_ID=$(sql -c "SELECT id FROM rollback.audit_log WHERE migration_id = $id AND action = 'revert'")

	got=$(sql -c "SELECT intact::text || '|' || entries FROM rollback.verify_audit_log()")
	[[ "$got" == "true|$(sql -c 'SELECT count(*) FROM rollback.audit_log')" ]] ||
		fail "verify_audit_log() says '$got' (intact|entries), expected an intact chain of every entry"
	echo "ok: verify_audit_log(): intact ($got)"

	got=$(payload_get reverted migration)
	[[ "$got" == "$v" ]] || fail "the 'reverted' payload names migration '$got', expected '$v'"
	got=$(payload_get reverted check)
	[[ "$got" == "$check" ]] || fail "the 'reverted' payload names check '$got', expected '$check'"
	got=$(payload_get reverted trigger)
	[[ "$got" == "$trigger" ]] || fail "the 'reverted' payload's trigger is '$got', expected '$trigger'"
	got=$(payload_get reverted audit_id)
	[[ "$got" == "$REVERT_AUDIT_ID" ]] || fail "the 'reverted' payload's audit_id is '$got', expected $REVERT_AUDIT_ID"
	got=$(payload_get reverted audit_hash)
	exp=$(sql -c "SELECT encode(hash, 'hex') FROM rollback.audit_log WHERE id = $REVERT_AUDIT_ID")
	[[ "$got" == "$exp" ]] || fail "the 'reverted' payload's audit_hash is '$got', expected the entry's '$exp'"
	for key in rows_restored rows_deleted ddl_undone quarantined duration_ms revert_id; do
		val=$(payload_get reverted "$key")
		[[ "$val" =~ ^[0-9]+(\.[0-9]+)?$ ]] || fail "the 'reverted' payload's figure '$key' is '$val', expected a number"
	done
	grep -q -F '"event": "revert_started"' "$E2E_EVENTS" || fail "no 'revert_started' payload received"
	echo "ok: NOTIFY rollback_events: 'revert_started' and 'reverted' received, the latter with the migration, the check, the figures, the audit entry"

	echo "rollback.metrics() (reverts, last revert):"
	sql -c 'SELECT rollback.metrics()' | grep -E '^rollback_(reverts_total|last_revert|circuit_open|migrations)'
	for key in check scheduled manual; do
		got=$(metric "rollback_reverts_total{trigger=\"$key\"}")
		if [[ $key == "$trigger" ]]; then exp=1; else exp=0; fi
		[[ "$got" == "$exp" ]] || fail "metrics: rollback_reverts_total{trigger=\"$key\"} is '$got', expected $exp"
	done
	got=$(metric rollback_last_revert_timestamp_seconds)
	if ! [[ "$got" =~ ^[0-9.]+$ ]] || ! awk -v x="$got" 'BEGIN { exit !(x > 0) }'; then
		fail "metrics: rollback_last_revert_timestamp_seconds is '$got', expected > 0"
	fi
	echo "ok: metrics: rollback_reverts_total{trigger=\"$trigger\"} 1, rollback_last_revert_timestamp_seconds > 0"
}
