#!/usr/bin/env bash
# e2e: a database whose worker could not be started for want of a free
# background worker slot gets it once a slot is free, with no CREATE
# EXTENSION and no restart (the launcher tries again at its next look at
# pg_database, every minute).
#
# The slots are taken by a parallel query whose workers wait for a flag file
# (every free slot: it asks for more workers than there are slots); the
# extension is created while they hold them, so its worker cannot start.
# Then the flag file ends the query, and the worker must come.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

E2E_NAME=worker_slots
E2E_DB=rb_e2e_worker_slots
E2E_DIR=$RB_TMP/e2e_worker_slots
rm -rf "$E2E_DIR"
mkdir -p "$E2E_DIR"
chmod 755 "$E2E_DIR"
flag=$E2E_DIR/release
filler_pid=

cleanup() {
	touch "$flag" 2>/dev/null || true
	if [[ -n "$filler_pid" ]]; then wait "$filler_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

step "database $E2E_DB, without the extension yet, and a query that can hold every worker slot"
psql -X -q -v ON_ERROR_STOP=1 -d postgres \
	-c 'SET client_min_messages = warning' \
	-c "DROP DATABASE IF EXISTS $E2E_DB WITH (FORCE)" \
	-c "CREATE DATABASE $E2E_DB"
sql <<'SQL'
-- one row per page: each participant of a parallel scan gets a page of its own
CREATE TABLE public.filler (id int, pad text) WITH (fillfactor = 10, parallel_workers = 200);
INSERT INTO public.filler SELECT g, repeat(md5(g::text), 28) FROM generate_series(1, 300) g;
ANALYZE public.filler;
-- waits until the flag file exists (at most 3 minutes)
CREATE FUNCTION public.hold_until(flag text) RETURNS boolean
	LANGUAGE plpgsql PARALLEL SAFE AS $$
BEGIN
	FOR i IN 1..1800 LOOP
		EXIT WHEN (pg_catalog.pg_stat_file(flag, true)).size IS NOT NULL;
		PERFORM pg_catalog.pg_sleep(0.1);
	END LOOP;
	RETURN true;
END
$$;
SQL
pages=$(sql -c "SELECT pg_relation_size('public.filler') / current_setting('block_size')::int")
echo "filler: $pages pages"
[[ $pages -ge 200 ]] || fail "the filler table has $pages pages, fewer than the workers asked for"

dboid=$(sql -c "SELECT oid FROM pg_database WHERE datname = current_database()")

# start_filler: the parallel query, in the background; returns once its
# leader waits in hold_until, which it does only after registering all its
# workers.
start_filler() {
	rm -f "$flag"
	PGAPPNAME=rb_filler psql -X -q -v ON_ERROR_STOP=1 -d "$E2E_DB" -v flag="$flag" >"$E2E_DIR/filler.out" 2>&1 <<'SQL' &
SET max_parallel_workers = 200;
SET max_parallel_workers_per_gather = 200;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SELECT count(*) AS rows_seen FROM public.filler WHERE public.hold_until(:'flag');
SQL
	filler_pid=$!
	local state= i
	for i in $(seq 1 300); do
		state=$(sql -c "SELECT wait_event FROM pg_stat_activity WHERE application_name = 'rb_filler' AND backend_type = 'client backend'")
		[[ $state == PgSleep ]] && break
		kill -0 "$filler_pid" 2>/dev/null || { cat "$E2E_DIR/filler.out" >&2; fail "the filler query ended early"; }
		sleep 0.1
	done
	[[ $state == PgSleep ]] || fail "the filler query did not start waiting (wait_event: ${state:-none})"
	echo "parallel workers holding slots: $(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'")"
}

stop_filler() {
	touch "$flag"
	wait "$filler_pid" || { cat "$E2E_DIR/filler.out" >&2; fail "the filler query failed"; }
	filler_pid=
	cat "$E2E_DIR/filler.out"
}

# Another database's worker may exit (or a worker the launcher starts for a
# database without the extension may) while the filler starts, leaving a
# slot free: then the worker starts at once, and the attempt is made again.
done_setup=
for attempt in 1 2 3; do
	step "attempt $attempt: the parallel query takes every free background worker slot"
	start_filler

	step "attempt $attempt: CREATE EXTENSION; the launcher cannot start the worker"
	log_from=$(wc -l <"$RB_LOG")
	sql -c 'CREATE EXTENSION rollback'
	pid=
	for i in $(seq 1 100); do
		tail -n +"$((log_from + 1))" "$RB_LOG" | grep -q "could not start the rollback worker for database $dboid" && break
		pid=$(sql -c "SELECT rollback._worker_pid()")
		[[ -z $pid ]] || break
		sleep 0.1
	done
	if [[ -z $pid ]] && tail -n +"$((log_from + 1))" "$RB_LOG" | grep "could not start the rollback worker for database $dboid"; then
		pid=$(sql -c "SELECT rollback._worker_pid()")
		[[ -z $pid ]] || fail "the worker runs (pid $pid) although it could not be started"
		done_setup=1
		break
	fi
	echo "a slot was free after all (worker ${pid:-not seen}): again"
	stop_filler
	sql -c 'DROP EXTENSION rollback CASCADE'
	for i in $(seq 1 300); do
		n=$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'rollback worker' AND datname = current_database()")
		[[ $n -eq 0 ]] && break
		sleep 0.1
	done
done
[[ -n $done_setup ]] || fail "no attempt found every worker slot taken"
status=$(sql -c "SELECT string_agg(kind, ',') FROM rollback.status()")
[[ $status == *worker_not_running* ]] || fail "rollback.status() does not say worker_not_running: $status"
echo "ok: no worker; rollback.status() says worker_not_running"

step "the parallel query ends: the slots are free again"
stop_filler

step "the launcher starts the worker at its next look at pg_database (bounded wait: 150 s)"
for i in $(seq 1 300); do
	pid=$(sql -c "SELECT rollback._worker_pid()")
	[[ -n $pid ]] && break
	sleep 0.5
done
[[ -n $pid ]] || fail "no worker for database $E2E_DB after the slots were freed"
echo "ok: the worker runs"

step "and it works: a migration that fails its check is reverted"
sql <<'SQL'
CREATE TABLE public.t (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 5) g;
SELECT rollback.track('public.t');
SELECT rollback.check_no_new_nulls('public.t', 'v');
SELECT rollback.begin_migration('V1');
ALTER TABLE public.t ALTER COLUMN v DROP NOT NULL;
UPDATE public.t SET v = NULL WHERE id = 1;
SELECT rollback.end_migration();
SQL
for i in $(seq 1 60); do
	st=$(sql -c "SELECT status FROM rollback.migration WHERE version = 'V1'")
	[[ $st == reverted || $st == revert_failed ]] && break
	sleep 0.5
done
[[ $st == reverted ]] || fail "migration V1 is $st, not reverted"
nulls=$(sql -c "SELECT count(*) FROM public.t WHERE v IS NULL")
[[ $nulls -eq 0 ]] || fail "$nulls NULLs left in public.t"
echo "ok: V1 reverted by the worker"
