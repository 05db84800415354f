#!/usr/bin/env bash
# End-to-end: crash safety of the worker's automatic revert. A migration whose
# check fails is reverted by the worker; the worker is killed (SIGKILL) while
# it runs the check and while it reverts, and the server is stopped with
# `pg_ctl stop -m immediate` while it reverts. After the restart the migration
# must end reverted exactly once (one 'revert' audit entry, one revert row in
# rollback.migrations), its schema and rows exactly as before it (pg_dump of
# schema public and every row; and the table against a copy taken before the
# migration, EXCEPT ALL both ways: no row lost, none left over), never half
# reverted, and the audit log's chain intact.
#
# A SIGKILLed backend makes the postmaster stop and restart every process
# (crash recovery), so a kill of the worker is a crash of the server too.
#
#  1. mid-check: the check sleeps 3 s before it looks (the worker is caught
#     running it in pg_stat_activity); after the restart the migration is
#     still 'applied' and unchecked: the new worker checks it and reverts it.
#  1b. between the check and the decision: the worker commits the check's
#     results, then decides in a transaction of its own; a session holding
#     the lock that decision takes keeps the worker there, and it is killed.
#     After the restart the migration is checked again and reverted.
#  2. mid-revert, SIGKILL: a migration that changes 150,000 rows, so that its
#     revert takes a while; the worker is caught with the activity
#     'rollback: reverting a migration' (after 'revert_started' committed).
#     After the restart the worker starts that revert once more and finishes
#     it ('revert_started' twice, 'revert' once), or, if the kill came after
#     the revert's commit, there is nothing to do ('revert_started' once).
#  3. mid-revert, pg_ctl stop -m immediate, then the server started again:
#     the same.
#
# 1 and 1b run in one database, 2 and 3 in another (four automatic reverts in
# one database within the hour would open the circuit breaker).
#
# The test server runs with synchronous_commit = off (scripts/pgenv.sh); a
# crash may then lose the last commits, the migration's own included, which
# would make "the migration ends reverted" untestable. These databases get
# synchronous_commit = on, as a production server has it.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/worker.sh
source "$(dirname "$0")/lib/worker.sh"
# pg_start, as_pg, pg_is_running
# shellcheck source=/dev/null
source "$RB_ROOT/scripts/pgenv.sh"

e2e_init auto_faults

# Whatever happens, leave the server running for the suites after this one.
on_exit 'pg_is_running || pg_start'

# fault_db NAME: a database for these tests (dropped first if it is there),
# with synchronous_commit = on set before the extension, so that its worker
# (started at CREATE EXTENSION) has it too; schema public tracked; schema e2e
# (not tracked) for the copies and e2e.worker_doing().
fault_db() {
	psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'SET client_min_messages = warning' \
		-c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" \
		-c "CREATE DATABASE $1" \
		-c "ALTER DATABASE $1 SET synchronous_commit = on"
	E2E_DB=$1
	sql -c 'CREATE EXTENSION rollback' -c "SELECT rollback.track_schema('public')" >/dev/null
	sql <<'SQL'
CREATE SCHEMA e2e;
-- e2e.worker_doing(pattern, timeout): the pid of this database's worker as
-- soon as pg_stat_activity shows it active with a query LIKE pattern (the
-- worker reports what it does there), or NULL after timeout seconds. A loop
-- in one session, so that the worker is caught within milliseconds.
CREATE FUNCTION e2e.worker_doing(pattern text, timeout_s float8) RETURNS int
	LANGUAGE plpgsql AS $$
DECLARE
	p	int;
	t0	timestamptz := clock_timestamp();
BEGIN
	LOOP
		PERFORM pg_stat_clear_snapshot();
		SELECT a.pid INTO p FROM pg_stat_activity a
		 WHERE a.backend_type = 'rollback worker' AND a.datname = current_database()
		   AND a.state = 'active' AND a.query LIKE pattern;
		IF p IS NOT NULL OR clock_timestamp() > t0 + make_interval(secs => timeout_s) THEN
			RETURN p;
		END IF;
		PERFORM pg_sleep(0.005);
	END LOOP;
END
$$;
SQL
	wait_worker
}

# same_rows TABLE: public.TABLE has exactly the rows of e2e.TABLE_before.
same_rows() {
	local t=$1 diff extra missing now before
	diff=$(sql -c "SELECT (SELECT count(*) FROM (SELECT * FROM public.$t EXCEPT ALL SELECT * FROM e2e.${t}_before) x)
			 || ' ' || (SELECT count(*) FROM (SELECT * FROM e2e.${t}_before EXCEPT ALL SELECT * FROM public.$t) y)
			 || ' ' || (SELECT count(*) FROM public.$t) || ' ' || (SELECT count(*) FROM e2e.${t}_before)")
	read -r extra missing now before <<<"$diff"
	[[ $extra -eq 0 && $missing -eq 0 && $now -eq $before ]] ||
		fail "public.$t differs from its copy: $extra rows that were not there, $missing rows missing ($now rows now, $before before)"
	echo "ok: public.$t has exactly the rows of before ($now rows; none missing, none extra)"
}

# killed_in_log PID: the postmaster logged that PID was killed by signal 9.
killed_in_log() {
	grep -q "(PID $1) was terminated by signal 9" "$RB_LOG" ||
		fail "the server log does not say that the worker (PID $1) was killed by signal 9"
	echo "ok: the server log: the worker (PID $1) was terminated by signal 9"
}

# expect_reverted_once VERSION: reverted, one 'revert' audit entry, one revert
# row; 'revert_started' once (the revert had committed when the fault came)
# or twice (it had not: started again after the restart, attempt 2).
expect_reverted_once() {
	local v=$1 actions
	expect_status "$v" reverted
	actions=$(audit_actions "$v")
	case "$actions" in
		revert_started,revert)
			echo "ok: audit entries of $v: $actions (the revert had committed before the fault)" ;;
		revert_started,revert_started,revert)
			expect_sql "the second revert_started of $v is attempt 2" \
				"SELECT string_agg(a.detail->>'attempt', ',' ORDER BY a.id) FROM rollback.audit_log a
				   JOIN rollback.migration m ON m.id = a.migration_id WHERE m.version = '$v' AND a.action = 'revert_started'" \
				"1,2"
			echo "ok: audit entries of $v: $actions (started again after the restart, once)" ;;
		*)
			dump_state
			fail "audit entries of $v: '$actions', expected revert_started,[revert_started,]revert" ;;
	esac
	expect_sql "one revert row for $v" \
		"SELECT count(*) FROM rollback.migrations WHERE version = 'revert:$v' AND kind = 'revert'" 1
}

# ---------------------------------------------------------------------------
# Cases 1 and 1b in one database, 2 and 3 in another: four automatic reverts
# in one database within the hour would open the circuit breaker
# (rollback.max_auto_reverts = 3).
DB_CHECK=$E2E_DB
DB_REVERT=${E2E_DB}_big

step "database $DB_CHECK (synchronous_commit = on): public.accounts, 2,000 rows; a copy in schema e2e"
fault_db "$DB_CHECK"
sql -c "CREATE TABLE public.accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(12, 2), note text)" \
	-c "INSERT INTO public.accounts SELECT g, 'owner ' || g, g * 1.5, 'note ' || g FROM generate_series(1, 2000) g" \
	-c "CREATE TABLE e2e.accounts_before AS SELECT * FROM public.accounts"

# ---------------------------------------------------------------------------
step "1. mid-check: a check that sleeps 3 s, then finds the notes set to NULL"
sql -c "SELECT rollback.add_check('slow_notes',
	'SELECT NOT EXISTS (SELECT 1 FROM public.accounts a WHERE a.note IS NULL) FROM pg_catalog.pg_sleep(3) s',
	applies_to => 'slow*')" >/dev/null
capture before_slow
migrate slow1 "ALTER TABLE public.accounts ADD COLUMN flag int DEFAULT 1; UPDATE public.accounts SET note = NULL WHERE id % 7 = 0"
PID=$(sql -c "SELECT e2e.worker_doing('%pg_sleep(3)%', 30)")
[[ -n "$PID" ]] || { dump_state; fail "the worker was not seen running the check of slow1"; }
echo "the worker (PID $PID) runs the check of slow1: kill -9"
kill -9 "$PID"
wait_server
killed_in_log "$PID"
wait_worker
wait_handled slow1
expect_status slow1 reverted
expect_audit slow1 "revert_started,revert"
expect_sql "one revert row for slow1" "SELECT count(*) FROM rollback.migrations WHERE version = 'revert:slow1'" 1
expect_sql "check_runs of slow1: one result (the killed run recorded nothing), failed" \
	"SELECT string_agg(r.status, ',') FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id
	  WHERE m.version = 'slow1'" failed
capture after_slow
same_state before_slow after_slow "slow1 reverted after the worker was killed in its check"
same_rows accounts
expect_audit_intact

# ---------------------------------------------------------------------------
step "1b. between the check and the decision: the check's results are committed, the decision waits for a lock"
# The worker commits a check's results, then decides (revert or not) in a
# transaction of its own, which locks rollback.worker_state. A session that
# holds that lock keeps the worker there (its bookkeeping waits 500 ms at most
# for a lock; it is killed as soon as it is seen): it has recorded the failure
# and has not acted on it yet. (Had the wait timed out first, the decision
# would not have been committed either: the same state.)
sql -c "SELECT rollback.check_no_new_nulls('public.accounts', 'note', applies_to => 'gap*', name => 'gap_notes')" >/dev/null
capture before_gap
psql -X -q -d "$E2E_DB" -c "BEGIN" -c "SELECT 1 FROM rollback.worker_state FOR UPDATE" \
	-c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
LOCKER=$!
wait_until "a session holds the lock on rollback.worker_state" \
	"EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = 'SELECT pg_sleep(60)')"
migrate gap1 "UPDATE public.accounts SET note = NULL WHERE id % 11 = 0"
PID=$(sql -c "SELECT e2e.worker_doing('rollback: deciding on a failed migration', 30)")
[[ -n "$PID" ]] || { dump_state; fail "the worker was not seen deciding on gap1"; }
kill -9 "$PID"
echo "the worker (PID $PID) was waiting to decide on gap1: killed (kill -9)"
wait "$LOCKER" || true
wait_server
killed_in_log "$PID"
wait_worker
wait_handled gap1
expect_status gap1 reverted
expect_audit gap1 "revert_started,revert"
expect_sql "check_runs of gap1: the result committed before the kill, and the check run again after the restart" \
	"SELECT string_agg(r.status, ',') FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id
	  WHERE m.version = 'gap1'" failed,failed
capture after_gap
same_state before_gap after_gap "gap1 reverted after the worker was killed before its decision"
same_rows accounts
expect_audit_intact

# ---------------------------------------------------------------------------
step "database $DB_REVERT (synchronous_commit = on): public.big, 300,000 rows; a copy in schema e2e"
fault_db "$DB_REVERT"
sql -c "CREATE TABLE public.big (id int PRIMARY KEY, v int, pad text)" \
	-c "INSERT INTO public.big SELECT g, g, repeat('x', 50) FROM generate_series(1, 300000) g" \
	-c "CREATE TABLE e2e.big_before AS SELECT * FROM public.big"

step "2. mid-revert, SIGKILL: big1 sets v to NULL in 150,000 rows of public.big"
sql -c "SELECT rollback.add_check('big_v', 'SELECT NOT EXISTS (SELECT 1 FROM public.big b WHERE b.v IS NULL)',
	applies_to => 'big*')" >/dev/null
capture before_big
migrate big1 "UPDATE public.big SET v = NULL WHERE id % 2 = 0"
PID=$(sql -c "SELECT e2e.worker_doing('rollback: reverting a migration', 30)")
[[ -n "$PID" ]] || { dump_state; fail "the worker was not seen reverting big1"; }
echo "the worker (PID $PID) reverts big1: kill -9"
kill -9 "$PID"
wait_server
killed_in_log "$PID"
wait_worker
wait_handled big1
expect_reverted_once big1
capture after_big1
same_state before_big after_big1 "big1 reverted after the worker was killed in its revert"
same_rows big
expect_audit_intact

# ---------------------------------------------------------------------------
step "3. mid-revert, pg_ctl stop -m immediate: big2 sets v to NULL in 150,000 rows"
migrate big2 "UPDATE public.big SET v = NULL WHERE id % 2 = 1"
PID=$(sql -c "SELECT e2e.worker_doing('rollback: reverting a migration', 30)")
[[ -n "$PID" ]] || { dump_state; fail "the worker was not seen reverting big2"; }
echo "the worker (PID $PID) reverts big2: pg_ctl stop -m immediate"
as_pg pg_ctl -D "$RB_PGDATA" -m immediate -w -t 60 stop
pg_start
wait_server
wait_worker
wait_handled big2
expect_reverted_once big2
capture after_big2
same_state before_big after_big2 "big2 reverted after an immediate shutdown in its revert"
same_rows big

# ---------------------------------------------------------------------------
step "the end: nothing needs attention, the audit logs are intact, two automatic reverts in each database"
for E2E_DB in "$DB_CHECK" "$DB_REVERT"; do
	echo "database $E2E_DB:"
	show "SELECT a.id, a.action, m.version, a.reason, a.detail->>'attempt' AS attempt
		    FROM rollback.audit_log a LEFT JOIN rollback.migration m ON m.id = a.migration_id ORDER BY a.id"
	expect_status_kinds ""
	expect_audit_intact
	expect_metric 'rollback_reverts_total{trigger="check"}' 2
	expect_sql "no migration is left running, failed or half reverted" \
		"SELECT count(*) FROM rollback.migrations WHERE status NOT IN ('applied', 'verified', 'reverted')" 0
done

echo
echo "e2e auto_faults: passed"
