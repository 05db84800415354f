#!/usr/bin/env bash
# End-to-end: the worker's decisions on a migration whose check failed, and the
# controls a person has over them, with the worker running as in production
# (nothing here calls the worker; it is woken by the migrations' commits).
#
#  0. CREATE EXTENSION in a transaction that commits later still gets its
#     database a worker.
#  1. Circuit breaker (rollback.max_auto_reverts, default 3): four bad
#     migrations in a row; three are reverted, the fourth is left 'failed'
#     with the breaker open (audit, status(), metrics); rollback.resume()
#     closes it, and the next bad migration is reverted again.
#  2. rollback.pause(): a bad migration is left 'failed', not reverted.
#  3. rollback.hold() on a migration while it runs: left 'failed', and a
#     run_checks() of it does not revert it either; after release(),
#     status() shows it again and run_checks() of it reverts it.
#  4. A failing check with dry_run => true never acts.
#  5. A failing warning-severity check never acts.
#  6. rollback.auto_revert = off (ALTER SYSTEM, reload): 'failed' and an
#     alert, not reverted.
#  7. A revert that cannot get a table's lock within
#     rollback.revert_lock_timeout: tried once more at the next pass, which
#     succeeds once the lock is released; 'revert_failed' when the second
#     attempt times out too.
#  8. Retention: a point and check results older than rollback.retention
#     are purged (made old by hand); the check counters do not go down.
#
# Migrations are plain SQL between rollback.begin_migration() and
# rollback.end_migration(); each section's checks apply only to its own
# migrations (applies_to 'cb*', 'pause*', ...). A migration left failed is
# reverted by hand (rollback.revert_migration()) before the next section, so
# that each starts from the same rows.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/worker.sh
source "$(dirname "$0")/lib/worker.sh"

e2e_init auto_control

# If the test stops halfway through section 6, rollback.auto_revert must not
# stay off for the suites after it (ALTER SYSTEM outlives the server).
AUTO_REVERT_SET=0
reset_auto_revert() {
	if [[ $AUTO_REVERT_SET -eq 1 ]]; then
		psql -X -q -d postgres -c 'ALTER SYSTEM RESET rollback.auto_revert' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1 || true
	fi
}
on_exit reset_auto_revert
LOCK_TIMEOUT_SET=0
reset_lock_timeout() {
	if [[ $LOCK_TIMEOUT_SET -eq 1 ]]; then
		psql -X -q -d postgres -c 'ALTER SYSTEM RESET rollback.revert_lock_timeout' \
			-c 'ALTER SYSTEM RESET rollback.max_auto_reverts' -c 'SELECT pg_reload_conf()' >/dev/null 2>&1 || true
	fi
}
on_exit reset_lock_timeout

# fingerprint: the rows of public.customers, as one hash.
fingerprint() {
	sql -c "SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM public.customers c"
}

# null_emails: how many rows of public.customers have no email.
null_emails() {
	sql -c "SELECT count(*) FROM public.customers WHERE email IS NULL"
}

# revert_by_hand VERSION: rollback.revert_migration() of it; back to the
# rows of before.
revert_by_hand() {
	echo "rollback.revert_migration('$1'):"
	show "SELECT step, action, rows FROM rollback.revert_migration('$1', reason => 'e2e $E2E_NAME: by hand')"
	expect_status "$1" reverted
	[[ "$(fingerprint)" == "$BEFORE" ]] || fail "after the revert of $1, public.customers is not as before"
	echo "ok: public.customers is as before $1"
}

# ---------------------------------------------------------------------------
step "0. a database whose CREATE EXTENSION commits a while after it ran gets its worker"
LATE_DB=${E2E_DB}_late
psql -X -q -v ON_ERROR_STOP=1 -d postgres \
	-c 'SET client_min_messages = warning' \
	-c "DROP DATABASE IF EXISTS $LATE_DB WITH (FORCE)" \
	-c "CREATE DATABASE $LATE_DB"
# The install script asks for the worker; a worker started before the commit
# would not see the extension.
psql -X -q -v ON_ERROR_STOP=1 -d "$LATE_DB" -c 'BEGIN' -c 'CREATE EXTENSION rollback' \
	-c 'SELECT pg_sleep(1)' -c 'COMMIT' >/dev/null
(E2E_DB=$LATE_DB wait_worker)
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE $LATE_DB WITH (FORCE)"

# ---------------------------------------------------------------------------
step "the worker of $E2E_DB, and public.customers (200 rows, every email set)"
wait_worker
sql -c "CREATE TABLE public.customers (id int PRIMARY KEY, email text)" \
	-c "INSERT INTO public.customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 200) g"
BEFORE=$(fingerprint)
expect_status_kinds ""
expect_metric rollback_circuit_open 0
echo "rollback.max_auto_reverts = $(sql -c 'SHOW rollback.max_auto_reverts')"
[[ "$(sql -c 'SHOW rollback.max_auto_reverts')" == 3 ]] || fail "rollback.max_auto_reverts is not its default 3"

# ---------------------------------------------------------------------------
step "1. circuit breaker: check_no_new_nulls(customers, email) for cb*; four bad migrations in a row"
sql -c "SELECT rollback.check_no_new_nulls('public.customers', 'email', applies_to => 'cb*')"
for i in 1 2 3; do
	migrate "cb$i" "UPDATE public.customers SET email = NULL WHERE id % 4 = $((i - 1))"
	wait_handled "cb$i"
	expect_status "cb$i" reverted
	expect_audit "cb$i" "revert_started,revert"
	[[ "$(fingerprint)" == "$BEFORE" ]] || fail "after the revert of cb$i, public.customers is not as before"
	echo "ok: public.customers is as before cb$i"
done
expect_sql "three automatic reverts, trigger 'check', check no_new_nulls" \
	"SELECT count(*) FROM rollback.audit_log WHERE action = 'revert' AND detail->>'trigger' = 'check'
	    AND detail->>'check' = 'no_new_nulls:public.customers:email'" 3
expect_sql "the breaker is still closed" "SELECT circuit_open FROM rollback.worker_state" f

migrate cb4 "UPDATE public.customers SET email = NULL WHERE id % 4 = 3"
wait_handled cb4
expect_status cb4 failed
expect_audit cb4 "circuit_open,check_failed"
expect_sql "rollback.worker_state.circuit_open" "SELECT circuit_open AND circuit_opened_at IS NOT NULL FROM rollback.worker_state" t
expect_sql "the check_failed entry says why cb4 was not reverted" \
	"SELECT a.reason = 'check \"no_new_nulls:public.customers:email\" failed; not reverted: the circuit breaker opened: 3 automatic reverts within rollback.circuit_window'
	        AND NOT (a.detail->>'reverted')::bool
	   FROM rollback.audit_log a WHERE a.action = 'check_failed'" t
expect_sql "the circuit_open entry has the figures" \
	"SELECT (detail->>'reverts_in_window')::int = 3 AND (detail->>'max_auto_reverts')::int = 3
	   FROM rollback.audit_log WHERE action = 'circuit_open'" t
[[ "$(null_emails)" == 50 ]] || fail "cb4 should still be applied (50 rows without email), got $(null_emails)"
echo "ok: cb4 is still applied (50 rows without email)"
show "SELECT kind, subject, detail FROM rollback.status() ORDER BY kind"
expect_status_kinds "circuit_open,migration_failed:cb4"
expect_metric rollback_circuit_open 1
expect_metric 'rollback_reverts_total{trigger="check"}' 3

step "1. rollback.resume() closes the breaker"
sql -c "SELECT rollback.resume()"
expect_sql "rollback.worker_state: closed, reset" \
	"SELECT NOT circuit_open AND circuit_opened_at IS NULL AND circuit_reset_at IS NOT NULL FROM rollback.worker_state" t
expect_sql "audit entry 'resume' (the circuit was open)" \
	"SELECT (detail->>'circuit_was_open')::bool FROM rollback.audit_log WHERE action = 'resume' ORDER BY id DESC LIMIT 1" t
expect_metric rollback_circuit_open 0
expect_status_kinds "migration_failed:cb4"

step "1. cb4 reverted by hand; rollback.status() is empty"
revert_by_hand cb4
expect_status_kinds ""
expect_metric 'rollback_reverts_total{trigger="manual"}' 1

step "1. after resume() the worker reverts again: a fifth bad migration"
migrate cb5 "UPDATE public.customers SET email = NULL WHERE id % 5 = 0"
wait_handled cb5
expect_status cb5 reverted
expect_audit cb5 "revert_started,revert"
[[ "$(fingerprint)" == "$BEFORE" ]] || fail "after the revert of cb5, public.customers is not as before"
expect_sql "the breaker is closed" "SELECT circuit_open FROM rollback.worker_state" f
expect_status_kinds ""

# ---------------------------------------------------------------------------
step "2. rollback.pause('maintenance'): a bad migration is left failed, not reverted"
sql -c "SELECT rollback.check_no_new_nulls('public.customers', 'email', applies_to => 'pause*', name => 'pause_nulls')"
sql -c "SELECT rollback.pause('maintenance')"
expect_sql "audit entry 'pause'" "SELECT reason FROM rollback.audit_log WHERE action = 'pause' ORDER BY id DESC LIMIT 1" maintenance
expect_metric rollback_paused 1
migrate pause1 "UPDATE public.customers SET email = NULL WHERE id <= 10"
wait_handled pause1
expect_status pause1 failed
expect_audit pause1 check_failed
expect_sql "the check_failed entry says: paused" \
	"SELECT a.reason FROM rollback.audit_log a JOIN rollback.migration m ON m.id = a.migration_id
	  WHERE m.version = 'pause1' AND a.action = 'check_failed'" \
	'check "pause_nulls" failed; not reverted: automatic reverts are paused (maintenance)'
[[ "$(null_emails)" == 10 ]] || fail "pause1 should still be applied (10 rows without email), got $(null_emails)"
echo "ok: pause1 is still applied"
expect_status_kinds "migration_failed:pause1,paused:$PGUSER"

step "2. rollback.resume(); pause1 is left to a person: reverted by hand"
sql -c "SELECT rollback.resume()"
expect_sql "audit entry 'resume' (was paused)" \
	"SELECT (detail->>'was_paused')::bool AND NOT (detail->>'circuit_was_open')::bool
	   FROM rollback.audit_log WHERE action = 'resume' ORDER BY id DESC LIMIT 1" t
expect_metric rollback_paused 0
expect_status_kinds "migration_failed:pause1"
revert_by_hand pause1
expect_status_kinds ""

# ---------------------------------------------------------------------------
step "3. rollback.hold() on a migration while it runs: its failed check does not revert it"
sql -c "SELECT rollback.check_no_new_nulls('public.customers', 'email', applies_to => 'hold*', name => 'hold_nulls')"
# The migration's session reads its statements from a FIFO, so that it can be
# held between its begin and its end (the worker checks it at its commit).
mkfifo "$E2E_DIR/hold.fifo"
psql -X -q -v ON_ERROR_STOP=1 -d "$E2E_DB" <"$E2E_DIR/hold.fifo" >"$E2E_DIR/hold.out" 2>&1 &
HOLD_PSQL=$!
trap '' PIPE
exec 3>"$E2E_DIR/hold.fifo"
echo "SELECT rollback.begin_migration('hold1');" >&3
wait_until "hold1 is running" "EXISTS (SELECT 1 FROM rollback.migrations WHERE version = 'hold1' AND status = 'running')"
sql -c "SELECT rollback.hold('hold1')"
echo "UPDATE public.customers SET email = NULL WHERE id > 190;" >&3
echo "SELECT rollback.end_migration();" >&3
exec 3>&-
trap - PIPE
wait "$HOLD_PSQL" || { cat "$E2E_DIR/hold.out" >&2; fail "the session of hold1 failed"; }
wait_handled hold1
expect_status hold1 failed
expect_audit hold1 "hold,check_failed"
expect_sql "the check_failed entry says: held" \
	"SELECT a.reason FROM rollback.audit_log a JOIN rollback.migration m ON m.id = a.migration_id
	  WHERE m.version = 'hold1' AND a.action = 'check_failed'" \
	'check "hold_nulls" failed; not reverted: the migration is held'
[[ "$(null_emails)" == 10 ]] || fail "hold1 should still be applied (10 rows without email), got $(null_emails)"
echo "ok: hold1 is still applied"
# held: a person has it in hand, status() does not call for attention
expect_status_kinds ""

step "3. rollback.run_checks(migration => 'hold1') fails; the worker acts on it: still held, not reverted"
run_checks_fails() {
	if sql -c "SELECT * FROM rollback.run_checks(migration => '$1')" >"$E2E_DIR/run_checks.out" 2>&1; then
		cat "$E2E_DIR/run_checks.out"
		fail "run_checks(migration => '$1') did not raise"
	fi
	cat "$E2E_DIR/run_checks.out"
	grep -q "check \"$2\" failed" "$E2E_DIR/run_checks.out" || fail "run_checks raised something else"
}
run_checks_fails hold1 hold_nulls
# the worker answers run_checks(), then acts: done when the next request is served
worker_barrier
expect_sql "two failed runs of hold_nulls for hold1 (at the commit, and run_checks)" \
	"SELECT count(*) FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id
	  WHERE m.version = 'hold1' AND r.check_name = 'hold_nulls' AND r.status = 'failed'" 2
expect_status hold1 failed
expect_audit hold1 "hold,check_failed,check_failed"
[[ "$(null_emails)" == 10 ]] || fail "hold1 should still be applied"
echo "ok: hold1 is still applied"

step "3. rollback.release('hold1'): status() shows it again; run_checks(migration => 'hold1') now reverts it"
sql -c "SELECT rollback.release('hold1')"
expect_audit hold1 "hold,check_failed,check_failed,release"
expect_sql "hold1 is no longer held" "SELECT held_at IS NULL AND held_by IS NULL FROM rollback.migration WHERE version = 'hold1'" t
expect_status_kinds "migration_failed:hold1"
run_checks_fails hold1 hold_nulls
wait_handled hold1
expect_status hold1 reverted
expect_audit hold1 "hold,check_failed,check_failed,release,revert_started,revert"
[[ "$(fingerprint)" == "$BEFORE" ]] || fail "after the revert of hold1, public.customers is not as before"
echo "ok: public.customers is as before hold1"
expect_status_kinds ""

# ---------------------------------------------------------------------------
step "4. a failing check with dry_run => true never acts"
sql -c "SELECT rollback.add_check('dry_nulls', 'SELECT c.id FROM public.customers c WHERE c.email IS NULL',
		applies_to => 'dry*', dry_run => true)"
migrate dry1 "UPDATE public.customers SET email = NULL WHERE id IN (7, 8, 9)"
wait_handled dry1
expect_status dry1 verified
expect_audit dry1 ""
expect_sql "check_runs: dry_nulls failed for dry1, as a dry run, with its failing rows" \
	"SELECT r.status || ' ' || r.dry_run || ' ' || jsonb_array_length(r.failing_rows)
	   FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id WHERE m.version = 'dry1'" \
	"failed true 3"
[[ "$(null_emails)" == 3 ]] || fail "dry1 should still be applied"
expect_status_kinds ""
revert_by_hand dry1

# ---------------------------------------------------------------------------
step "5. a failing warning-severity check never acts"
sql -c "SELECT rollback.add_check('warn_nulls', 'SELECT c.id FROM public.customers c WHERE c.email IS NULL',
		applies_to => 'warn*', severity => 'warning')"
migrate warn1 "UPDATE public.customers SET email = NULL WHERE id IN (17, 18)"
wait_handled warn1
expect_status warn1 verified
expect_audit warn1 ""
expect_sql "check_runs: warn_nulls failed for warn1, severity warning" \
	"SELECT r.status || ' ' || r.severity || ' ' || r.dry_run
	   FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id WHERE m.version = 'warn1'" \
	"failed warning false"
[[ "$(null_emails)" == 2 ]] || fail "warn1 should still be applied"
expect_status_kinds ""
revert_by_hand warn1

# ---------------------------------------------------------------------------
# The worker reloads its configuration at the top of its loop. A new session
# seeing the new value means the postmaster has signalled the worker; two
# run_checks() requests then make sure that any pass that began before the
# signal is over, so the next migration is checked with the new value.
set_auto_revert() {
	if [[ $1 == off ]]; then
		AUTO_REVERT_SET=1
		sql -c "ALTER SYSTEM SET rollback.auto_revert = off" -c "SELECT pg_reload_conf()" >/dev/null
	else
		sql -c "ALTER SYSTEM RESET rollback.auto_revert" -c "SELECT pg_reload_conf()" >/dev/null
	fi
	wait_until "rollback.auto_revert is $1" "current_setting('rollback.auto_revert') = '$1'"
	worker_barrier
	worker_barrier
	[[ $1 == off ]] || AUTO_REVERT_SET=0
}

step "6. rollback.auto_revert = off: failed and an alert, not reverted"
sql -c "SELECT rollback.check_no_new_nulls('public.customers', 'email', applies_to => 'off*', name => 'off_nulls')"
set_auto_revert off
migrate off1 "UPDATE public.customers SET email = NULL WHERE id BETWEEN 100 AND 104"
wait_handled off1
expect_status off1 failed
expect_audit off1 check_failed
expect_sql "the check_failed entry says: auto_revert is off" \
	"SELECT a.reason FROM rollback.audit_log a JOIN rollback.migration m ON m.id = a.migration_id
	  WHERE m.version = 'off1' AND a.action = 'check_failed'" \
	'check "off_nulls" failed; not reverted: rollback.auto_revert is off'
[[ "$(null_emails)" == 5 ]] || fail "off1 should still be applied"
expect_status_kinds "migration_failed:off1"
set_auto_revert on
revert_by_hand off1
expect_status_kinds ""

# ---------------------------------------------------------------------------
step "7. a revert that waits for a lock: rollback.revert_lock_timeout = 3s"
# cb5, hold1 and lock1 would be three automatic reverts within the hour: the
# breaker would stop lock2's (section 1 tests it); raise the limit here.
LOCK_TIMEOUT_SET=1
sql -c "ALTER SYSTEM SET rollback.revert_lock_timeout = '3s'" -c "ALTER SYSTEM SET rollback.max_auto_reverts = 10" \
	-c "SELECT pg_reload_conf()" >/dev/null
wait_until "rollback.revert_lock_timeout is 3s" "current_setting('rollback.revert_lock_timeout') = '3s'"
worker_barrier
worker_barrier
sql -c "SELECT rollback.check_no_new_nulls('public.customers', 'email', applies_to => 'lock*', name => 'lock_nulls')"

# lock_migration VERSION: a bad migration left failed (applied while paused:
# its UPDATE could not run under the blocker's lock).
lock_migration() {
	sql -c "SELECT rollback.pause('e2e: $1')" >/dev/null
	migrate "$1" "UPDATE public.customers SET email = NULL WHERE id BETWEEN 50 AND 59"
	wait_handled "$1"
	expect_status "$1" failed
	sql -c "SELECT rollback.resume()" >/dev/null
}

# blocker_start / blocker_stop: a session holding SHARE on public.customers
# (readers and the checks pass; the revert's row changes wait).
blocker_start() {
	mkfifo "$E2E_DIR/lock.fifo"
	psql -X -q -v ON_ERROR_STOP=1 -d "$E2E_DB" <"$E2E_DIR/lock.fifo" >"$E2E_DIR/lock.out" 2>&1 &
	BLOCKER=$!
	exec 4>"$E2E_DIR/lock.fifo"
	echo "BEGIN; LOCK TABLE public.customers IN SHARE MODE;" >&4
	wait_until "the blocker holds its lock" \
		"EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'public.customers'::regclass AND mode = 'ShareLock' AND granted)"
}
blocker_stop() {
	echo "COMMIT;" >&4
	exec 4>&-
	wait "$BLOCKER" || { cat "$E2E_DIR/lock.out" >&2; fail "the blocking session failed"; }
	rm -f "$E2E_DIR/lock.fifo"
}

step "7a. the first attempt times out, the lock is released during the second: reverted"
lock_migration lock1
blocker_start
run_checks_fails lock1 lock_nulls
# the first attempt gave up after 3 s; the second has started and waits
wait_until "the revert of lock1 was started twice" \
	"(SELECT count(*) FROM rollback.audit_log a JOIN rollback.migration m ON m.id = a.migration_id
	  WHERE m.version = 'lock1' AND a.action = 'revert_started') = 2"
blocker_stop
wait_handled lock1
expect_status lock1 reverted
expect_audit lock1 "check_failed,revert_started,revert_started,revert"
[[ "$(fingerprint)" == "$BEFORE" ]] || fail "after the revert of lock1, public.customers is not as before"
echo "ok: public.customers is as before lock1"
expect_status_kinds ""

step "7b. both attempts time out: revert_failed, left to a person"
lock_migration lock2
blocker_start
run_checks_fails lock2 lock_nulls
wait_handled lock2
blocker_stop
expect_status lock2 revert_failed
expect_audit lock2 "check_failed,revert_started,revert_started,revert_failed"
expect_sql "the revert_failed entry says: lock timeout" \
	"SELECT a.reason LIKE '%lock timeout%' FROM rollback.audit_log a JOIN rollback.migration m ON m.id = a.migration_id
	  WHERE m.version = 'lock2' AND a.action = 'revert_failed'" t
[[ "$(null_emails)" == 10 ]] || fail "lock2 should still be applied (10 rows without email), got $(null_emails)"
expect_status_kinds "revert_failed:lock2"
revert_by_hand lock2
expect_status_kinds ""
sql -c "ALTER SYSTEM RESET rollback.revert_lock_timeout" -c "ALTER SYSTEM RESET rollback.max_auto_reverts" \
	-c "SELECT pg_reload_conf()" >/dev/null
LOCK_TIMEOUT_SET=0

# ---------------------------------------------------------------------------
step "8. retention: a point and check results older than rollback.retention are purged"
sql -c "SELECT rollback.create_point('e2e_old_point')" >/dev/null
# made old by hand (as superuser), then the hourly purge made due now
sql -c "UPDATE rollback.point SET created_at = now() - interval '8 days' WHERE name = 'e2e_old_point'" \
	-c "UPDATE rollback.check_runs SET finished_at = finished_at - interval '8 days' WHERE check_name = 'warn_nulls'" >/dev/null
OLD_RUNS=$(sql -c "SELECT count(*) FROM rollback.check_runs WHERE check_name = 'warn_nulls'")
[[ "$OLD_RUNS" -gt 0 ]] || fail "no check result of warn_nulls to purge"
TOTALS=$(sql -c "SELECT sum(n) FROM rollback.check_totals")
sql -c "UPDATE rollback.worker_state SET purged_at = NULL" >/dev/null
worker_barrier
wait_until "the worker purged" "EXISTS (SELECT 1 FROM rollback.audit_log WHERE action = 'purge')"
expect_sql "the purge's figures" \
	"SELECT detail->>'points_dropped' || ' ' || (detail->>'check_results_dropped')
	   FROM rollback.audit_log WHERE action = 'purge'" "1 $OLD_RUNS"
expect_sql "the old point is gone" "SELECT count(*) FROM rollback.point WHERE name = 'e2e_old_point'" 0
expect_sql "warn_nulls's old results are gone" "SELECT count(*) FROM rollback.check_runs WHERE check_name = 'warn_nulls'" 0
expect_sql "the points of the migrations are kept (they are recent)" \
	"SELECT count(*) = count(p.id) FROM rollback.migration m LEFT JOIN rollback.point p ON p.id = m.point_id" t
expect_sql "the check counters do not go down" "SELECT sum(n) FROM rollback.check_totals" "$TOTALS"

# ---------------------------------------------------------------------------
step "the end: audit log intact, metrics"
show "SELECT a.id, a.action, m.version, a.reason FROM rollback.audit_log a
	   LEFT JOIN rollback.migration m ON m.id = a.migration_id ORDER BY a.id"
expect_audit_intact
expect_metric 'rollback_reverts_total{trigger="check"}' 6
expect_metric 'rollback_reverts_total{trigger="manual"}' 6
expect_metric rollback_circuit_open 0
expect_metric rollback_paused 0
expect_metric rollback_attention 0
expect_sql "rollback.auto_revert is on again" "SELECT current_setting('rollback.auto_revert')" on

echo
echo "e2e auto_control: passed"
