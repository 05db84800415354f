#!/usr/bin/env bash
# e2e: the launcher keeps one slot per database in shared memory
# (max_worker_processes + 1 of them). DROP DATABASE stops the database's
# worker and marks its slot; the launcher must free that slot once the
# database is gone, or, after more databases have been created and dropped
# than there are slots, a new database can never get its worker.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

E2E_NAME=worker_databases
E2E_DB=rb_e2e_worker_databases
TMP_DB=rb_e2e_worker_databases_tmp

pg() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres "$@"
}

n=$(($(pg -c 'SHOW max_worker_processes') + 6))

step "create, give the extension to, and drop a database $n times (more than there are slots)"
pg -c 'SET client_min_messages = warning' -c "DROP DATABASE IF EXISTS $E2E_DB WITH (FORCE)"
for i in $(seq 1 "$n"); do
	pg -c "CREATE DATABASE $TMP_DB"
	psql -X -q -v ON_ERROR_STOP=1 -d "$TMP_DB" -c 'CREATE EXTENSION rollback'
	pg -c "DROP DATABASE $TMP_DB WITH (FORCE)"
done
echo "done: $n databases"

step "a new database with the extension gets its worker (bounded wait: 150 s, the launcher looks at pg_database every minute)"
pg -c "CREATE DATABASE $E2E_DB"
sql -c 'CREATE EXTENSION rollback'
pid=
for i in $(seq 1 300); do
	pid=$(sql -c "SELECT rollback._worker_pid()")
	[[ -n $pid ]] && break
	sleep 0.5
done
[[ -n $pid ]] || fail "no worker for database $E2E_DB: the slots of the dropped databases were not freed"
echo "ok: the worker runs"
