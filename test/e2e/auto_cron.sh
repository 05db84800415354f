#!/usr/bin/env bash
# End-to-end, with the worker and pg_cron running: a scheduled check (tag
# 'slo': no order with a negative amount), run by a pg_cron job
# `SELECT * FROM rollback.run_checks(tag => 'slo')`, starts failing after a bad
# data job (a plain UPDATE, not a migration), and the worker reverts the last
# migration applied within rollback.revert_window, although that migration had
# been verified. The test calls nothing of the extension between the bad
# UPDATE and the assertions. What it proves:
#  - the migration (explicit begin_migration / end_migration, verified by a
#    check of its own) goes from 'verified' to 'reverted';
#  - cron.job_run_details shows a failed run of the job whose return_message
#    names the check (run_checks raises an error when an error-severity check
#    fails);
#  - the audit log has 'revert_started' and 'revert' with trigger 'scheduled'
#    and the check, the LISTENing client received the 'reverted' payload, and
#    rollback.metrics() counts rollback_reverts_total{trigger="scheduled"} 1;
#  - what the revert does with the bad data job's rows: the revert puts the
#    table back as of the migration's point, so the orders are as before the
#    migration (its column gone, its rows back) and the bad UPDATE is undone
#    as well: the rows the bad job wrote are not lost but copied to
#    rollback.quarantine (3 rows, as they were just before the revert: the
#    bad job's negative amounts, with V2's currency column), and the revert's
#    figures count them as quarantined; the migration's own writes (the
#    currency of the other orders) are restored, not quarantined. The check
#    passes again afterwards.
#
# pg_cron runs in database postgres (cron.database_name, scripts/pgenv.sh);
# cron.schedule_in_database runs the job in the test database. pg_cron 1.5+
# takes a schedule of '2 seconds'; older releases (1.4 on Debian 12) only
# minutes, so the job runs at the next minute and the test waits up to two
# minutes for it (most runs: under a minute). The job is unscheduled at the
# end, and on exit whatever happens.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

e2e_init auto_cron

JOB=rb_e2e_auto_cron_slo
CHECK='slo:no_negative_amount'
# pg SQL...: run SQL in database postgres (pg_cron's).
pg() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres "$@"; }
unschedule_job() {
	psql -X -q -A -t -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ('$JOB', '${JOB}_probe')" >/dev/null 2>&1
}

step "pg_cron in database postgres"
pg -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS pg_cron'
echo "pg_cron $(pg -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'")"
# A job of an interrupted run would act on the new database.
unschedule_job || true
on_exit unschedule_job
if pg -c "SELECT cron.schedule('${JOB}_probe', '2 seconds', 'SELECT 1')" >/dev/null 2>&1; then
	SCHEDULE='2 seconds'
	PERIOD=2
else
	SCHEDULE='* * * * *'
	PERIOD=60
fi
unschedule_job
echo "the job's schedule: '$SCHEDULE'"

step "public.orders: 20 orders (created before the migration, in a transaction of their own)"
sql <<'SQL'
BEGIN;
CREATE TABLE public.orders (
    id       serial PRIMARY KEY,
    customer text NOT NULL,
    amount   numeric(10,2) NOT NULL
);
INSERT INTO public.orders (customer, amount)
SELECT 'customer ' || i, i * 10 FROM generate_series(1, 20) i;
COMMIT;
SQL
# The DDL transaction is an auto-tracked migration: let the worker look at it
# (no check applies) before the checks exist.
wait_for 30 "the worker has looked at every migration" \
	"SELECT bool_and(checked_at IS NOT NULL) FROM rollback.migration WHERE kind = 'migration'"

step "checks: V2's own (public.orders loses at most 10 % of its rows), and the scheduled one (tag 'slo')"
show "SELECT rollback.check_row_count('public.orders', 10, applies_to => 'V2') IS NOT NULL AS added"
show "SELECT rollback.add_check('$CHECK', 'SELECT o.id, o.amount FROM public.orders o WHERE o.amount < 0', applies_to => 'slo') IS NOT NULL AS added"
show "SELECT name, applies_to, severity, kind FROM rollback.checks ORDER BY id"
capture before

step "migration V2 (begin_migration / end_migration): a currency column, every fifth order in USD"
sql <<'SQL'
SELECT rollback.begin_migration('V2', 'orders: currency') IS NOT NULL AS begun;
ALTER TABLE public.orders ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
UPDATE public.orders SET currency = 'USD' WHERE id % 5 = 0;
SELECT rollback.end_migration();
SQL
wait_for 30 "the worker verified V2 (its check passed)" "$(migration_is V2 verified)"
capture after_v2
different_state before after_v2 V2

step "the scheduled check passes now (run_checks(tag => 'slo') by hand)"
show "SELECT * FROM rollback.run_checks(tag => 'slo')"

step "a client LISTENs on rollback_events"
listen_start reverted $((2 * PERIOD + 90))

step "pg_cron job $JOB ('$SCHEDULE', in $E2E_DB): SELECT * FROM rollback.run_checks(tag => 'slo')"
JOBID=$(pg -c "SELECT cron.schedule_in_database('$JOB', '$SCHEDULE', \$\$SELECT * FROM rollback.run_checks(tag => 'slo')\$\$, '$E2E_DB')")
[[ "$JOBID" =~ ^[0-9]+$ ]] || fail "cron.schedule_in_database returned '$JOBID'"
echo "scheduled: job $JOBID"

step "a bad data job (a plain UPDATE, not a migration): 3 orders get negative amounts"
before_n=$(sql -c "SELECT count(*) FROM rollback.migration")
sql -c "UPDATE public.orders SET amount = -amount WHERE id IN (3, 7, 10)"
[[ "$(sql -c "SELECT count(*) FROM rollback.migration")" == "$before_n" ]] || fail "the UPDATE started a migration"
echo "ok: no migration started"

step "the scheduled check fails at the job's next run; the worker reverts V2"
wait_for $((2 * PERIOD + 30)) "V2 reverted by the worker" "$(migration_is V2 reverted)"
listen_wait
show_migrations
WAIT_DB=postgres wait_for 30 "cron.job_run_details has a failed run of job $JOBID naming the check" \
	"SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $JOBID AND status = 'failed'
	                  AND return_message LIKE '%check \"$CHECK\" failed%')"
psql -X -q -P pager=off -d postgres -c "SELECT runid, status, return_message FROM cron.job_run_details WHERE jobid = $JOBID ORDER BY runid"

step "the audit log, the NOTIFY payload, the metrics"
expect_auto_revert V2 scheduled "$CHECK"

step "check_runs: the scheduled run (tag 'slo') failed on the 3 orders and names V2"
show "SELECT r.check_name, r.tag, m.version, r.status, r.failing_rows
        FROM rollback.check_runs r LEFT JOIN rollback.migration m ON m.id = r.migration_id ORDER BY r.id"
got=$(sql -c "SELECT string_agg(e->>'id', ',' ORDER BY (e->>'id')::int)
                FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id,
                     jsonb_array_elements(r.failing_rows) e
               WHERE r.tag = 'slo' AND r.status = 'failed' AND m.version = 'V2'")
[[ "$got" == "3,7,10" ]] || fail "failed scheduled runs on V2 name orders '$got', expected '3,7,10'"
echo "ok: failing rows: orders $got"

step "public.orders is as it was before V2: its column gone, the bad amounts undone"
capture after_revert
same_state before after_revert "automatic revert of V2"
got=$(sql -c "SELECT count(*) FILTER (WHERE amount < 0) FROM public.orders")
[[ "$got" == 0 ]] || fail "$got orders still have a negative amount"
echo "ok: no negative amount"

step "the bad data job's rows went to rollback.quarantine"
show "SELECT q.tbl, q.row_data FROM rollback.quarantine q ORDER BY q.id"
got=$(sql -c "SELECT count(*) || ' ' || string_agg(q.row_data->>'id', ',' ORDER BY (q.row_data->>'id')::int) || ' '
                     || bool_and((q.row_data->>'amount')::numeric < 0)
                FROM rollback.quarantine q
               WHERE q.tbl = 'public.orders'
                 AND q.migration_id = (SELECT id FROM rollback.migration WHERE version = 'V2' AND kind = 'migration')")
[[ "$got" == "3 3,7,10 true" ]] ||
	fail "rollback.quarantine of V2's revert: '$got', expected '3 3,7,10 true' (rows, ids, all negative)"
got=$(sql -c "SELECT count(*) FROM rollback.quarantine")
[[ "$got" == 3 ]] || fail "rollback.quarantine has $got rows, expected 3 (the bad job's rows only, not the migration's)"
got=$(payload_get reverted quarantined)
[[ "$got" == 3 ]] || fail "the 'reverted' payload's quarantined is '$got', expected 3"
echo "ok: 3 rows quarantined (ids 3, 7, 10, negative amounts), nothing else"

step "the scheduled check passes again"
show "SELECT * FROM rollback.run_checks(tag => 'slo')"

step "unschedule the job"
pg -c "SELECT cron.unschedule($JOBID)" >/dev/null
[[ "$(pg -c "SELECT count(*) FROM cron.job WHERE jobname = '$JOB'")" == 0 ]] || fail "job $JOB is still scheduled"
echo "ok: job $JOBID unscheduled"
got=$(metric 'rollback_reverts_total{trigger="scheduled"}')
[[ "$got" == 1 ]] || fail "metrics: rollback_reverts_total{trigger=\"scheduled\"} is '$got', expected still 1"
got=$(sql -c "SELECT intact FROM rollback.verify_audit_log()")
[[ "$got" == t ]] || fail "verify_audit_log() is no longer intact"
echo "ok: still one automatic revert, audit log intact"

echo
echo "e2e auto_cron: passed"
