#!/usr/bin/env bash
# End-to-end: the real dbmate applies two migrations to a database whose schema
# public is tracked; rollback.revert_migration() reverts the second; dbmate then
# reports it pending, schema public is as it was after the first migration
# (pg_dump --schema-only and every row, public.schema_migrations included), and
# dbmate applies it again.
#
# How dbmate writes its history: one connection; before migrating it runs
# `create table if not exists public.schema_migrations (version varchar primary
# key)` on its own (autocommit); then per migration BEGIN READ WRITE, the up
# section sent as one multi-statement query, `insert into
# public.schema_migrations (version) values ($1)`, COMMIT. After migrating it
# dumps the schema (pg_dump, plus another `create table if not exists` in a new
# session). `dbmate status` reads public.schema_migrations only.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
LIB=$(cd "$(dirname "$0")/lib" && pwd)

e2e_init dbmate

PROJ=$E2E_DIR/project
V1=20250101120000
V2=20250102120000
dbmate_init "$PROJ"

step "dbmate project in $PROJ: migrations $V1 (create items) and $V2 (reshape items)"
for c in 1 2; do
	v=V$c
	case $c in 1) f=create_items ;; 2) f=reshape_items ;; esac
	{
		echo "-- migrate:up"
		cat "$LIB/m${c}_up.sql"
		echo
		echo "-- migrate:down"
		cat "$LIB/m${c}_down.sql"
	} >"$PROJ/db/migrations/${!v}_$f.sql"
done
ls "$PROJ/db/migrations"
# Only the first one is in place for the first run.
mv "$PROJ/db/migrations/${V2}_reshape_items.sql" "$E2E_DIR/"

step "dbmate migrate ($V1)"
dm migrate
mv "$E2E_DIR/${V2}_reshape_items.sql" "$PROJ/db/migrations/"
dbmate_expect_status "$V1" "$V2"
capture after_m1

step "dbmate migrate ($V2: schema and data)"
dm migrate
dbmate_expect_status "$V1 $V2" ""
capture after_m2
different_state after_m1 after_m2 "$V2"

step "rollback.migrations labels the migrations with dbmate's versions"
show_migrations
check_migrations "$V1|dbmate|applied|verified" "$V2|dbmate|applied|verified"

revert_last "$V2"

step "dbmate sees $V2 as pending"
show "SELECT version FROM public.schema_migrations ORDER BY version"
dbmate_expect_status "$V1" "$V2"

step "schema public (public.schema_migrations included) is as it was after $V1"
same_state after_m1 after_revert "revert of $V2"

step "dbmate migrate again"
dm migrate
dbmate_expect_status "$V1 $V2" ""
capture after_redeploy
same_state after_m2 after_redeploy "$V2 applied again"

step "rollback.migrations at the end"
show_migrations
# The revert has a row of its own (kind 'revert', tool 'rollback'), so that it
# can be reverted in turn.
check_migrations "$V1|dbmate|applied|verified" "$V2|dbmate|reverted" \
	"revert:$V2|rollback|applied|verified" "$V2|dbmate|applied|verified"

echo
echo "e2e dbmate: passed"
