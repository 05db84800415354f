#!/usr/bin/env bash
# End-to-end, with the worker running: the real dbmate applies a migration that
# breaks data (it nulls emails, along with some DDL), and the rollback worker
# reverts it on its own, because a check_no_new_nulls check fails: the test
# calls nothing of the extension between `dbmate migrate` and the assertions.
# What it proves:
#  - the migration is 'reverted' within a bounded wait after dbmate's commit;
#  - schema public is as it was before it (pg_dump --schema-only and every
#    row of every table: the nulled emails are back, the added column and
#    index are gone, public.schema_migrations has no row of it), so dbmate
#    reports it pending again;
#  - the audit log has 'revert_started' and 'revert' by the worker with
#    trigger 'check' and the check's name, and its hash chain is intact;
#  - a client LISTENing on rollback_events received the 'reverted' payload
#    (migration, check, trigger, figures, audit entry), and rollback.metrics()
#    counts the revert;
#  - check_runs keeps the failing rows (the nulled rows);
#  - the fixed migration and a third one, applied by dbmate, are 'verified'.
#
# dbmate writes its history row (public.schema_migrations) in the migration's
# own transaction, so the migration is labeled at its commit and the worker,
# woken by that commit, checks it at once (no rollback.history_wait).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

e2e_init auto_dbmate

PROJ=$E2E_DIR/project
V1=20250201120000
V2=20250202120000
V3=20250203120000
CHECK='no_new_nulls:public.customers:email'
dbmate_init "$PROJ"

# migration FILE UP DOWN: write a dbmate migration file.
migration() {
	printf -- '-- migrate:up\n%s\n\n-- migrate:down\n%s\n' "$2" "$3" >"$PROJ/db/migrations/$1.sql"
}

step "dbmate migrate: $V1 creates public.customers with 20 rows"
migration "${V1}_create_customers" "CREATE TABLE public.customers (
    id    serial PRIMARY KEY,
    name  text NOT NULL,
    email text
);
INSERT INTO public.customers (name, email)
SELECT 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 20) i;" \
	"DROP TABLE public.customers;"
dm migrate
# The worker checks it (no check applies yet): wait, so that the check added
# next is not run on it.
wait_for 30 "the worker has looked at $V1" "$(migration_checked "$V1")"
dbmate_expect_status "$V1" ""
capture before

step "a check: no new NULL in public.customers.email (any migration)"
show "SELECT rollback.check_no_new_nulls('public.customers', 'email') IS NOT NULL AS added"
show "SELECT name, applies_to, severity, kind FROM rollback.checks"

step "a client LISTENs on rollback_events"
listen_start reverted 60

step "dbmate migrate: $V2 adds a column and an index, and nulls 5 emails (no call to the extension)"
migration "${V2}_bad_emails" "ALTER TABLE public.customers ADD COLUMN nickname text;
CREATE INDEX customers_name_idx ON public.customers (name);
UPDATE public.customers SET email = NULL, nickname = 'n' || id WHERE id % 4 = 0;" \
	"DROP INDEX public.customers_name_idx;
ALTER TABLE public.customers DROP COLUMN nickname;"
dm migrate

step "the worker reverts $V2 on its own"
wait_for 30 "migration $V2 reverted by the worker" "$(migration_is "$V2" reverted)"
listen_wait
show_migrations

step "schema public (public.schema_migrations included) is as it was before $V2"
capture after_revert
same_state before after_revert "automatic revert of $V2"
got=$(sql -c "SELECT count(*) || ' ' || count(email) FROM public.customers")
[[ "$got" == "20 20" ]] || fail "public.customers has (rows, emails) '$got', expected '20 20'"
echo "ok: 20 customers, 20 emails"
got=$(sql -c "SELECT count(*) FROM public.schema_migrations WHERE version = '$V2'")
[[ "$got" == 0 ]] || fail "public.schema_migrations still has $V2"
echo "ok: public.schema_migrations has no row of $V2"

step "dbmate sees $V2 as pending"
dbmate_expect_status "$V1" "$V2"

step "the audit log, the NOTIFY payload, the metrics"
expect_auto_revert "$V2" check "$CHECK"
got=$(payload_get reverted rows_restored)
[[ "$got" == 5 ]] || fail "the 'reverted' payload's rows_restored is '$got', expected 5 (the nulled rows)"
got=$(payload_get reverted quarantined)
[[ "$got" == 0 ]] || fail "the 'reverted' payload's quarantined is '$got', expected 0 (nobody else wrote)"
got=$(payload_get reverted ddl_undone)
[[ "$got" -ge 2 ]] || fail "the 'reverted' payload's ddl_undone is '$got', expected at least 2 (ADD COLUMN, CREATE INDEX)"
echo "ok: figures: 5 rows restored, nothing quarantined, $got DDL statements undone"

step "check_runs: the failed run of $CHECK on $V2 keeps the 5 nulled rows"
show "SELECT r.check_name, m.version, r.status, r.runs, r.failures, jsonb_array_length(r.failing_rows) AS failing_rows
        FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id ORDER BY r.id"
got=$(sql -c "SELECT r.status || ' ' || jsonb_array_length(r.failing_rows) || ' '
                     || (SELECT string_agg(e->'row'->>'id', ',' ORDER BY (e->'row'->>'id')::int) FROM jsonb_array_elements(r.failing_rows) e)
                FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id
               WHERE m.version = '$V2' AND r.check_name = '$CHECK'")
[[ "$got" == "failed 5 4,8,12,16,20" ]] || fail "check run of $CHECK on $V2: '$got', expected 'failed 5 4,8,12,16,20' (status, failing rows, their ids)"
echo "ok: $got"

step "the fixed $V2 and a new $V3, applied by dbmate, are verified"
rm "$PROJ/db/migrations/${V2}_bad_emails.sql"
migration "${V2}_nicknames" "ALTER TABLE public.customers ADD COLUMN nickname text;
CREATE INDEX customers_name_idx ON public.customers (name);
UPDATE public.customers SET nickname = 'n' || id WHERE id % 4 = 0;" \
	"DROP INDEX public.customers_name_idx;
ALTER TABLE public.customers DROP COLUMN nickname;"
migration "${V3}_more_customers" "INSERT INTO public.customers (name, email) VALUES ('customer 21', 'c21@example.com');
CREATE INDEX customers_email_idx ON public.customers (email);" \
	"DROP INDEX public.customers_email_idx;
DELETE FROM public.customers WHERE name = 'customer 21';"
dm migrate
wait_for 30 "migration $V2 (fixed) verified" "$(migration_is "$V2" verified)"
wait_for 30 "migration $V3 verified" "$(migration_is "$V3" verified)"
dbmate_expect_status "$V1 $V2 $V3" ""
show_migrations
check_migrations "$V1|dbmate|applied" "$V2|dbmate|reverted" "revert:$V2|rollback|applied|verified" \
	"$V2|dbmate|verified" "$V3|dbmate|verified"
got=$(sql -c "SELECT intact FROM rollback.verify_audit_log()")
[[ "$got" == t ]] || fail "verify_audit_log() is no longer intact"
got=$(metric 'rollback_reverts_total{trigger="check"}')
[[ "$got" == 1 ]] || fail "metrics: rollback_reverts_total{trigger=\"check\"} is '$got', expected still 1"
echo "ok: audit log intact, still one automatic revert"

echo
echo "e2e auto_dbmate: passed"
