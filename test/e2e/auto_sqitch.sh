#!/usr/bin/env bash
# End-to-end, with the worker running: the real Sqitch deploys a change that
# deletes most rows of a table (along with some DDL), and the rollback worker
# reverts it on its own, because a check_row_count check (at most 10 % of the
# rows lost) fails: the test calls nothing of the extension between `sqitch
# deploy` and the assertions. What it proves:
#  - the change is 'reverted' within a bounded wait after Sqitch's commit;
#  - schema public is as it was before it (pg_dump --schema-only and every
#    row: the 16 deleted accounts are back, the added column is gone);
#  - Sqitch's registry is as it was before the change (no sqitch.changes,
#    sqitch.dependencies or sqitch.events row of it), so `sqitch status`
#    reports it undeployed, as after rollback.revert_migration() (sqitch.sh);
#  - the audit log has 'revert_started' and 'revert' by the worker with
#    trigger 'check' and the check's name, and its hash chain is intact;
#  - a client LISTENing on rollback_events received the 'reverted' payload,
#    and rollback.metrics() counts the revert;
#  - the fixed change and a third one, deployed by Sqitch, are 'verified'.
#
# Sqitch labels a change after its commit: the deploy script runs in psql and
# commits; Sqitch's own connection then inserts into sqitch.changes (in a
# transaction that has held LOCK TABLE sqitch.changes since before the script
# ran). The worker, woken by the script's commit, waits up to
# rollback.history_wait (3 s) for that label before it runs the checks, then
# reverts. The revert puts Sqitch's registry back as of the change's point, as
# a manual revert does (docs/tools.md): the rows Sqitch wrote for the change
# in sqitch.changes, sqitch.dependencies and sqitch.events are deleted (so
# `sqitch log` no longer shows its deploy event, and Sqitch records no revert
# event).
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"

e2e_init auto_sqitch

PROJ=$E2E_DIR/project
CHECK='row_count:public.accounts'
sqitch_init "$PROJ"

# change NAME DEPLOY REVERT: the scripts of a change (the script's own
# transaction, as Sqitch's templates have it).
change() {
	printf -- '-- Deploy e2e:%s to pg\nBEGIN;\n%s\nCOMMIT;\n' "$1" "$2" >"$PROJ/deploy/$1.sql"
	printf -- '-- Revert e2e:%s from pg\nBEGIN;\n%s\nCOMMIT;\n' "$1" "$3" >"$PROJ/revert/$1.sql"
	printf -- '-- Verify e2e:%s on pg\n%s\n' "$1" "${4:-SELECT 1;}" >"$PROJ/verify/$1.sql"
}

step "Sqitch project in $PROJ: change m1 creates public.accounts with 20 rows"
sq init e2e --engine pg
sq add m1 -n 'create table accounts'
change m1 "CREATE TABLE public.accounts (
    id      serial PRIMARY KEY,
    owner   text NOT NULL,
    balance numeric(12,2) NOT NULL DEFAULT 0
);
INSERT INTO public.accounts (owner, balance)
SELECT 'owner ' || i, i * 10 FROM generate_series(1, 20) i;" \
	"DROP TABLE public.accounts;" \
	"SELECT id, owner, balance FROM public.accounts WHERE false;"
sq add m2 -r m1 -n 'accounts: a tier column, and a cleanup that goes wrong'
change m2 "ALTER TABLE public.accounts ADD COLUMN tier text NOT NULL DEFAULT 'basic';
DELETE FROM public.accounts WHERE id > 4;" \
	"ALTER TABLE public.accounts DROP COLUMN tier;" \
	"SELECT tier FROM public.accounts WHERE false;"
cat "$PROJ/sqitch.plan"

step "sqitch deploy --to m1"
sq deploy --verify --to m1 "$SQITCH_TARGET_URI"
# The worker checks it once Sqitch has labeled it (no check applies yet):
# wait, so that the check added next is not run on it.
wait_for 30 "the worker has looked at m1" "$(migration_checked m1)"
sqitch_expect_status m1 m2
capture before

step "a check: public.accounts loses at most 10 % of its rows (any migration)"
show "SELECT rollback.check_row_count('public.accounts', 10) IS NOT NULL AS added"
show "SELECT name, applies_to, severity, kind FROM rollback.checks"

step "a client LISTENs on rollback_events"
listen_start reverted 60

step "sqitch deploy: m2 adds a column and deletes 16 of the 20 accounts (no call to the extension)"
sq deploy --verify "$SQITCH_TARGET_URI"

step "the worker reverts m2 on its own"
wait_for 30 "change m2 reverted by the worker" "$(migration_is m2 reverted)"
listen_wait
show_migrations

step "schema public is as it was before m2"
capture after_revert
same_state before after_revert "automatic revert of m2"
got=$(sql -c "SELECT count(*) FROM public.accounts")
[[ "$got" == 20 ]] || fail "public.accounts has $got rows, expected 20"
echo "ok: 20 accounts"

step "Sqitch sees m2 as not deployed"
show "SELECT change FROM sqitch.changes ORDER BY committed_at"
for t in changes dependencies events; do
	got=$(sql -c "SELECT count(*) FROM sqitch.$t WHERE change_id IN (SELECT tool_ref FROM rollback.migration WHERE version = 'm2')")
	[[ "$got" == 0 ]] || fail "sqitch.$t still has $got row(s) of m2"
done
echo "ok: sqitch.changes, sqitch.dependencies, sqitch.events: no row of m2"
sqitch_no_orphan_dependencies
sqitch_expect_status m1 m2

step "the audit log, the NOTIFY payload, the metrics"
expect_auto_revert m2 check "$CHECK"
got=$(payload_get reverted rows_restored)
[[ "$got" == 16 ]] || fail "the 'reverted' payload's rows_restored is '$got', expected 16 (the deleted accounts)"
got=$(payload_get reverted quarantined)
[[ "$got" == 0 ]] || fail "the 'reverted' payload's quarantined is '$got', expected 0 (nobody else wrote)"
echo "ok: figures: 16 rows restored, nothing quarantined"

step "check_runs: the failed run of $CHECK on m2 says how many rows were lost"
show "SELECT r.check_name, m.version, r.status, r.failing_rows
        FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id ORDER BY r.id"
got=$(sql -c "SELECT r.status || ' ' || (r.failing_rows->0->>'rows_at_point') || ' ' || (r.failing_rows->0->>'rows_now')
                FROM rollback.check_runs r JOIN rollback.migration m ON m.id = r.migration_id
               WHERE m.version = 'm2' AND r.check_name = '$CHECK'")
[[ "$got" == "failed 20 4" ]] || fail "check run of $CHECK on m2: '$got', expected 'failed 20 4' (status, rows at the point, rows after)"
echo "ok: $got"

step "the fixed m2 and a new m3, deployed by Sqitch, are verified"
change m2 "ALTER TABLE public.accounts ADD COLUMN tier text NOT NULL DEFAULT 'basic';
DELETE FROM public.accounts WHERE id = 20;" \
	"ALTER TABLE public.accounts DROP COLUMN tier;" \
	"SELECT tier FROM public.accounts WHERE false;"
sq add m3 -r m2 -n 'accounts: gold tier'
change m3 "CREATE INDEX accounts_tier_idx ON public.accounts (tier);
UPDATE public.accounts SET tier = 'gold' WHERE balance >= 150;" \
	"DROP INDEX public.accounts_tier_idx;
UPDATE public.accounts SET tier = 'basic';"
sq deploy --verify "$SQITCH_TARGET_URI"
wait_for 30 "change m2 (fixed) verified" "$(migration_is m2 verified)"
wait_for 30 "change m3 verified" "$(migration_is m3 verified)"
sqitch_expect_status m3 ""
show_migrations
check_migrations 'm1|sqitch|applied' 'm2|sqitch|reverted' 'revert:m2|rollback|applied|verified' \
	'm2|sqitch|verified' 'm3|sqitch|verified'
show "SELECT event, change FROM sqitch.events ORDER BY committed_at"
got=$(sql -c "SELECT intact FROM rollback.verify_audit_log()")
[[ "$got" == t ]] || fail "verify_audit_log() is no longer intact"
got=$(metric 'rollback_reverts_total{trigger="check"}')
[[ "$got" == 1 ]] || fail "metrics: rollback_reverts_total{trigger=\"check\"} is '$got', expected still 1"
echo "ok: audit log intact, still one automatic revert"

echo
echo "e2e auto_sqitch: passed"
