#!/usr/bin/env bash
# `make demo`: install what is missing, build, install, start a throwaway
# server, and in a fresh database rb_demo, printing each statement and its
# output:
#   1-11  track / create_point / a bad job / as_of / diff / restore;
#   12-17 the main job: a check on a column, a migration that breaks the data,
#         and the background worker reverting it on its own, with the audit
#         entries, the NOTIFY payload a LISTENing client received, the metrics,
#         an empty rollback.status() and the data back;
# then stop the server.
#
# Environment: RB_PORT, RB_TMP, RB_PRELOAD, RB_DESTDIR (see scripts/pgenv.sh).
# The worker needs the library in shared_preload_libraries (the default).
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/pgenv.sh
rb_setup

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' \
	-c 'DROP DATABASE IF EXISTS rb_demo' -c 'CREATE DATABASE rb_demo'

echo
# -e: print every statement before its output.
psql -X -v ON_ERROR_STOP=1 -e -d rb_demo <<'SQL'
\pset null '(null)'

\echo
\echo '==== 1. A table of orders, 10 rows'
CREATE TABLE public.orders (
    id       serial PRIMARY KEY,
    customer text    NOT NULL,
    amount   numeric NOT NULL,
    status   text    NOT NULL
);
INSERT INTO public.orders (customer, amount, status) VALUES
    ('alice',   120.00, 'paid'),
    ('bob',      75.50, 'pending'),
    ('carol',   310.25, 'paid'),
    ('dave',     42.00, 'shipped'),
    ('erin',    999.99, 'pending'),
    ('frank',    15.00, 'paid'),
    ('grace',   250.00, 'shipped'),
    ('heidi',    60.75, 'pending'),
    ('ivan',    480.00, 'paid'),
    ('judy',     33.30, 'shipped');
SELECT * FROM public.orders ORDER BY id;

\echo
\echo '==== 2. Install the extension and track the table'
CREATE EXTENSION rollback;
SELECT rollback.track('orders');

\echo
\echo '==== 3. A recovery point before the data job (copies no rows)'
SELECT rollback.create_point('before_bad_job');
-- Kept only to prove, at the end, that the restore gives back exactly this.
CREATE TEMP TABLE orders_as_they_were AS TABLE public.orders;

\echo
\echo '==== 4. A bad data job: zeroes amounts, deletes rows, inserts junk'
UPDATE public.orders SET amount = 0 WHERE status IN ('pending', 'shipped');
DELETE FROM public.orders WHERE id IN (3, 9);
INSERT INTO public.orders (customer, amount, status) VALUES
    ('???', -1, 'junk'),
    ('???', -2, 'junk'),
    ('???', -3, 'junk');

\echo
\echo '==== 5. The damaged table'
SELECT * FROM public.orders ORDER BY id;

\echo
\echo '==== 6. Time travel: the table as it was at the point'
SELECT * FROM rollback.as_of(NULL::public.orders, 'before_bad_job') ORDER BY id;

\echo
\echo '==== 7. What changed since the point'
SELECT * FROM rollback.diff('orders', 'before_bad_job')
 ORDER BY coalesce(old_row->>'id', new_row->>'id')::int, op;

\echo
\echo '==== 8. Restore, dry run: the figures, nothing changed'
SELECT * FROM rollback.restore('before_bad_job', dry_run => true);
SELECT count(*) AS rows_now FROM public.orders;

\echo
\echo '==== 9. Restore for real (takes a point first, so the restore can be undone)'
SELECT * FROM rollback.restore('before_bad_job');

\echo
\echo '==== 10. The table again'
SELECT * FROM public.orders ORDER BY id;
SELECT NOT EXISTS (TABLE public.orders EXCEPT ALL TABLE orders_as_they_were)
   AND NOT EXISTS (TABLE orders_as_they_were EXCEPT ALL TABLE public.orders)
       AS same_as_before_the_job;

\echo
\echo '==== 11. The recovery points'
SELECT * FROM rollback.points;
SQL

# ---------------------------------------------------------------------------
# The main job: a migration that breaks data is reverted by the background
# worker, with no call from here.

# The database's worker was started by CREATE EXTENSION (step 2).
worker=
for _ in $(seq 1 60); do
	worker=$(psql -X -A -t -v ON_ERROR_STOP=1 -d rb_demo -c "SELECT rollback._worker_pid()")
	[[ -n $worker ]] && break
	sleep 0.5
done
if [[ -z $worker ]]; then
	echo "demo: no rollback worker runs for rb_demo; end of $RB_LOG:" >&2
	tail -n 30 "$RB_LOG" >&2
	exit 1
fi
echo
echo "==== The background worker of rb_demo runs (pid $worker)"

psql -X -v ON_ERROR_STOP=1 -e -d rb_demo <<'SQL'
\echo
\echo '==== 12. A check: no migration may leave a NULL in orders.status where there was none'
\echo '         (it compares each row the migration wrote with the migration''s recovery point)'
SELECT rollback.check_no_new_nulls('public.orders', 'status');
SELECT name, applies_to, severity, sql FROM rollback.checks;
SQL

echo
echo "==== 13. A client LISTENs on channel rollback_events (started before the migration)"
listen_out=$RB_TMP/demo_listen.out
rm -f "$listen_out"
# perl DBD::Pg (installed by scripts/deps.sh) connects like psql, through the
# PG* variables of scripts/pgenv.sh, and prints each payload it receives until
# the 'reverted' event comes (or 60 s pass).
perl -MDBI -MIO::Select -MJSON::PP -e '
	$| = 1;
	my $dbh = DBI->connect("dbi:Pg:dbname=rb_demo", undef, undef, {RaiseError => 1, AutoCommit => 1});
	$dbh->do("LISTEN rollback_events");
	print "listening\n";
	my $json = JSON::PP->new->canonical->pretty;
	my $sel = IO::Select->new($dbh->{pg_socket});
	my $end = time + 60;
	my $done = 0;
	while (!$done && time < $end) {
		$sel->can_read($end - time);
		while (my $n = $dbh->pg_notifies) {
			my $p = decode_json($n->[2]);
			print "NOTIFY $n->[0]:\n", $json->encode($p);
			$done = 1 if $p->{event} eq "reverted";
		}
	}
' >"$listen_out" 2>&1 &
listen_pid=$!
for _ in $(seq 1 100); do
	grep -q '^listening' "$listen_out" 2>/dev/null && break
	sleep 0.1
done
if ! grep -q '^listening' "$listen_out"; then
	echo "demo: the listener did not start:" >&2
	cat "$listen_out" >&2
	exit 1
fi
echo "listening (pid $listen_pid)"

before=$(psql -X -A -t -v ON_ERROR_STOP=1 -d rb_demo \
	-c "SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM public.orders o")

psql -X -v ON_ERROR_STOP=1 -e -d rb_demo <<'SQL'
\echo
\echo '==== 14. A migration that breaks the data: status becomes optional, and the pending orders lose it'
\echo '         (what a migration tool runs; a transaction with DDL on a tracked schema is tracked'
\echo '         as a migration by itself too)'
SELECT rollback.begin_migration('V2', 'make status optional');
BEGIN;
ALTER TABLE public.orders ALTER COLUMN status DROP NOT NULL;
UPDATE public.orders SET status = NULL WHERE status = 'pending';
SELECT * FROM public.orders WHERE status IS NULL ORDER BY id;
COMMIT;
SELECT rollback.end_migration();
SQL

echo
echo "==== 15. Waiting for the worker (nothing else is called; at most 30 s)"
status=
for i in $(seq 1 60); do
	status=$(psql -X -A -t -v ON_ERROR_STOP=1 -d rb_demo \
		-c "SELECT status FROM rollback.migration WHERE version = 'V2'")
	echo "poll $i: migration V2 is $status"
	[[ $status == reverted || $status == revert_failed ]] && break
	sleep 0.5
done
if [[ $status != reverted ]]; then
	echo "demo: the worker did not revert V2 (status: $status); end of $RB_LOG:" >&2
	tail -n 30 "$RB_LOG" >&2
	kill "$listen_pid" 2>/dev/null || true
	exit 1
fi
wait "$listen_pid" || true

psql -X -P null='(null)' -v ON_ERROR_STOP=1 -e -d rb_demo <<'SQL'
\echo
\echo '==== 16. What happened'
SELECT id, version, kind, status, point FROM rollback.migrations ORDER BY id;
SELECT check_name, status, detail FROM rollback.check_runs ORDER BY id;
SELECT f.value AS failing_row
  FROM rollback.check_runs r, jsonb_array_elements(r.failing_rows) f ORDER BY r.id;
SELECT id, actor, action, reason, jsonb_pretty(detail) AS detail
  FROM rollback.audit_log ORDER BY id;
SELECT * FROM rollback.verify_audit_log();
SQL

echo
echo "==== The NOTIFY payloads the LISTENing client received"
cat "$listen_out"

echo
echo "==== The worker's log lines"
grep -E 'rollback(:| worker)' "$RB_LOG" | sed -E 's/^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] //'

echo
echo "==== Metrics (rollback.metrics(), Prometheus text format; the lines about the revert)"
psql -X -A -t -v ON_ERROR_STOP=1 -d rb_demo -c "SELECT rollback.metrics()" |
	grep -E '^(rollback_reverts_total|rollback_revert_duration_seconds_count|rollback_last_revert_timestamp_seconds|rollback_checks_total)'

psql -X -v ON_ERROR_STOP=1 -e -d rb_demo <<'SQL'
\echo
\echo '==== 17. Nothing needs a person: rollback.status() is empty'
SELECT * FROM rollback.status();

\echo
\echo '==== The data and the schema are back'
SELECT * FROM public.orders ORDER BY id;
SELECT attname, attnotnull FROM pg_attribute
 WHERE attrelid = 'public.orders'::regclass AND attname = 'status';
SQL

after=$(psql -X -A -t -v ON_ERROR_STOP=1 -d rb_demo \
	-c "SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM public.orders o")
echo
if [[ "$before" == "$after" ]]; then
	echo "orders after the revert = orders before the migration (md5 $after)"
else
	echo "demo: orders differ from before the migration ($before, now $after)" >&2
	exit 1
fi

echo
echo "demo: done"
