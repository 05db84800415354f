# shellcheck shell=bash
# Helpers of the end-to-end tests of the background worker (auto_*.sh).
# Sourced after lib/common.sh and e2e_init. Sourced, not run: scripts/test.sh
# runs only test/e2e/*.sh.
#
# Every wait is a bounded poll (E2E_WAIT seconds, default 60): a condition that
# is not met in time fails the test after printing what the worker did
# (common.sh's diagnose: rollback.migrations, rollback.audit_log,
# rollback.check_runs, status(), the end of the server log; and the workers'
# pg_stat_activity). No test asserts how long anything took.

E2E_WAIT=${E2E_WAIT:-60}

# worker_activity: what the rollback processes do (pg_stat_activity), to
# stderr.
worker_activity() {
	{
		echo "---- the rollback processes in pg_stat_activity"
		psql -X -P pager=off -d "$E2E_DB" -c "SELECT rollback._worker_pid() IS NOT NULL AS worker_of_this_database" \
			-c "SELECT backend_type, datname, state, wait_event_type, wait_event, left(query, 80) AS query
				  FROM pg_stat_activity WHERE backend_type LIKE 'rollback%' ORDER BY datname" || echo "(could not read)"
	} >&2
}

# dump_state: what a failed assertion prints, to stderr: common.sh's diagnose
# (rollback's tables, status(), the end of the server log), and
# worker_activity.
dump_state() {
	diagnose
	worker_activity
}

# wait_until WHAT CONDITION [SECONDS]: common.sh's wait_for (a bounded poll;
# an error counts as "not yet", so it also waits through a server restart)
# of the boolean SQL expression CONDITION, E2E_WAIT seconds by default; on a
# timeout it shows diagnose (wait_for), then worker_activity, and fails.
wait_until() {
	local what=$1 cond=$2 limit=${3:-$E2E_WAIT}
	if ! (wait_for "$limit" "$what" "SELECT ($cond)"); then
		worker_activity
		fail "$what: not within ${limit}s"
	fi
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
