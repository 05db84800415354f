# shellcheck shell=bash
# Helpers of the end-to-end tests of the background worker (auto_*.sh).
# Sourced after lib/common.sh and e2e_init. Sourced, not run: scripts/test.sh
# runs only test/e2e/*.sh.
#
# Every wait is a bounded poll (E2E_WAIT seconds, default 60): a condition that
# is not met in time fails the test after printing what the worker did
# (rollback.migrations, rollback.audit_log, rollback.check_runs, the end of the
# server log). No test asserts how long anything took.

E2E_WAIT=${E2E_WAIT:-60}

# dump_state: what a failed wait prints, to stderr. Each query may fail (the
# server may be down): it says so and goes on.
dump_state() {
	{
		echo "---- rollback.migrations of $E2E_DB"
		psql -X -P pager=off -d "$E2E_DB" -c \
			"SELECT m.id, m.version, m.kind, m.status, m.checked_at IS NOT NULL AS checked, m.held_at IS NOT NULL AS held
			   FROM rollback.migration m ORDER BY m.id" || echo "(could not read)"
		echo "---- rollback.audit_log"
		psql -X -P pager=off -d "$E2E_DB" -c \
			"SELECT a.id, a.action, m.version, a.reason, a.detail
			   FROM rollback.audit_log a LEFT JOIN rollback.migration m ON m.id = a.migration_id ORDER BY a.id" ||
			echo "(could not read)"
		echo "---- rollback.check_runs"
		psql -X -P pager=off -d "$E2E_DB" -c \
			"SELECT r.batch, r.check_name, m.version, r.tag, r.status, r.severity, r.dry_run, r.detail
			   FROM rollback.check_runs r LEFT JOIN rollback.migration m ON m.id = r.migration_id ORDER BY r.id" ||
			echo "(could not read)"
		echo "---- worker: rollback._worker_pid() and pg_stat_activity"
		psql -X -P pager=off -d "$E2E_DB" -c "SELECT rollback._worker_pid() IS NOT NULL AS worker_running" \
			-c "SELECT backend_type, datname, state, left(query, 80) AS query FROM pg_stat_activity
				 WHERE backend_type LIKE 'rollback%'" || echo "(could not read)"
		echo "---- end of the server log ($RB_LOG)"
		tail -n 40 "$RB_LOG" 2>/dev/null || echo "(no log)"
	} >&2
}

# wait_until WHAT SQL [SECONDS]: poll until the boolean query SQL returns true
# in the test database (errors count as "not yet": the server may be
# restarting). Fails, after dump_state, when it does not within SECONDS.
wait_until() {
	local what=$1 query=$2 limit=${3:-$E2E_WAIT} i out
	for ((i = 0; i < limit * 10; i++)); do
		out=$(psql -X -q -A -t -d "$E2E_DB" -c "SELECT ($query)" 2>/dev/null) || out=
		if [[ "$out" == t ]]; then
			echo "ok: $what"
			return 0
		fi
		sleep 0.1
	done
	echo "FAIL [$E2E_NAME] step $E2E_STEP: not within ${limit}s: $what" >&2
	echo "(the query: $query)" >&2
	dump_state
	fail "$what: not within ${limit}s (state above)"
}

# wait_server: the server accepts connections to the test database again
# (after a crash the postmaster restarts every process and recovers).
wait_server() {
	local i
	for ((i = 0; i < E2E_WAIT * 10; i++)); do
		if psql -X -q -A -t -d "$E2E_DB" -c 'SELECT 1' >/dev/null 2>&1; then
			echo "ok: the server accepts connections"
			return 0
		fi
		sleep 0.1
	done
	tail -n 40 "$RB_LOG" >&2 || true
	fail "the server does not accept connections within ${E2E_WAIT}s"
}

# wait_worker: this database's worker runs.
wait_worker() {
	wait_until "the worker of $E2E_DB runs" "rollback._worker_pid() IS NOT NULL"
}

# migrate VERSION SQL: a migration by hand, as a tool without history table
# support would run it: begin_migration, the SQL, end_migration, one
# transaction each, in one session.
migrate() {
	echo "migration $1: $2"
	sql -c "SELECT rollback.begin_migration('$1')" -c "$2" -c "SELECT rollback.end_migration()" >/dev/null
}

# The condition "the worker is done with migration V": verified, reverted,
# or failed and left so (the last audit entry about it is not a revert
# started and not finished). Not "applied and checked": the worker commits a
# check's results (checked_at set, status still 'applied') before it decides
# and commits 'failed'.
handled_sql() {
	cat <<SQL
EXISTS (SELECT 1 FROM rollback.migration m WHERE m.version = '$1' AND m.kind = 'migration'
	AND (m.status IN ('verified', 'reverted', 'revert_failed')
		 OR (m.status = 'failed' AND (SELECT a.action FROM rollback.audit_log a WHERE a.migration_id = m.id
									   ORDER BY a.id DESC LIMIT 1) = 'check_failed')))
SQL
}

# wait_handled VERSION: the worker is done with it (see handled_sql).
wait_handled() {
	wait_until "the worker handled migration $1" "$(handled_sql "$1")"
}

# status_of VERSION: the migration's status (the migration, not its revert).
status_of() {
	sql -c "SELECT status FROM rollback.migrations WHERE version = '$1' AND kind = 'migration'"
}

# expect_status VERSION STATUS
expect_status() {
	local got
	got=$(status_of "$1")
	[[ "$got" == "$2" ]] || { dump_state; fail "migration $1 is '$got', expected '$2'"; }
	echo "ok: migration $1 is '$2'"
}

# audit_actions VERSION: the actions of the audit entries about it, in order,
# comma-separated.
audit_actions() {
	sql -c "SELECT coalesce(string_agg(a.action, ',' ORDER BY a.id), '') FROM rollback.audit_log a
			 JOIN rollback.migration m ON m.id = a.migration_id WHERE m.version = '$1' AND m.kind = 'migration'"
}

# expect_audit VERSION ACTIONS: the audit entries about it are exactly these.
expect_audit() {
	local got
	got=$(audit_actions "$1")
	[[ "$got" == "$2" ]] || { dump_state; fail "audit entries of $1: '$got', expected '$2'"; }
	echo "ok: audit entries of $1: $2"
}

# expect_sql WHAT SQL EXPECTED: the query returns exactly EXPECTED.
expect_sql() {
	local got
	got=$(sql -c "$2")
	[[ "$got" == "$3" ]] || { dump_state; fail "$1: got '$got', expected '$3'"; }
	echo "ok: $1"
}

# metric NAME: the value of an unlabelled sample of rollback.metrics().
metric() {
	sql -c "SELECT rollback.metrics()" | awk -v n="$1" '$1 == n { print $2 }'
}

# expect_metric NAME VALUE
expect_metric() {
	local got
	got=$(metric "$1")
	[[ "$got" == "$2" ]] || fail "metric $1 is '$got', expected '$2'"
	echo "ok: metric $1 $2"
}

# status_kinds: the kinds rollback.status() lists, sorted, comma-separated
# ('' when all is well).
status_kinds() {
	sql -c "SELECT coalesce(string_agg(kind || coalesce(':' || subject, ''), ',' ORDER BY kind, subject), '')
			  FROM rollback.status()"
}

# expect_status_kinds KINDS: rollback.status() lists exactly these
# (kind:subject, sorted).
expect_status_kinds() {
	local got
	got=$(status_kinds)
	if [[ "$got" != "$1" ]]; then
		show "SELECT * FROM rollback.status()"
		fail "rollback.status() lists '$got', expected '${1:-nothing}'"
	fi
	echo "ok: rollback.status() lists ${1:-nothing}"
}

# worker_barrier: a run_checks() request with no check. The worker serves
# requests one at a time and acts on a request's outcome before it serves the
# next, so when this returns, whatever an earlier request made it do is done.
worker_barrier() {
	sql -c 'SET client_min_messages = warning' -c "SELECT count(*) FROM rollback.run_checks(tag => 'e2e-barrier')" >/dev/null
}

# expect_audit_intact: rollback.verify_audit_log() says intact.
expect_audit_intact() {
	local got
	got=$(sql -c "SELECT intact || ' ' || coalesce(detail, '') FROM rollback.verify_audit_log()")
	[[ "$got" == "true " ]] || fail "rollback.verify_audit_log(): $got"
	echo "ok: the audit log's chain is intact ($(sql -c "SELECT entries FROM rollback.verify_audit_log()") entries)"
}
