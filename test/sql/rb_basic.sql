-- the copy-on-write engine alone: DDL here is not a migration
SET rollback.auto_track_migrations = off;
-- Basic life cycle: track, point, bad changes, as_of, diff, restore, undo.
SET client_min_messages = warning;
CREATE TABLE orders (id serial PRIMARY KEY, customer text NOT NULL, amount numeric, status text);
INSERT INTO orders (customer, amount, status)
  SELECT 'c' || g, g * 10, 'new' FROM generate_series(1, 10) g;

SELECT rollback.track('orders');
SELECT rollback.track('orders');  -- idempotent
SELECT tbl, parent, captured FROM rollback.tracked;

-- creating a point copies no rows
SELECT rollback.create_point('before_job', comment => 'before the nightly job') AS p1 \gset
SELECT name, comment, tables, rows_captured FROM rollback.points;

-- the bad job
UPDATE orders SET amount = 0 WHERE id <= 3;
UPDATE orders SET amount = -1 WHERE id <= 3;   -- second change: no new image
DELETE FROM orders WHERE id = 10;
INSERT INTO orders (customer, amount, status) VALUES ('junk', -5, 'x');
SELECT name, rows_captured FROM rollback.points;

SELECT * FROM orders ORDER BY id;
SELECT * FROM rollback.as_of(NULL::orders, 'before_job') ORDER BY id;
SELECT * FROM rollback.diff('orders', 'before_job');

-- dry run: figures, no change
SELECT * FROM rollback.restore('before_job', dry_run => true);
SELECT count(*) AS rows_now, sum(amount) AS sum_now FROM orders;
SELECT count(*) AS points FROM rollback.points;

-- a restore that rolls back leaves everything, the sequence too, as it was
BEGIN;
SELECT * FROM rollback.restore('before_job');
ROLLBACK;
SELECT last_value, is_called FROM orders_id_seq;
SELECT count(*) AS points FROM rollback.points;

-- restore, and the sequence is set back
SELECT * FROM rollback.restore('before_job');
SELECT * FROM orders ORDER BY id;
SELECT last_value, is_called FROM orders_id_seq;
SELECT nextval('orders_id_seq');
SELECT setval('orders_id_seq', 10);
SELECT * FROM rollback.diff('orders', 'before_job');

-- the restore took its own point first, so it can be undone
SELECT name, comment FROM rollback.points ORDER BY id;
SELECT * FROM rollback.as_of(NULL::orders, 'before restore to before_job') ORDER BY id;
SELECT * FROM rollback.restore('before restore to before_job');
SELECT * FROM orders ORDER BY id;

-- a second restore to the same point names its own point uniquely
SELECT * FROM rollback.restore('before_job');
SELECT name FROM rollback.points ORDER BY id;

-- TRUNCATE is captured
SELECT rollback.create_point('before_truncate') > 0 AS created;
TRUNCATE orders;
SELECT count(*) FROM rollback.as_of(NULL::orders, 'before_truncate');
SELECT * FROM rollback.restore('before_truncate', ARRAY['orders'::regclass]);
SELECT count(*), sum(amount) FROM orders;

-- every older point still reads right after restores
SELECT count(*), sum(amount) FROM rollback.as_of(NULL::orders, 'before_job');

-- drop_point prunes the images only it needed
SELECT rollback.drop_point('before_truncate');
SELECT name FROM rollback.points ORDER BY id;
-- purge of nothing old enough drops nothing; purge of everything drops all
SELECT rollback.purge('1 day');
SELECT rollback.purge('0 seconds');
SELECT count(*) FROM rollback.points;

-- untrack with no point left
SELECT rollback.untrack('orders');
SELECT count(*) FROM rollback.tracked;
SELECT count(*) AS capture_triggers FROM pg_trigger WHERE tgrelid = 'orders'::regclass;
DROP TABLE orders;
