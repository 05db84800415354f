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

[[ -x "$DBMATE" ]] || fail "dbmate is not installed in $DBMATE (run scripts/deps.sh)"
"$DBMATE" --version

PROJ=$E2E_DIR/project
V1=20250101120000
V2=20250102120000

# A URL for dbmate: it takes a unix socket directory and a port as query
# parameters (host=, port=); percent-encode what would break the URL.
urlencode() {
	local s=$1 out='' c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case "$c" in
			[a-zA-Z0-9./_~-]) out+=$c ;;
			*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}
DATABASE_URL="postgres://$PGUSER@/$E2E_DB?host=$(urlencode "$PGHOST")&port=$PGPORT&sslmode=disable"
export DATABASE_URL
unset DBMATE_MIGRATIONS_DIR DBMATE_MIGRATIONS_TABLE DBMATE_SCHEMA_FILE DBMATE_NO_DUMP_SCHEMA DBMATE_STRICT
echo "DATABASE_URL=$DATABASE_URL"

# dbmate runs in the project directory (it reads .env from there) and writes
# its schema dump, like a project's own runs would, to db/schema.sql.
dm() { (cd "$PROJ" && e2e_tool "$DBMATE" --migrations-dir db/migrations --schema-file db/schema.sql "$@"); }

# expect_status APPLIED PENDING: dbmate status marks each version of APPLIED
# "[X]" and each of PENDING "[ ]" (space-separated lists), and --exit-code says
# whether anything is pending.
expect_status() {
	local applied=$1 pending=$2 out v rc=0
	out=$(dm status 2>&1) || { echo "$out"; fail "dbmate status failed"; }
	echo "$out"
	for v in $applied; do
		grep -qE "^\[X\] ${v}_" <<<"$out" || fail "dbmate status does not report $v as applied"
	done
	for v in $pending; do
		grep -qE "^\[ \] ${v}_" <<<"$out" || fail "dbmate status does not report $v as pending"
	done
	dm status --exit-code --quiet >/dev/null 2>&1 || rc=$?
	if [[ -n "$pending" && $rc -ne 1 ]]; then fail "dbmate status --exit-code returned $rc, expected 1 (pending)"; fi
	if [[ -z "$pending" && $rc -ne 0 ]]; then fail "dbmate status --exit-code returned $rc, expected 0 (nothing pending)"; fi
	echo "ok: dbmate reports applied: ${applied:-none}; pending: ${pending:-none}"
}

step "dbmate project in $PROJ: migrations $V1 (create items) and $V2 (reshape items)"
mkdir -p "$PROJ/db/migrations"
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
expect_status "$V1" "$V2"
capture after_m1

step "dbmate migrate ($V2: schema and data)"
dm migrate
expect_status "$V1 $V2" ""
capture after_m2
different_state after_m1 after_m2 "$V2"

step "rollback.migrations labels the migrations with dbmate's versions"
show_migrations
check_migrations "$V1|dbmate|applied|verified" "$V2|dbmate|applied|verified"

revert_last "$V2"

step "dbmate sees $V2 as pending"
show "SELECT version FROM public.schema_migrations ORDER BY version"
expect_status "$V1" "$V2"

step "schema public (public.schema_migrations included) is as it was after $V1"
same_state after_m1 after_revert "revert of $V2"

step "dbmate migrate again"
dm migrate
expect_status "$V1 $V2" ""
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
