#!/usr/bin/env bash
# bench/migration.sh: a mixed migration on a table of a million rows, timed
# next to its revert, and checked: after the revert the rows (compared by
# column name) and the schema (apart from the documented position of a
# dropped column) equal those before the migration.
#
#   bash bench/migration.sh
#
# The migration: ADD COLUMN, a backfill UPDATE of every row, SET NOT NULL,
# DROP COLUMN, RENAME COLUMN, CREATE INDEX, ADD CONSTRAINT (CHECK), CREATE
# TABLE with a foreign key, SET DEFAULT, DROP TABLE, CREATE OR REPLACE VIEW,
# COMMENT: 12 statements of 11 kinds.  The baseline is the same migration on
# the same data in a second database where nothing is tracked.
#
# Environment:
#   BENCH_MIG_ROWS  rows of app.orders (default 1000000)
#   BENCH_MIG_PORT  port of the throwaway server (default 54405)
#   BENCH_MIG_OUT   where the server lives (default bench/out/migration)
#
# Not part of `make test`: figures depend on the machine.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROWS=${BENCH_MIG_ROWS:-1000000}
export RB_PORT=${BENCH_MIG_PORT:-54405}
export RB_TMP=${BENCH_MIG_OUT:-$ROOT/bench/out/migration}
# shellcheck source=../scripts/pgenv.sh
source "$ROOT/scripts/pgenv.sh"
rb_setup
trap pg_stop EXIT
pg_fresh

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

# ms_of DB SCRIPT: run a psql script and print how long it took, in
# milliseconds, as the client saw it.
ms_of() {
	local t0 t1
	t0=$(date +%s%N)
	q -d "$1" <<<"$2" >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

# setup DB: the application's schema and data.
setup() {
	q -d postgres -c "CREATE DATABASE $1"
	q -d "$1" -c 'CREATE EXTENSION rollback'
	q -d "$1" <<SQL
SET rollback.auto_track_migrations = off;
CREATE SCHEMA app;
CREATE TABLE app.customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO app.customers SELECT g, 'customer ' || g FROM generate_series(1, 10000) g;
CREATE TABLE app.orders (
	id bigserial PRIMARY KEY,
	customer_id int NOT NULL REFERENCES app.customers (id),
	amount numeric(12,2) NOT NULL,
	status text NOT NULL,
	note text,
	created_at timestamptz NOT NULL
);
INSERT INTO app.orders (customer_id, amount, status, note, created_at)
SELECT 1 + g % 10000, (g % 100000) / 100.0, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3],
	   CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END,
	   '2026-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, $ROWS) g;
CREATE INDEX orders_customer_idx ON app.orders (customer_id);
CREATE TABLE app.legacy (id int PRIMARY KEY, payload text);
INSERT INTO app.legacy SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g;
CREATE VIEW app.open_orders AS SELECT id, customer_id, status FROM app.orders WHERE status <> 'shipped';
VACUUM ANALYZE;
SQL
}

MIGRATION="
BEGIN;
SELECT rollback.begin_migration('V2', 'mixed migration', 'bench') WHERE :tracked;
ALTER TABLE app.orders ADD COLUMN amount_cents bigint;
UPDATE app.orders SET amount_cents = (amount * 100)::bigint;
ALTER TABLE app.orders ALTER COLUMN amount_cents SET NOT NULL;
ALTER TABLE app.orders DROP COLUMN amount;
ALTER TABLE app.orders RENAME COLUMN note TO remark;
CREATE INDEX orders_status_idx ON app.orders (status);
ALTER TABLE app.orders ADD CONSTRAINT orders_amount_nonneg CHECK (amount_cents >= 0);
CREATE TABLE app.order_events (id bigserial PRIMARY KEY,
	order_id bigint NOT NULL REFERENCES app.orders (id), kind text NOT NULL);
ALTER TABLE app.orders ALTER COLUMN status SET DEFAULT 'new';
DROP TABLE app.legacy;
CREATE OR REPLACE VIEW app.open_orders AS SELECT id, customer_id, status FROM app.orders WHERE status = 'new';
COMMENT ON TABLE app.orders IS 'orders, amounts in cents';
SELECT rollback.end_migration() WHERE :tracked;
COMMIT;"

# fingerprint DB: every row of the schema, by column name, as one md5.
fingerprint() {
	q -d "$1" -c "SELECT md5(string_agg(h, '' ORDER BY h)) FROM (
		SELECT 'c' || md5(to_jsonb(c)::text) h FROM app.customers c
		UNION ALL SELECT 'o' || md5(to_jsonb(o)::text) FROM app.orders o
		UNION ALL SELECT 'l' || md5(to_jsonb(l)::text) FROM app.legacy l) s"
}

# schema DB FILE: pg_dump --schema-only of app, lines sorted and without
# trailing commas (a dropped column comes back last: same lines, other order).
schema() {
	pg_dump -d "$1" --schema-only --schema=app | grep -v '^\\\(un\)\?restrict' |
		sed 's/,$//' | sort >"$2"
}

echo "bench/migration.sh: $ROWS rows in app.orders, server on port $RB_PORT"
setup bench_plain
setup bench_tracked
q -d bench_tracked -c "SELECT rollback.track_schema('app')" >/dev/null
fp_before=$(fingerprint bench_tracked)
schema bench_tracked "$RB_TMP/schema_before"
q -d bench_tracked -c CHECKPOINT
q -d bench_plain -c CHECKPOINT

plain_ms=$(ms_of bench_plain "\\set tracked false
$MIGRATION")
tracked_ms=$(ms_of bench_tracked "\\set tracked true
$MIGRATION")
q -d bench_tracked -c CHECKPOINT
dry_ms=$(ms_of bench_tracked "SELECT * FROM rollback.revert_migration('V2', dry_run => true)")
echo
echo "the revert's plan (dry run):"
psql -X -P pager=off -d bench_tracked -c "SELECT step, action, left(detail, 90) AS detail, rows FROM rollback.revert_migration('V2', dry_run => true)"
revert_ms=$(ms_of bench_tracked "SELECT * FROM rollback.revert_migration('V2', reason => 'bench')")

fp_after=$(fingerprint bench_tracked)
schema bench_tracked "$RB_TMP/schema_after"
if [[ "$fp_before" == "$fp_after" ]]; then rows_ok=yes; else rows_ok=NO; fi
if diff -q "$RB_TMP/schema_before" "$RB_TMP/schema_after" >/dev/null; then schema_ok=yes; else schema_ok=NO; fi

echo
printf '%-46s %10s\n' "migration, nothing tracked (baseline)" "$plain_ms ms"
printf '%-46s %10s   (%.2fx the baseline)\n' "migration, tracked" "$tracked_ms ms" \
	"$(awk "BEGIN { print $tracked_ms / $plain_ms }")"
printf '%-46s %10s\n' "revert, dry run" "$dry_ms ms"
printf '%-46s %10s   (%.2fx the tracked migration)\n' "revert" "$revert_ms ms" \
	"$(awk "BEGIN { print $revert_ms / $tracked_ms }")"
echo "rows equal to those before the migration: $rows_ok"
echo "schema equal (column order aside): $schema_ok"
if [[ $rows_ok != yes || $schema_ok != yes ]]; then
	diff "$RB_TMP/schema_before" "$RB_TMP/schema_after" || true
	exit 1
fi
