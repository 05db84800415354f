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

command -v sqitch >/dev/null || fail "sqitch is not installed (run scripts/deps.sh as root)"
sqitch --version

PROJ=$E2E_DIR/project
TARGET="db:pg://$PGUSER@/$E2E_DB" # host and port: PGHOST / PGPORT (libpq, for DBD::Pg and psql)
# Sqitch reads no configuration of this machine's users.
export SQITCH_USER_CONFIG=$E2E_DIR/sqitch-user.conf
export SQITCH_SYSTEM_CONFIG=$E2E_DIR/sqitch-system.conf
export SQITCH_FULLNAME='rollback e2e' SQITCH_EMAIL='e2e@rollback.invalid'
unset SQITCH_TARGET SQITCH_CONFIG SQITCH_PASSWORD

sq() { e2e_tool sqitch --chdir "$PROJ" "$@"; }

# sqitch_status: `sqitch status` on the target, printed and kept in $STATUS.
sqitch_status() {
	STATUS=$(sq status "$TARGET" 2>&1) || {
		echo "$STATUS"
		fail "sqitch status failed"
	}
	echo "$STATUS"
}

# expect_status LAST PENDING: Sqitch reports LAST as the last deployed change,
# and PENDING (a change name) as undeployed, or nothing pending when empty.
expect_status() {
	local last=$1 pending=$2
	sqitch_status
	grep -qE "^# Name: +$last\$" <<<"$STATUS" ||
		fail "sqitch status does not report '$last' as the last deployed change"
	if [[ -n "$pending" ]]; then
		if ! grep -qE "^Undeployed changes?:" <<<"$STATUS" || ! grep -qE "^  \* $pending\$" <<<"$STATUS"; then
			fail "sqitch status does not report '$pending' as undeployed"
		fi
	else
		grep -q "Nothing to deploy (up-to-date)" <<<"$STATUS" ||
			fail "sqitch status does not report the database as up to date"
	fi
	echo "ok: sqitch reports '$last' deployed${pending:+, '$pending' undeployed}"
}

step "Sqitch project in $PROJ: changes m1 (create items) and m2 (reshape items)"
mkdir -p "$PROJ"
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
sq deploy --verify --to m1 "$TARGET"
expect_status m1 m2
capture after_m1

step "sqitch deploy (m2: schema and data)"
sq deploy --verify "$TARGET"
expect_status m2 ""
capture after_m2
different_state after_m1 after_m2 "m2"
show "SELECT change, committed_at FROM sqitch.changes ORDER BY committed_at"

step "rollback.migrations labels the Sqitch changes with their names"
show_migrations
check_migrations 'm1|sqitch|applied|verified' 'm2|sqitch|applied|verified'

revert_last m2

step "Sqitch sees m2 as not deployed"
show "SELECT change FROM sqitch.changes ORDER BY committed_at"
expect_status m1 m2
# Sqitch deletes a change's sqitch.dependencies rows through the foreign key's
# ON DELETE CASCADE when it reverts. Rows left behind make the next deploy fail
# with a duplicate key on dependencies_pkey: the change id is the same.
left=$(sql -c "SELECT count(*) FROM sqitch.dependencies d WHERE NOT EXISTS (SELECT FROM sqitch.changes c WHERE c.change_id = d.change_id)")
[[ "$left" == 0 ]] || fail "the revert left $left sqitch.dependencies row(s) of changes no longer in sqitch.changes"
echo "ok: no sqitch.dependencies row left without its change"

step "schema public is as it was after m1"
same_state after_m1 after_revert "revert of m2"

step "sqitch deploy again"
sq deploy --verify "$TARGET"
expect_status m2 ""
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
