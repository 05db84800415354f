#!/usr/bin/env bash
# End-to-end: the real Sqitch deploys two changes to a database whose schema
# public is tracked; rollback.revert_migration() reverts the second; Sqitch then
# sees it as not deployed, schema public is as it was after the first change
# (pg_dump --schema-only and every row), and Sqitch deploys it again.
#
# How Sqitch writes its history (see the report in the test's notes): the
# registry (schema sqitch) is written from Sqitch's own DBI connection, in a
# transaction that begins and takes LOCK TABLE sqitch.changes IN EXCLUSIVE MODE
# before the change's script runs, and that inserts into sqitch.changes,
# sqitch.dependencies and sqitch.events after it. The script runs in another
# session: psql --file deploy/CHANGE.sql, with the script's own BEGIN/COMMIT.
# `sqitch status` reads the newest sqitch.changes row of the project only.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
LIB=$(cd "$(dirname "$0")/lib" && pwd)

e2e_init sqitch

PROJ=$E2E_DIR/project
sqitch_init "$PROJ"

step "Sqitch project in $PROJ: changes m1 (create items) and m2 (reshape items)"
sq init e2e --engine pg
sq add m1 -n 'create table items'
sq add m2 -r m1 -n 'reshape items: add price, backfill, drop legacy_code, add item_tags'
for c in m1 m2; do
	{ echo "-- Deploy e2e:$c to pg"; echo "BEGIN;"; cat "$LIB/${c}_up.sql"; echo "COMMIT;"; } >"$PROJ/deploy/$c.sql"
	{ echo "-- Revert e2e:$c from pg"; echo "BEGIN;"; cat "$LIB/${c}_down.sql"; echo "COMMIT;"; } >"$PROJ/revert/$c.sql"
done
cat >"$PROJ/verify/m1.sql" <<'EOF'
SELECT id, name, price_cents, legacy_code FROM public.items WHERE false;
EOF
cat >"$PROJ/verify/m2.sql" <<'EOF'
SELECT id, name, price_cents, price FROM public.items WHERE false;
SELECT item_id, tag FROM public.item_tags WHERE false;
EOF
cat "$PROJ/sqitch.plan"

step "sqitch deploy --to m1"
sq deploy --verify --to m1 "$SQITCH_TARGET_URI"
sqitch_expect_status m1 m2
capture after_m1

step "sqitch deploy (m2: schema and data)"
sq deploy --verify "$SQITCH_TARGET_URI"
sqitch_expect_status m2 ""
capture after_m2
different_state after_m1 after_m2 "m2"
show "SELECT change, committed_at FROM sqitch.changes ORDER BY committed_at"

step "rollback.migrations labels the Sqitch changes with their names"
show_migrations
check_migrations 'm1|sqitch|applied|verified' 'm2|sqitch|applied|verified'

revert_last m2

step "Sqitch sees m2 as not deployed"
show "SELECT change FROM sqitch.changes ORDER BY committed_at"
sqitch_expect_status m1 m2
sqitch_no_orphan_dependencies

step "schema public is as it was after m1"
same_state after_m1 after_revert "revert of m2"

step "sqitch deploy again"
sq deploy --verify "$SQITCH_TARGET_URI"
sqitch_expect_status m2 ""
capture after_redeploy
same_state after_m2 after_redeploy "m2 deployed again"

step "rollback.migrations at the end"
show_migrations
# The revert has a row of its own (kind 'revert', tool 'rollback'), so that it
# can be reverted in turn.
check_migrations 'm1|sqitch|applied|verified' 'm2|sqitch|reverted' \
	'revert:m2|rollback|applied|verified' 'm2|sqitch|applied|verified'
show "SELECT event, change FROM sqitch.events ORDER BY committed_at"

echo
echo "e2e sqitch: passed"
