#!/usr/bin/env bash
# End-to-end: Flyway's and Liquibase's history tables, written exactly as those
# tools write them on PostgreSQL (their DDL, their INSERT/UPDATE statements,
# their transactions and connections), replayed with psql because the tools
# (Java) are not installed here. What is checked: rollback.migrations labels
# each migration with the tool's version (Flyway) or changeset id (Liquibase),
# the tools' own marker rows and lock rows label nothing and start nothing,
# rollback.revert_migration() of the last migration brings schema public and its
# rows back (so the tool's history row of that migration is gone and the tool
# would see it pending again, the earlier rows staying), and applying it again
# works and is labelled again.
#
# Where each statement comes from (read in the tools' sources):
#
# Flyway (github:flyway/flyway, 11.x/12.x):
#  - history table DDL: PostgreSQLDatabase.getRawCreateScript, in
#    flyway-database/flyway-database-postgresql/src/main/java/org/flywaydb/database/postgresql/PostgreSQLDatabase.java
#    (CREATE TABLE with quoted columns, the BASELINE insert when baselining,
#    ALTER TABLE ... ADD CONSTRAINT "flyway_schema_history_pk", CREATE INDEX
#    "flyway_schema_history_s_idx" ON ... ("success")); older releases kept the
#    same text in createMetaDataTable.sql.
#  - the history INSERT and the BASELINE row: Database.getInsertStatement and
#    getBaselineStatement in flyway-core/src/main/java/org/flywaydb/core/internal/database/base/Database.java;
#    the values: JdbcTableSchemaHistory.doAddAppliedMigration in
#    flyway-core/src/main/java/org/flywaydb/core/internal/schemahistory/JdbcTableSchemaHistory.java;
#    the SCHEMA marker (installed_rank 0, version NULL, '<< Flyway Schema
#    Creation >>', script = the created schemas) and the rank (last + 1; 0 for
#    SCHEMA, else 1, on an empty table): SchemaHistory.addSchemasMarker and
#    calculateInstalledRank in .../internal/schemahistory/SchemaHistory.java;
#    the baseline description '<< Flyway Baseline >>', version 1:
#    .../internal/configuration/models/FlywayModel.java.
#  - the SELECT of the history: PostgreSQLDatabase.getSelectStatement.
#  - schema creation (CREATE SCHEMA, history table, SCHEMA marker in one
#    transaction of the main connection): .../internal/command/DbSchemas.java.
#  - connections and transactions: DbMigrate.migrateAll/migrateGroup/
#    applyMigrations/doMigrateGroup in .../internal/command/DbMigrate.java: per
#    migration, schemaHistory.lock(...) on the MAIN connection, the migration in
#    a transaction of the MIGRATION connection (Database.getMigrationConnection:
#    a second connection unless useSingleConnection()), and
#    schemaHistory.addAppliedMigration (main connection) called INSIDE that
#    transaction, before it commits; the lock:
#    flyway-database/flyway-database-postgresql/src/main/java/org/flywaydb/database/postgresql/PostgreSQLAdvisoryLockTemplate.java
#    (flyway.postgresql.transactional.lock=true, the default: BEGIN; SELECT
#    pg_try_advisory_xact_lock(n) ... COMMIT on the main connection; false:
#    pg_try_advisory_lock / pg_advisory_unlock, and PostgreSQLDatabase.
#    useSingleConnection() returns true: the history INSERT runs in the
#    migration's own transaction); n = 0x466C79776179 ("Flyway") + the Java
#    hashCode of "\"public\".\"flyway_schema_history\"".
#  - before each migration, on the migration connection: SET ROLE '<original
#    role>' (PostgreSQLConnection.doRestoreOriginalState) and SELECT
#    set_config('search_path', ?, false) (changeCurrentSchemaTo), in
#    .../flyway-database-postgresql/.../PostgreSQLConnection.java.
#  - callbacks beforeEachMigrate / afterEachMigrate run on the migration
#    connection, in the migration's transaction:
#    DefaultCallbackExecutor.onEachMigrateOrUndoEvent in
#    flyway-core/src/main/java/org/flywaydb/core/internal/callback/DefaultCallbackExecutor.java.
#  - checksum: CRC32 of the script's lines without line ends, as an int:
#    flyway-core/src/main/java/org/flywaydb/core/internal/resolver/ChecksumCalculator.java.
#
# Liquibase (github:liquibase/liquibase, liquibase-standard/src/main/java/liquibase/):
#  - DATABASECHANGELOG: sqlgenerator/core/CreateDatabaseChangeLogTableGenerator.java
#    (columns and sizes), types on PostgreSQL from datatype/core/DateTimeType.java
#    (TIMESTAMP WITHOUT TIME ZONE); lower-case unquoted names:
#    database/core/AbstractPostgresDatabase.java (getDatabaseChangeLogTableName
#    ... toLowerCase) and LEGACY quoting.
#  - DATABASECHANGELOGLOCK: sqlgenerator/core/CreateDatabaseChangeLogLockTableGenerator.java
#    (primary key named by PostgresDatabase.generatePrimaryKeyName: <table>_pkey),
#    its row: InitializeDatabaseChangeLogLockTableGenerator.java (DELETE, then
#    INSERT (ID, LOCKED) VALUES (1, FALSE)); lock / unlock:
#    LockDatabaseChangeLogGenerator.java, UnlockDatabaseChangeLogGenerator.java,
#    each followed by a commit in lockservice/StandardLockService.java.
#  - the history INSERT: sqlgenerator/core/MarkChangeSetRanGenerator.java
#    (column order ID, AUTHOR, FILENAME, DATEEXECUTED (NOW(), PostgresDatabase),
#    ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS,
#    LIQUIBASE, DEPLOYMENT_ID), run and committed by
#    changelog/StandardChangeLogHistoryService.setExecType AFTER the changeset
#    committed on the same connection (changelog/ChangeSet.execute commits when
#    runInTransaction; changelog/visitor/UpdateVisitor then marks it ran).
#
# Scenarios, each in a database of its own (rb_e2e_hist_*), application in
# schema public (lib/m1_up.sql, lib/m2_up.sql as V1/V2 or changesets 1/2):
#   flyway_default    two connections; Flyway creates its table (and a SCHEMA
#                     marker) before track_schema; V1, R__item_names.sql, V2;
#                     revert V2; V2 again
#   flyway_single     transactional.lock=false; `flyway baseline` after
#                     track_schema (BASELINE row), next to a hand-made
#                     unlabelled migration; V2; revert; V2 again
#   flyway_callbacks  two connections, begin_migration / end_migration from
#                     beforeEachMigrate / afterEachMigrate; SCHEMA marker after
#                     track_schema next to a hand-made unlabelled migration
#   liquibase_before  Liquibase's tables created before track_schema
#   liquibase_after   ... after track_schema
#
# A scenario whose check fails stops; the other scenarios still run, and the
# test fails at the end.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
LIB=$(cd "$(dirname "$0")/lib" && pwd)

e2e_init history_tables

PGUSER_NAME=$(sql -c 'SELECT current_user')
# Flyway's advisory lock number for "public"."flyway_schema_history" (see above).
FW_LOCK=77433833903597
FW_COLS='"installed_rank", "version", "description", "type", "script", "checksum", "installed_by", "execution_time", "success"'
FW_SELECT='/*NO LOAD BALANCE*/
SELECT "installed_rank","version","description","type","script","checksum","installed_on","installed_by","execution_time","success" FROM "public"."flyway_schema_history" WHERE "installed_rank" > -1 ORDER BY "installed_rank";'
LB_LOCKEDBY="$(hostname) (127.0.0.1)"
LB_VERSION=4.31.1
# An automatic migration without a history row, in migrations_list.
AUTO_RE='^auto:[0-9]+[|]<null>[|](applied|verified)$'
# use_db NAME: a fresh database rb_e2e_hist_NAME with the extension, nothing
# tracked; the helpers of lib/common.sh (sql, show, capture, ...) use it.
use_db() {
	E2E_DB=rb_e2e_hist_$1
	psql -X -q -v ON_ERROR_STOP=1 -d postgres \
		-c 'SET client_min_messages = warning' \
		-c "DROP DATABASE IF EXISTS $E2E_DB WITH (FORCE)" \
		-c "CREATE DATABASE $E2E_DB"
	sql -c 'CREATE EXTENSION rollback'
	echo "database $E2E_DB"
}

# ---------------------------------------------------------------------------
# Sessions: a psql kept open on a fifo (a tool's JDBC connection). sess_send
# sends statements without waiting; sess_wait waits for them; sess_run does
# both and prints their output.

sess_open() {
	local n=$1 fd
	local in=$E2E_DIR/sess_$n.in out=$E2E_DIR/sess_$n.out
	rm -f "$in" "$out"
	mkfifo "$in"
	exec {fd}<>"$in"
	psql -X -q -A -t -v ON_ERROR_STOP=1 -v VERBOSITY=terse -d "$E2E_DB" <"$in" >"$out" 2>&1 &
	echo "$!" >>"$E2E_DIR/sess_pids"
	printf -v "SESS_PID_$n" %s "$!"
	printf -v "SESS_FD_$n" %s "$fd"
	printf -v "SESS_BACKEND_$n" %s "$(sess_run "$n" 'SELECT pg_backend_pid();')"
}

sess_send() {
	local n=$1 text=$2
	local fdv=SESS_FD_$n tok=$RANDOM$RANDOM$RANDOM
	printf -v "SESS_TOK_$n" %s "$tok"
	# shellcheck disable=SC2001 # a prefix on every line
	sed "s/^/    [$n] /" <<<"$text" >&2
	printf '\\echo <<%s\n%s\n\\echo >>%s\n' "$tok" "$text" "$tok" >&"${!fdv}"
}

# sess_wait N SECONDS: 0 when the statements sent last are done, 1 when they
# still run after SECONDS; fails when the session ended (an error).
sess_wait() {
	local n=$1 secs=$2 i=0
	local pidv=SESS_PID_$n tokv=SESS_TOK_$n
	local out=$E2E_DIR/sess_$n.out
	while ! grep -qx ">>${!tokv}" "$out"; do
		if ! kill -0 "${!pidv}" 2>/dev/null; then
			sed -n "/^<<${!tokv}\$/,\$p" "$out" | tail -n +2 >&2
			fail "session $n ended: the statements above failed"
		fi
		[[ $i -lt $((secs * 20)) ]] || return 1
		sleep 0.05
		i=$((i + 1))
	done
	return 0
}

sess_result() {
	local n=$1
	local tokv=SESS_TOK_$n
	sed -n "/^<<${!tokv}\$/,/^>>${!tokv}\$/p" "$E2E_DIR/sess_$n.out" | sed '1d;$d'
}

sess_run() {
	sess_send "$1" "$2"
	sess_wait "$1" "$E2E_TOOL_TIMEOUT" || fail "session $1: no answer within ${E2E_TOOL_TIMEOUT}s"
	sess_result "$1"
}

sess_close() {
	local n=$1
	local fdv=SESS_FD_$n pidv=SESS_PID_$n
	printf '\\q\n' >&"${!fdv}"
	wait "${!pidv}" || true
	exec {fdv}>&-
}

# Sessions of a scenario that failed half-way: end them (by their pids).
sess_kill_all() {
	local p
	[[ -f "$E2E_DIR/sess_pids" ]] || return 0
	while read -r p; do kill "$p" 2>/dev/null || true; done <"$E2E_DIR/sess_pids"
	rm -f "$E2E_DIR/sess_pids"
}
trap 'sess_kill_all; [[ -z "$E2E_TOOL_PGID" ]] || kill -KILL -- "-$E2E_TOOL_PGID" 2>/dev/null || true' EXIT

# ---------------------------------------------------------------------------
# Checks

# expect WHAT ACTUAL EXPECTED
expect() {
	if [[ "$2" != "$3" ]]; then
		fail "$1: expected
$3
got
$2"
	fi
	echo "ok: $1"
}

# label_of VERSION: "tool|status|description" of the newest migration VERSION.
label_of() {
	sql -c "SELECT coalesce(tool, '<null>') || '|' || status || '|' || coalesce(description, '<null>')
	          FROM rollback.migration WHERE version = '$1' AND kind = 'migration' ORDER BY id DESC LIMIT 1"
}

# no_label_from TEXT...: no migration carries these versions (marker rows).
no_label_from() {
	local v n
	for v in "$@"; do
		n=$(sql -c "SELECT count(*) FROM rollback.migration WHERE version = \$\$$v\$\$ OR description = \$\$$v\$\$")
		[[ "$n" == 0 ]] || fail "the marker row '$v' labelled a migration: $(migrations_list | tr '\n' ' ')"
	done
	echo "ok: no migration labelled by: $*"
}

# same_apart_from_times A B WHAT: the states A and B (capture) are equal once
# the columns a tool fills from the clock or the run are masked (Flyway's
# installed_on and execution_time, Liquibase's dateexecuted and deployment_id):
# a migration applied again.
same_apart_from_times() {
	local a=$1 b=$2 f
	for f in "$a" "$b"; do
		sed -E -e 's/"installed_on": "[^"]*"/"installed_on": "T"/; s/"execution_time": [0-9]+/"execution_time": 0/' \
			-e 's/"dateexecuted": "[^"]*"/"dateexecuted": "T"/; s/"deployment_id": "[^"]*"/"deployment_id": "D"/' \
			"$E2E_DIR/$f.data" >"$E2E_DIR/$f.masked"
	done
	if ! diff -u "$E2E_DIR/$a.schema" "$E2E_DIR/$b.schema" >&2 || ! diff -u "$E2E_DIR/$a.masked" "$E2E_DIR/$b.masked" >&2; then
		fail "$3: the state after '$b' is not the state after '$a' (diff above)"
	fi
	echo "ok: $3 (schema dump and table contents equal, apart from the tools' times)"
}

# ---------------------------------------------------------------------------
# Flyway

fw_checksum() {
	python3 -c '
import sys, zlib
lines = open(sys.argv[1], encoding="utf-8").read().lstrip("\ufeff").splitlines()
c = 0
for l in lines:
    c = zlib.crc32(l.encode("utf-8"), c)
print(c - (1 << 32) if c >= 1 << 31 else c)' "$1"
}

# fw_rank SESSION TYPE: SchemaHistory.calculateInstalledRank (the last rank + 1)
# from what the session reads of the history table (Flyway's main connection,
# where it read its cache).
fw_rank() {
	sess_run "$1" "SELECT coalesce(max(installed_rank) + 1, CASE WHEN '$2' = 'SCHEMA' THEN 0 ELSE 1 END) FROM public.flyway_schema_history;"
}

# fw_insert RANK VERSION|'' DESCRIPTION TYPE SCRIPT CHECKSUM|'' MS: Flyway's
# INSERT with the values bound (NULL for an empty version or checksum).
fw_insert() {
	local v=NULL c=NULL
	[[ -z "$2" ]] || v="'$2'"
	[[ -z "$6" ]] || c=$6
	echo "INSERT INTO \"public\".\"flyway_schema_history\" ($FW_COLS) VALUES ($1, $v, '$3', '$4', '$5', $c, '$PGUSER_NAME', $7, true);"
}

FW_CREATE_TABLE='CREATE TABLE "public"."flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);'
FW_PK_IDX='ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success");'

# fw_migrate_two FILE VERSION|'' DESCRIPTION [callbacks]: one migration as
# Flyway applies it with flyway.postgresql.transactional.lock=true (default):
# main connection B: BEGIN, the advisory xact lock, the history read; the
# migration connection A: BEGIN, the migration; B: the history INSERT, while A
# has not committed; A: COMMIT; B: COMMIT. With "callbacks", A runs
# rollback.begin_migration(version, description, 'flyway') before and
# rollback.end_migration() after the migration (a Java callback on
# beforeEachMigrate / afterEachMigrate using the context's connection). Sessions
# A and B must be open (one Flyway run).
fw_migrate_two() {
	local file=$1 ver=$2 desc=$3 cb=${4:-} script rank cks t0 ms type=SQL label cb_before='' cb_after=''
	script=$(basename "$file")
	# A repeatable SQL migration is of type SQL too, with version NULL.
	cks=$(fw_checksum "$file")
	label=${ver:-$script}
	if [[ -n "$cb" ]]; then
		cb_before="SELECT rollback.begin_migration('$label', '$desc', 'flyway');"
		cb_after='SELECT rollback.end_migration();'
	fi
	sess_run B "BEGIN;
SELECT pg_try_advisory_xact_lock($FW_LOCK);
$FW_SELECT" >/dev/null
	rank=$(fw_rank B SQL)
	t0=$(date +%s%3N)
	sess_run A "BEGIN;
SET ROLE '$PGUSER_NAME';
SELECT set_config('search_path', '\"public\",\"\$user\", public', false);
$cb_before
\\i $file
$cb_after" >/dev/null
	ms=$(($(date +%s%3N) - t0))
	# Flyway's order: the history INSERT on the main connection returns while
	# the migration's transaction is still open; only then the two COMMITs.
	# An INSERT that waited for the migration would hang Flyway for ever.
	sess_send B "$(fw_insert "$rank" "$ver" "$desc" "$type" "$script" "$cks" "$ms")"
	if ! sess_wait B 10; then
		fail "the history INSERT of '$label' waits for $(sql -c "SELECT pg_blocking_pids($SESS_BACKEND_B)") (session A, the migration, is $SESS_BACKEND_A): Flyway would hang here"
	fi
	sess_run A 'COMMIT;' >/dev/null
	sess_run B 'COMMIT;' >/dev/null
	# The row (installed_rank $rank), inserted before the migration committed,
	# labels the migration just applied: the newest one.
	local paired
	paired=$(sql -c "SELECT m.id = (SELECT max(id) FROM rollback.migration WHERE kind = 'migration') AND m.version = '$label'
	                   FROM rollback.migration m WHERE m.tool = 'flyway' AND m.tool_ref = '$rank' ORDER BY m.id DESC LIMIT 1")
	expect "Flyway's history row of '$label' (installed_rank $rank) labels the migration just applied" "$paired" t
}

# fw_migrate_one FILE VERSION DESCRIPTION: flyway.postgresql.transactional.lock
# =false: one connection; session advisory lock, the migration and the history
# INSERT in one transaction, unlock.
fw_migrate_one() {
	local file=$1 ver=$2 desc=$3 script rank cks
	script=$(basename "$file")
	cks=$(fw_checksum "$file")
	sess_run A "SELECT pg_try_advisory_lock($FW_LOCK);
$FW_SELECT" >/dev/null
	rank=$(fw_rank A SQL)
	sess_run A "BEGIN;
SET ROLE '$PGUSER_NAME';
SELECT set_config('search_path', '\"public\",\"\$user\", public', false);
\\i $file
$(fw_insert "$rank" "$ver" "$desc" SQL "$script" "$cks" 7)
COMMIT;
SELECT pg_advisory_unlock($FW_LOCK);" >/dev/null
}

fw_history() {
	sql -c "SELECT installed_rank || '|' || coalesce(version, '<null>') || '|' || type || '|' || script FROM public.flyway_schema_history ORDER BY installed_rank"
}

# The project's scripts: V1 and V2 are the migrations of lib/m1_up.sql and
# lib/m2_up.sql; R__item_names.sql a repeatable one.
fw_project() {
	local d=$1
	mkdir -p "$d/sql"
	cp "$LIB/m1_up.sql" "$d/sql/V1__create_items.sql"
	cp "$LIB/m2_up.sql" "$d/sql/V2__reshape_items.sql"
	cat >"$d/sql/R__item_names.sql" <<'EOF'
CREATE OR REPLACE VIEW public.item_names AS SELECT id, name FROM public.items;
EOF
}

# fw_create_schema_and_history: what Flyway (flyway.schemas=public,fw_audit)
# does on an empty database, in one transaction of its main connection
# (DbSchemas): CREATE SCHEMA fw_audit, the history table in public, the SCHEMA
# marker row.
fw_create_schema_and_history() {
	sess_open B
	sess_run B "BEGIN;
CREATE SCHEMA \"fw_audit\";
SELECT pg_try_advisory_xact_lock($FW_LOCK);
$FW_CREATE_TABLE
$FW_PK_IDX
$FW_SELECT" >/dev/null
	sess_run B "$(fw_insert "$(fw_rank B SCHEMA)" '' '<< Flyway Schema Creation >>' SCHEMA '"fw_audit"' '' 0)
COMMIT;" >/dev/null
	sess_close B
}

# ---------------------------------------------------------------------------
# Scenario 1: Flyway, default mode (two connections), history table created by
# Flyway's schema creation BEFORE track_schema('public').
scenario_flyway_default() {
	E2E_NAME=flyway_default
	local P=$E2E_DIR/flyway_default
	fw_project "$P"

	step "database; Flyway (flyway.schemas=public,fw_audit) creates schema fw_audit, its history table and the SCHEMA marker, in one transaction of its main connection"
	use_db flyway_default
	fw_create_schema_and_history
	expect "the history table's columns (Flyway's DDL)" \
		"$(sql -c "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'public.flyway_schema_history'::regclass AND attnum > 0")" \
		"installed_rank integer not null, version character varying(50), description character varying(200) not null, type character varying(20) not null, script character varying(1000) not null, checksum integer, installed_by character varying(100) not null, installed_on timestamp without time zone not null, execution_time integer not null, success boolean not null"
	expect "constraint and index names" \
		"$(sql -c "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 'flyway_schema_history_%'")" \
		"flyway_schema_history_pk,flyway_schema_history_s_idx"

	step "rollback.track_schema('public') after Flyway created its table: the history table is tracked and labels"
	sql -c "SELECT rollback.track_schema('public')" >/dev/null
	expect "no migration yet" "$(migrations_list)" ""

	step "flyway migrate (run 1): V1 (create items) and R__item_names.sql (repeatable), two connections"
	sess_open B
	sess_open A
	fw_migrate_two "$P/sql/V1__create_items.sql" 1 'create items'
	fw_migrate_two "$P/sql/R__item_names.sql" '' 'item names'
	sess_close A
	sess_close B
	show "SELECT installed_rank, version, description, type, script, success FROM public.flyway_schema_history ORDER BY 1"
	show_migrations
	check_migrations '1|flyway|applied|verified' 'R__item_names.sql|flyway|applied|verified'
	no_label_from '<< Flyway Schema Creation >>'
	capture fd_after_r

	step "flyway migrate (run 2): V2 (reshape items: schema and data)"
	sess_open B
	sess_open A
	fw_migrate_two "$P/sql/V2__reshape_items.sql" 2 'reshape items'
	sess_close A
	sess_close B
	capture fd_after_v2
	different_state fd_after_r fd_after_v2 "V2"
	show_migrations
	check_migrations '1|flyway|applied|verified' 'R__item_names.sql|flyway|applied|verified' '2|flyway|applied|verified'
	expect "V2's description" "$(label_of 2)" "flyway|applied|reshape items"

	step "rollback.revert_migration(): revert V2"
	show "SELECT * FROM rollback.revert_migration(reason => 'e2e flyway default')"
	capture fd_after_revert
	expect "flyway_schema_history after the revert: V2's row gone, Flyway sees V2 pending" "$(fw_history)" \
		'0|<null>|SCHEMA|"fw_audit"
1|1|SQL|V1__create_items.sql
2|<null>|SQL|R__item_names.sql'
	same_state fd_after_r fd_after_revert "revert of V2 (Flyway, two connections)"

	step "flyway migrate again: V2 applied again and labelled again"
	sess_open B
	sess_open A
	fw_migrate_two "$P/sql/V2__reshape_items.sql" 2 'reshape items'
	sess_close A
	sess_close B
	capture fd_after_redeploy
	same_apart_from_times fd_after_v2 fd_after_redeploy "V2 applied again"
	show_migrations
	check_migrations '1|flyway|applied|verified' 'R__item_names.sql|flyway|applied|verified' '2|flyway|reverted' \
		'revert:2|rollback|applied|verified' '2|flyway|applied|verified'
}

# ---------------------------------------------------------------------------
# Scenario 2: Flyway with flyway.postgresql.transactional.lock=false (one
# connection, the history INSERT in the migration's transaction); public is
# tracked first, the application was created by hand (an unlabelled automatic
# migration), then `flyway baseline` creates the history table with its
# BASELINE row AFTER track_schema.
scenario_flyway_single() {
	E2E_NAME=flyway_single
	local P=$E2E_DIR/flyway_single
	fw_project "$P"

	step "database, public tracked, the application's table created by hand (an automatic migration, no history row)"
	use_db flyway_single
	sql -c "SELECT rollback.track_schema('public')" >/dev/null
	sql -1 -f "$LIB/m1_up.sql" >/dev/null
	local auto
	auto=$(migrations_list)
	[[ "$auto" =~ $AUTO_RE ]] || fail "the hand-made DDL: expected one automatic migration, got: $auto"
	echo "ok: $auto"

	step "flyway baseline (baselineVersion 1): the history table created with its BASELINE row in one transaction"
	local baseline out
	baseline="BEGIN;
SELECT pg_try_advisory_xact_lock($FW_LOCK);
$FW_CREATE_TABLE
INSERT INTO \"public\".\"flyway_schema_history\" ($FW_COLS) VALUES (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, '$PGUSER_NAME', 0, TRUE);
$FW_PK_IDX
COMMIT;"
	# shellcheck disable=SC2001 # a prefix on every line
	sed 's/^/    [A] /' <<<"$baseline" >&2
	if ! out=$(sql -c "$baseline" 2>&1); then
		echo "$out"
		fail "Flyway's baseline script failed"
	fi
	sess_open A
	show_migrations
	expect "the BASELINE row labels nothing (the hand-made migration stays unlabelled)" "$(migrations_list)" "$auto"
	no_label_from '<< Flyway Baseline >>'
	expect "flyway_schema_history is tracked" \
		"$(sql -c "SELECT count(*) FROM rollback.tracked_table WHERE relid = 'public.flyway_schema_history'::regclass")" 1
	capture fs_after_baseline

	step "flyway migrate with flyway.postgresql.transactional.lock=false: V2, history INSERT in the migration's transaction"
	fw_migrate_one "$P/sql/V2__reshape_items.sql" 2 'reshape items'
	capture fs_after_v2
	different_state fs_after_baseline fs_after_v2 "V2"
	show_migrations
	check_migrations '2|flyway|applied|verified'
	expect "the hand-made migration is still unlabelled" "$(migrations_list | head -1)" "$auto"
	expect "V2's description" "$(label_of 2)" "flyway|applied|reshape items"

	step "rollback.revert_migration(): revert V2"
	show "SELECT * FROM rollback.revert_migration(reason => 'e2e flyway single connection')"
	capture fs_after_revert
	expect "flyway_schema_history after the revert: the BASELINE row only" "$(fw_history)" \
		'1|1|BASELINE|<< Flyway Baseline >>'
	same_state fs_after_baseline fs_after_revert "revert of V2 (Flyway, one connection)"

	step "flyway migrate again (one connection)"
	fw_migrate_one "$P/sql/V2__reshape_items.sql" 2 'reshape items'
	sess_close A
	capture fs_after_redeploy
	same_apart_from_times fs_after_v2 fs_after_redeploy "V2 applied again"
	check_migrations '2|flyway|reverted' 'revert:2|rollback|applied|verified' '2|flyway|applied|verified'
}

# ---------------------------------------------------------------------------
# Scenario 3: Flyway's callbacks call begin_migration / end_migration in the
# migration's transaction (two connections, history row from the main
# connection). public is tracked from the start and holds an unlabelled
# automatic migration, which no Flyway row may label; Flyway creates its table
# (with a created schema's SCHEMA marker) AFTER track_schema.
scenario_flyway_callbacks() {
	E2E_NAME=flyway_callbacks
	local P=$E2E_DIR/flyway_callbacks
	fw_project "$P"

	step "database, public tracked, a hand-made table (an automatic migration without a history row)"
	use_db flyway_callbacks
	sql -c "SELECT rollback.track_schema('public')" >/dev/null
	sql -c "CREATE TABLE public.settings (k text PRIMARY KEY, v text)" >/dev/null
	local auto
	auto=$(migrations_list)
	[[ "$auto" =~ $AUTO_RE ]] || fail "expected one automatic migration, got: $auto"

	step "Flyway creates schema fw_audit, its history table in public and the SCHEMA marker (after track_schema)"
	fw_create_schema_and_history
	expect "the SCHEMA marker labels nothing" "$(migrations_list)" "$auto"
	no_label_from '<< Flyway Schema Creation >>'
	capture fc_before

	step "flyway migrate with callbacks: V1 (begin_migration('1') ... end_migration() in the migration's transaction, history row from the main connection)"
	sess_open B
	sess_open A
	fw_migrate_two "$P/sql/V1__create_items.sql" 1 'create items' callbacks
	sess_close A
	sess_close B
	show_migrations
	expect "the hand-made migration stays unlabelled" "$(migrations_list | head -1)" "$auto"
	check_migrations '1|flyway|applied|verified'
	capture fc_after_v1

	step "flyway migrate with callbacks: V2"
	sess_open B
	sess_open A
	fw_migrate_two "$P/sql/V2__reshape_items.sql" 2 'reshape items' callbacks
	sess_close A
	sess_close B
	capture fc_after_v2
	different_state fc_after_v1 fc_after_v2 "V2"
	show_migrations
	expect "the hand-made migration stays unlabelled" "$(migrations_list | head -1)" "$auto"
	check_migrations '1|flyway|applied|verified' '2|flyway|applied|verified'
	expect "the history row of V2 is paired with V2 (tool_ref = its installed_rank)" \
		"$(sql -c "SELECT tool_ref FROM rollback.migration WHERE version = '2'")" 2

	step "rollback.revert_migration(): revert V2"
	show "SELECT * FROM rollback.revert_migration(reason => 'e2e flyway callbacks')"
	capture fc_after_revert
	expect "flyway_schema_history after the revert: V2's row gone" "$(fw_history)" \
		'0|<null>|SCHEMA|"fw_audit"
1|1|SQL|V1__create_items.sql'
	same_state fc_after_v1 fc_after_revert "revert of V2 (Flyway callbacks)"

	step "flyway migrate again with callbacks: V2"
	sess_open B
	sess_open A
	fw_migrate_two "$P/sql/V2__reshape_items.sql" 2 'reshape items' callbacks
	sess_close A
	sess_close B
	capture fc_after_redeploy
	same_apart_from_times fc_after_v2 fc_after_redeploy "V2 applied again"
	check_migrations '1|flyway|applied|verified' '2|flyway|reverted' 'revert:2|rollback|applied|verified' '2|flyway|applied|verified'
}

# ---------------------------------------------------------------------------
# Liquibase

LB_FILE=db/changelog/db.changelog-master.sql

# lb_changesets DIR: a formatted SQL changelog's changesets, one file each.
lb_project() {
	local d=$1
	mkdir -p "$d"
	cp "$LIB/m1_up.sql" "$d/1.sql"
	cp "$LIB/m2_up.sql" "$d/2.sql"
	cat >"$d/3.sql" <<'EOF'
CREATE VIEW public.item_names AS SELECT id, name FROM public.items;
UPDATE public.items SET price_cents = price_cents + 5, price = price + 0.05 WHERE name = 'Pear';
EOF
}

lb_lock() {
	sess_run L "BEGIN;
SELECT LOCKED FROM public.databasechangeloglock WHERE ID=1;
UPDATE public.databasechangeloglock SET LOCKED = TRUE, LOCKGRANTED = NOW(), LOCKEDBY = '$LB_LOCKEDBY' WHERE ID = 1 AND LOCKED = FALSE;
COMMIT;" >/dev/null
}

lb_unlock() {
	sess_run L "BEGIN;
UPDATE public.databasechangeloglock SET LOCKED = FALSE, LOCKGRANTED = NULL, LOCKEDBY = NULL WHERE ID = 1;
COMMIT;" >/dev/null
}

# lb_changeset DIR ID DEPLOYMENT_ID: the changeset in its transaction, COMMIT;
# then, in a transaction of its own, the next ORDEREXECUTED and the
# DATABASECHANGELOG row, COMMIT. (pgjdbc with autocommit off begins a
# transaction at the first statement after a commit: BEGIN here.)
lb_changeset() {
	local d=$1 id=$2 dep=$3 order md5
	md5=9:$(md5sum <"$d/$id.sql" | cut -c1-32)
	sess_run L "BEGIN;
\\i $d/$id.sql
COMMIT;" >/dev/null
	order=$(sess_run L "BEGIN;
SELECT MAX(ORDEREXECUTED) FROM public.databasechangelog;")
	order=$((${order:-0} + 1))
	sess_run L "INSERT INTO public.databasechangelog (ID, AUTHOR, FILENAME, DATEEXECUTED, ORDEREXECUTED, MD5SUM, DESCRIPTION, COMMENTS, EXECTYPE, CONTEXTS, LABELS, LIQUIBASE, DEPLOYMENT_ID) VALUES ('$id', 'e2e', '$LB_FILE', NOW(), $order, '$md5', 'sql', '', 'EXECUTED', NULL, NULL, '$LB_VERSION', '$dep');
COMMIT;" >/dev/null
}

lb_history() {
	sql -c "SELECT orderexecuted || '|' || id || '|' || author || '|' || filename || '|' || exectype FROM public.databasechangelog ORDER BY orderexecuted"
}

lb_lockrow() {
	sql -c "SELECT id || '|' || locked || '|' || coalesce(lockgranted::text, '<null>') || '|' || coalesce(lockedby, '<null>') FROM public.databasechangeloglock"
}

# lb_first_update DIR DEPLOYMENT_ID: Liquibase's first `update` (changeset 1):
# it creates and initializes the lock table, takes the lock, creates
# DATABASECHANGELOG, runs the changeset, releases the lock.
lb_first_update() {
	sess_open L
	# JDBC with autocommit off: every statement runs in an open transaction.
	sess_run L "BEGIN;
CREATE TABLE public.databasechangeloglock (ID INTEGER NOT NULL, LOCKED BOOLEAN NOT NULL, LOCKGRANTED TIMESTAMP WITHOUT TIME ZONE, LOCKEDBY VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (ID));
COMMIT;
BEGIN;
DELETE FROM public.databasechangeloglock;
INSERT INTO public.databasechangeloglock (ID, LOCKED) VALUES (1, FALSE);
COMMIT;" >/dev/null
	lb_lock
	sess_run L "BEGIN;
CREATE TABLE public.databasechangelog (ID VARCHAR(255) NOT NULL, AUTHOR VARCHAR(255) NOT NULL, FILENAME VARCHAR(255) NOT NULL, DATEEXECUTED TIMESTAMP WITHOUT TIME ZONE NOT NULL, ORDEREXECUTED INTEGER NOT NULL, EXECTYPE VARCHAR(10) NOT NULL, MD5SUM VARCHAR(35), DESCRIPTION VARCHAR(255), COMMENTS VARCHAR(255), TAG VARCHAR(255), LIQUIBASE VARCHAR(20), CONTEXTS VARCHAR(255), LABELS VARCHAR(255), DEPLOYMENT_ID VARCHAR(10));
COMMIT;" >/dev/null
	lb_changeset "$1" 1 "$2"
	lb_unlock
	sess_close L
}

# lb_update DIR ID DEPLOYMENT_ID [check]: a later `update` with one pending
# changeset; with "check", assert that taking the lock started no migration.
lb_update() {
	local n
	n=$(migrations_list | grep -c . || true)
	sess_open L
	lb_lock
	if [[ "${4:-}" == check ]]; then
		expect "the lock's UPDATE (committed) started no migration" "$(migrations_list | grep -c . || true)" "$n"
	fi
	lb_changeset "$1" "$2" "$3"
	lb_unlock
	sess_close L
}

# Scenario 4/5: Liquibase; its two tables created by its first update BEFORE
# track_schema('public') (so that track_schema finds the lock table as well),
# or AFTER it (public tracked from the start: its first changeset is a tracked
# migration too).
scenario_liquibase() {
	local order=$1
	local C=lb_$order
	E2E_NAME=liquibase_$order
	local P=$E2E_DIR/liquibase_$order
	lb_project "$P"

	use_db "liquibase_$order"
	if [[ $order == after ]]; then
		step "public tracked, then liquibase update (changeset 1): lock table, lock, DATABASECHANGELOG, changeset, unlock"
		sql -c "SELECT rollback.track_schema('public')" >/dev/null
		lb_first_update "$P" 1000000001
		show_migrations
		check_migrations '1|liquibase|applied|verified'
		expect "creating Liquibase's tables and its lock UPDATEs started no migration" "$(migrations_list | wc -l)" 1
	else
		step "liquibase update (changeset 1) before public is tracked: lock table, lock, DATABASECHANGELOG, changeset, unlock"
		lb_first_update "$P" 1000000001
	fi
	expect "DATABASECHANGELOG's columns (Liquibase's DDL, lower case)" \
		"$(sql -c "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'public.databasechangelog'::regclass AND attnum > 0")" \
		"id character varying(255) not null, author character varying(255) not null, filename character varying(255) not null, dateexecuted timestamp without time zone not null, orderexecuted integer not null, exectype character varying(10) not null, md5sum character varying(35), description character varying(255), comments character varying(255), tag character varying(255), liquibase character varying(20), contexts character varying(255), labels character varying(255), deployment_id character varying(10)"
	if [[ $order == before ]]; then
		step "rollback.track_schema('public') after Liquibase created its tables"
		sql -c "SELECT rollback.track_schema('public')" >/dev/null
		expect "no migration yet" "$(migrations_list)" ""
	fi
	show "SELECT relid::regclass AS tracked FROM rollback.tracked_table ORDER BY 1"
	expect "databasechangelog is tracked" \
		"$(sql -c "SELECT count(*) FROM rollback.tracked_table WHERE relid = 'public.databasechangelog'::regclass")" 1
	capture "${C}_after_1"

	step "liquibase update: lock, changeset 2 (schema and data), unlock"
	lb_update "$P" 2 1000000002 check
	show_migrations
	check_migrations '2|liquibase|applied|verified'
	expect "changeset 2's description (file and author)" "$(label_of 2)" "liquibase|applied|$LB_FILE (author e2e)"
	capture "${C}_after_2"
	different_state "${C}_after_1" "${C}_after_2" "changeset 2"

	step "liquibase update: lock, changeset 3 (a view and a data change), unlock"
	lb_update "$P" 3 1000000003
	show_migrations
	check_migrations '2|liquibase|applied|verified' '3|liquibase|applied|verified'
	expect "each labelled migration is paired with its own DATABASECHANGELOG row (id::author::filename), the lock's UPDATEs with nothing" \
		"$(sql -c "SELECT string_agg(version || '=' || tool_ref, ' ' ORDER BY id) FROM rollback.migration WHERE tool = 'liquibase'")" \
		"$([[ $order == after ]] && echo -n "1=1::e2e::$LB_FILE ")2=2::e2e::$LB_FILE 3=3::e2e::$LB_FILE"
	expect "the lock row after the update: released" "$(lb_lockrow)" "1|false|<null>|<null>"
	capture "${C}_after_3"
	different_state "${C}_after_2" "${C}_after_3" "changeset 3"

	step "rollback.revert_migration(): revert changeset 3"
	show "SELECT * FROM rollback.revert_migration(reason => 'e2e liquibase')"
	expect "DATABASECHANGELOG after the revert: changeset 3's row gone, 1 and 2 remain" "$(lb_history)" \
		"1|1|e2e|$LB_FILE|EXECUTED
2|2|e2e|$LB_FILE|EXECUTED"
	expect "the lock row is not reverted (released, as Liquibase left it)" "$(lb_lockrow)" "1|false|<null>|<null>"
	capture "${C}_after_revert"
	same_state "${C}_after_2" "${C}_after_revert" "revert of changeset 3 (Liquibase)"

	step "liquibase update again: changeset 3"
	lb_update "$P" 3 1000000004
	capture "${C}_after_redeploy"
	same_apart_from_times "${C}_after_3" "${C}_after_redeploy" "changeset 3 applied again"
	show_migrations
	check_migrations '2|liquibase|applied|verified' '3|liquibase|reverted' \
		'revert:3|rollback|applied|verified' '3|liquibase|applied|verified'
}

# ---------------------------------------------------------------------------
# Each scenario in a subshell of its own (its own database): a failure ends that
# scenario only; the summary fails the test.
RESULTS=()
for s in flyway_default flyway_single flyway_callbacks "liquibase before" "liquibase after"; do
	set +e
	(
		set -e
		# shellcheck disable=SC2086 # "liquibase before": function and argument
		scenario_$s
	)
	rc=$?
	set -e
	sess_kill_all
	if [[ $rc -eq 0 ]]; then RESULTS+=("${s/ /_}: passed"); else RESULTS+=("${s/ /_}: FAILED"); fi
done

echo
echo "== e2e history_tables: summary"
printf '  %s\n' "${RESULTS[@]}"
if printf '%s\n' "${RESULTS[@]}" | grep -q FAILED; then
	echo "e2e history_tables: FAILED" >&2
	exit 1
fi
echo "e2e history_tables: passed"
