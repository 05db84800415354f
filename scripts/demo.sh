#!/usr/bin/env bash
# `make demo`: install what is missing, build, install, start a throwaway
# server, walk through track / create_point / a bad job / as_of / diff /
# restore in a fresh database rb_demo, printing each statement and its output,
# then stop the server.
#
# Environment: RB_PORT, RB_TMP, RB_PRELOAD (see scripts/pgenv.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/pgenv.sh
rb_setup

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c 'SET client_min_messages = warning' \
	-c 'DROP DATABASE IF EXISTS rb_demo' -c 'CREATE DATABASE rb_demo'

echo
# -e: print every statement before its output.
psql -X -v ON_ERROR_STOP=1 -e -d rb_demo <<'SQL'
\pset null '(null)'

\echo
\echo '==== 1. A table of orders, 10 rows'
CREATE TABLE public.orders (
    id       serial PRIMARY KEY,
    customer text    NOT NULL,
    amount   numeric NOT NULL,
    status   text    NOT NULL
);
INSERT INTO public.orders (customer, amount, status) VALUES
    ('alice',   120.00, 'paid'),
    ('bob',      75.50, 'pending'),
    ('carol',   310.25, 'paid'),
    ('dave',     42.00, 'shipped'),
    ('erin',    999.99, 'pending'),
    ('frank',    15.00, 'paid'),
    ('grace',   250.00, 'shipped'),
    ('heidi',    60.75, 'pending'),
    ('ivan',    480.00, 'paid'),
    ('judy',     33.30, 'shipped');
SELECT * FROM public.orders ORDER BY id;

\echo
\echo '==== 2. Install the extension and track the table'
CREATE EXTENSION rollback;
SELECT rollback.track('orders');

\echo
\echo '==== 3. A recovery point before the data job (copies no rows)'
SELECT rollback.create_point('before_bad_job');
-- Kept only to prove, at the end, that the restore gives back exactly this.
CREATE TEMP TABLE orders_as_they_were AS TABLE public.orders;

\echo
\echo '==== 4. A bad data job: zeroes amounts, deletes rows, inserts junk'
UPDATE public.orders SET amount = 0 WHERE status IN ('pending', 'shipped');
DELETE FROM public.orders WHERE id IN (3, 9);
INSERT INTO public.orders (customer, amount, status) VALUES
    ('???', -1, 'junk'),
    ('???', -2, 'junk'),
    ('???', -3, 'junk');

\echo
\echo '==== 5. The damaged table'
SELECT * FROM public.orders ORDER BY id;

\echo
\echo '==== 6. Time travel: the table as it was at the point'
SELECT * FROM rollback.as_of(NULL::public.orders, 'before_bad_job') ORDER BY id;

\echo
\echo '==== 7. What changed since the point'
SELECT * FROM rollback.diff('orders', 'before_bad_job')
 ORDER BY coalesce(old_row->>'id', new_row->>'id')::int, op;

\echo
\echo '==== 8. Restore, dry run: the figures, nothing changed'
SELECT * FROM rollback.restore('before_bad_job', dry_run => true);
SELECT count(*) AS rows_now FROM public.orders;

\echo
\echo '==== 9. Restore for real (takes a point first, so the restore can be undone)'
SELECT * FROM rollback.restore('before_bad_job');

\echo
\echo '==== 10. The table again'
SELECT * FROM public.orders ORDER BY id;
SELECT NOT EXISTS (TABLE public.orders EXCEPT ALL TABLE orders_as_they_were)
   AND NOT EXISTS (TABLE orders_as_they_were EXCEPT ALL TABLE public.orders)
       AS same_as_before_the_job;

\echo
\echo '==== 11. The recovery points'
SELECT * FROM rollback.points;
SQL

echo
echo "demo: done"
