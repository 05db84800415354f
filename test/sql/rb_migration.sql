-- Migrations: each DDL kind of the design's table is applied in a migration,
-- reverted, and the schema (pg_dump --schema-only) and the rows compared with
-- what they were before.  Rows are compared by a fingerprint of each table's
-- sorted rows (as jsonb, so column order does not count); pg_dump output by
-- diff (empty diff: "schema unchanged").  A column dropped and re-added comes
-- back at the end of the column list: the one documented difference (test 5).
\setenv PGDATABASE :DBNAME
\set dump /tmp/rb_regress_migration_ :PORT
\setenv RB_DUMP :dump
SET client_min_messages = warning;
CREATE SCHEMA mig;
CREATE TABLE mig.customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE,
	region text DEFAULT 'eu', CHECK (name <> ''));
CREATE TABLE mig.orders (id serial PRIMARY KEY, customer_id int REFERENCES mig.customers (id),
	amount numeric(10, 2) NOT NULL, note text, created_at timestamptz DEFAULT '2026-01-01');
CREATE INDEX orders_customer_idx ON mig.orders (customer_id);
CREATE VIEW mig.big_orders AS SELECT id, customer_id FROM mig.orders WHERE id > 50;
CREATE FUNCTION mig.order_total(int) RETURNS numeric LANGUAGE sql STABLE
	AS 'SELECT sum(amount) FROM mig.orders WHERE customer_id = $1';
CREATE FUNCTION mig.touch() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER orders_touch BEFORE INSERT ON mig.orders FOR EACH ROW EXECUTE FUNCTION mig.touch();
CREATE TYPE mig.mood AS ENUM ('sad', 'ok');
COMMENT ON TABLE mig.orders IS 'orders';
INSERT INTO mig.customers SELECT g, 'c' || g, 'c' || g || '@x', 'eu' FROM generate_series(1, 20) g;
INSERT INTO mig.orders (customer_id, amount, note) SELECT 1 + g % 20, g, 'n' || g FROM generate_series(1, 100) g;
SELECT rollback.track_schema('mig');

-- fingerprint of every table of the schema, rows sorted
CREATE FUNCTION public.mig_fp() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; acc text := ''; h text;
BEGIN
	FOR r IN SELECT c.oid::regclass AS t FROM pg_class c
			  WHERE c.relnamespace = 'mig'::regnamespace AND c.relkind = 'r' ORDER BY c.relname LOOP
		EXECUTE format('SELECT md5(coalesce(string_agg(to_jsonb(x)::text, %L ORDER BY to_jsonb(x)::text), %L)) FROM %s x', ',', '', r.t) INTO h;
		acc := acc || r.t::text || ':' || h || ' ';
	END LOOP;
	RETURN md5(acc || (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM mig.orders_id_seq));
END $$;
SELECT public.mig_fp() AS fp0 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before

-- 1. additive DDL: columns, constraints, indexes, new objects of each kind
SELECT rollback.begin_migration('1-add', 'additive DDL') > 0 AS begun;
ALTER TABLE mig.orders ADD COLUMN status text DEFAULT 'new' NOT NULL;
ALTER TABLE mig.customers ADD CONSTRAINT customers_name_len CHECK (length(name) < 50);
CREATE UNIQUE INDEX orders_note_idx ON mig.orders (note);
CREATE TABLE mig.items (id int PRIMARY KEY, order_id int REFERENCES mig.orders (id));
INSERT INTO mig.items VALUES (1, 1), (2, 2);
CREATE VIEW mig.recent AS SELECT id FROM mig.orders WHERE id > 90;
CREATE FUNCTION mig.double(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
CREATE SEQUENCE mig.tickets;
CREATE TYPE mig.size AS ENUM ('s', 'm', 'l');
CREATE TRIGGER customers_touch BEFORE UPDATE ON mig.customers FOR EACH ROW EXECUTE FUNCTION mig.touch();
UPDATE mig.orders SET status = 'paid' WHERE id % 2 = 0;
SELECT rollback.end_migration();
SELECT version, tool, status, point, irreversible, objects_created, statements_journaled
  FROM rollback.migrations WHERE version = '1-add';
SELECT step, action, detail FROM rollback.revert_migration('1-add', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('1-add', reason => 'test 1');
SELECT public.mig_fp() = :'fp0' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before - && echo schema unchanged

-- 2. destructive DDL: drops of each kind, with their definitions kept
SELECT rollback.begin_migration('2-drop', 'destructive DDL') > 0 AS begun;
DROP VIEW mig.big_orders;
DROP TRIGGER orders_touch ON mig.orders;
DROP FUNCTION mig.order_total(int);
DROP INDEX mig.orders_customer_idx;
ALTER TABLE mig.customers DROP CONSTRAINT customers_name_check;
ALTER TABLE mig.orders DROP CONSTRAINT orders_customer_id_fkey;
DROP TYPE mig.mood;
DELETE FROM mig.orders WHERE id > 90;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('2-drop');
SELECT public.mig_fp() = :'fp0' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before - && echo schema unchanged

-- 3. changed values: defaults, NOT NULL, renames, schema, owner, privileges, comments
CREATE ROLE rb_mig_other;
SELECT rollback.begin_migration('3-alter') > 0 AS begun;
ALTER TABLE mig.customers ALTER COLUMN region SET DEFAULT 'us';
ALTER TABLE mig.orders ALTER COLUMN created_at DROP DEFAULT;
ALTER TABLE mig.orders ALTER COLUMN amount DROP NOT NULL;
ALTER TABLE mig.customers ALTER COLUMN email SET NOT NULL;
ALTER TABLE mig.customers RENAME COLUMN email TO mail;
ALTER TABLE mig.customers RENAME TO clients;
ALTER INDEX mig.orders_customer_idx RENAME TO orders_cust_idx;
ALTER FUNCTION mig.touch() RENAME TO touched;
CREATE SCHEMA mig_other;
ALTER TABLE mig.big_orders SET SCHEMA mig_other;
ALTER TABLE mig.orders OWNER TO rb_mig_other;
GRANT SELECT ON mig.orders TO PUBLIC;
REVOKE ALL ON FUNCTION mig.order_total(int) FROM PUBLIC;
COMMENT ON TABLE mig.orders IS 'changed';
COMMENT ON COLUMN mig.clients.name IS 'a name';
UPDATE mig.orders SET amount = NULL WHERE id = 1;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('3-alter');
SELECT public.mig_fp() = :'fp0' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before - && echo schema unchanged
SELECT nspname FROM pg_namespace WHERE nspname = 'mig_other';

-- 4. DDL that destroys rows: DROP COLUMN and ALTER COLUMN TYPE keep the
-- content as of the point; DROP TABLE moves the table into a holding schema
SELECT rollback.begin_migration('4-content') > 0 AS begun;
ALTER TABLE mig.orders DROP COLUMN created_at;
ALTER TABLE mig.orders ALTER COLUMN amount TYPE int USING amount::int;
UPDATE mig.orders SET amount = amount * 10;
DROP TABLE mig.customers CASCADE;
SELECT count(*) AS holding_schemas FROM pg_namespace WHERE nspname LIKE 'rollback\_hold\_%';
TRUNCATE mig.orders;
SELECT rollback.end_migration();
SELECT action, count(*) FROM rollback.revert_migration('4-content', dry_run => true) GROUP BY action ORDER BY action;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('4-content');
SELECT public.mig_fp() = :'fp0' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before - && echo schema unchanged
SELECT count(*) AS holding_schemas FROM pg_namespace WHERE nspname LIKE 'rollback\_hold\_%';

-- 5. a mixed migration, auto-tracked (no begin_migration), labelled by the
-- dbmate history row written in its transaction; a late write is quarantined
-- (setup DDL on a tracked schema is a migration too, unless auto-tracking is off)
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.schema_migrations (version varchar(128) PRIMARY KEY);
CREATE TABLE mig.legacy (id int PRIMARY KEY, order_id int REFERENCES mig.orders (id));
INSERT INTO mig.legacy VALUES (1, 1);
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp5 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before5
BEGIN;
ALTER TABLE mig.orders ADD COLUMN total_cents bigint;
UPDATE mig.orders SET total_cents = amount * 100;
ALTER TABLE mig.orders DROP COLUMN amount;
ALTER TABLE mig.orders RENAME COLUMN note TO remark;
CREATE INDEX orders_total_idx ON mig.orders (total_cents);
CREATE TABLE mig.payments (id int PRIMARY KEY, order_id int REFERENCES mig.orders (id));
ALTER TABLE mig.orders ADD CONSTRAINT orders_positive CHECK (total_cents >= 0);
DROP TABLE mig.legacy;
INSERT INTO mig.schema_migrations (version) VALUES ('20261126000000');
COMMIT;
INSERT INTO mig.payments VALUES (1, 1);
SELECT version, tool, status, point FROM rollback.migrations WHERE version = '20261126000000';
SELECT step, action, regexp_replace(detail, '_[0-9]+', '_<n>', 'g') AS detail, rows
  FROM rollback.revert_migration(dry_run => true);
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration();
SELECT tbl, row_data FROM rollback.quarantine;
SELECT public.mig_fp() = :'fp5' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before5 - && echo schema unchanged
SELECT version, kind, status FROM rollback.migrations ORDER BY id;
SELECT action, migration_id IS NOT NULL AS has_migration, reason, detail ? 'rows_restored' AS figures
  FROM rollback.audit_log ORDER BY id;

-- 6. a revert can itself be reverted
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:20261126000000');
SELECT version FROM mig.schema_migrations;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'mig' AND table_name = 'orders' ORDER BY ordinal_position;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:revert:20261126000000');
SELECT public.mig_fp() = :'fp5' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before5 - && echo schema unchanged

-- 7. irreversible statements: refused by default, flagged with warn
SELECT rollback.begin_migration('7-enum') > 0 AS begun;
ALTER TYPE mig.mood ADD VALUE 'happy';
SELECT rollback.end_migration();
SET rollback.irreversible_ddl = warn;
SET client_min_messages = warning;
SELECT rollback.begin_migration('7-enum-warn') > 0 AS begun;
ALTER TYPE mig.mood ADD VALUE 'happy';
SELECT rollback.end_migration();
RESET rollback.irreversible_ddl;
SELECT version, irreversible, irreversible_reason FROM rollback.migrations WHERE version LIKE '7-%' ORDER BY id;
SELECT * FROM rollback.revert_migration('7-enum-warn');

-- 8. bad input: each a clear error, nothing changed
SELECT * FROM rollback.revert_migration('no-such-migration');
SELECT * FROM rollback.revert_migration('1-add');
SELECT * FROM rollback.revert_to(NULL);
SELECT rollback.begin_migration(NULL);
SELECT rollback.begin_migration('');
SELECT rollback.begin_migration('auto:1');
SELECT rollback.end_migration();
SELECT rollback.begin_migration('8-a') > 0 AS begun;
SELECT rollback.begin_migration('8-b');
SELECT * FROM rollback.revert_migration('8-a');
SELECT rollback.end_migration();
-- not the last one applied
SELECT rollback.begin_migration('8-c') > 0 AS begun;
CREATE TABLE mig.c8 (a int);
SELECT rollback.end_migration();
SELECT * FROM rollback.revert_migration('8-a');
-- its point was purged
SELECT rollback.drop_point('before:8-c');
SELECT * FROM rollback.revert_migration('8-c');
-- a role without rights
CREATE ROLE rb_mig_nobody;
SET ROLE rb_mig_nobody;
SELECT * FROM rollback.revert_migration('8-a');
SELECT rollback.begin_migration('8-x');
RESET ROLE;
SELECT version, status FROM rollback.migrations WHERE version LIKE '8-%' ORDER BY id;

-- 9. revert_to: every migration after the named one, newest first
SELECT public.mig_fp() AS fp9 \gset
SELECT rollback.begin_migration('9-a') > 0 AS begun;
ALTER TABLE mig.orders ADD COLUMN a9 int;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('9-b') > 0 AS begun;
ALTER TABLE mig.orders ADD COLUMN b9 int;
UPDATE mig.orders SET b9 = 1;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('8-c');
SELECT version, status FROM rollback.migrations WHERE version LIKE '9-%' ORDER BY id;
SELECT count(*) AS extra_columns FROM information_schema.columns
 WHERE table_schema = 'mig' AND table_name = 'orders' AND column_name IN ('a9', 'b9');

-- 10. a revert that cannot go on: nothing changed
SELECT rollback.begin_migration('10-a') > 0 AS begun;
ALTER TABLE mig.orders ADD COLUMN a10 int;
UPDATE mig.orders SET a10 = 1;
SELECT rollback.end_migration();
SELECT public.mig_fp() AS fp10 \gset
-- another transaction holds a lock it needs: lock_timeout ends it
BEGIN;
LOCK TABLE mig.orders IN ROW EXCLUSIVE MODE;
PREPARE TRANSACTION 'rb_mig_lock';
SET lock_timeout = '10ms';
SELECT * FROM rollback.revert_migration('10-a');
RESET lock_timeout;
ROLLBACK PREPARED 'rb_mig_lock';
-- a migration is running in this session
SELECT rollback.begin_migration('10-b') > 0 AS begun;
SELECT * FROM rollback.revert_to('9-b');
SELECT * FROM rollback.revert_migration('10-a');
SELECT rollback.end_migration();
-- a table of its point is no longer tracked: its history is incomplete
SELECT rollback.untrack('mig.legacy', force => true);
SELECT * FROM rollback.revert_migration('10-b');
SELECT * FROM rollback.revert_to('9-b', dry_run => true);
SELECT version, status FROM rollback.migrations WHERE version LIKE '10-%' OR version LIKE 'revert:10-%' ORDER BY id;
SELECT public.mig_fp() = :'fp10' AS rows_unchanged;
-- the points that lost a table say so (dropped outside a migration, too)
SET rollback.auto_track_migrations = off;
DROP TABLE mig.c8;
RESET rollback.auto_track_migrations;
SELECT name, incomplete FROM rollback.points WHERE name LIKE 'before:10-%' ORDER BY id;
-- an explicit migration whose session ended without end_migration() (a tool
-- that failed halfway): abandoned, and it can be reverted
SELECT public.mig_fp() AS fp10c \gset
SELECT pg_backend_pid() AS mig_pid \gset
SELECT rollback.begin_migration('10-c') > 0 AS begun;
ALTER TABLE mig.orders ADD COLUMN c10 int;
UPDATE mig.orders SET c10 = 1;
SELECT status FROM rollback.migrations WHERE version = '10-c';
SELECT * FROM rollback.revert_migration('10-c');
\c
CREATE FUNCTION pg_temp.wait_gone(p int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	WHILE EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = p) LOOP
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT pg_temp.wait_gone(:mig_pid);
SELECT status FROM rollback.migrations WHERE version = '10-c';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('10-c');
SELECT status FROM rollback.migrations WHERE version = '10-c';
SELECT public.mig_fp() = :'fp10c' AS rows_unchanged;
SELECT count(*) AS c10_columns FROM information_schema.columns
 WHERE table_schema = 'mig' AND table_name = 'orders' AND column_name = 'c10';


-- 11. several migrations keep the content of one table (DROP COLUMN, ALTER
-- COLUMN TYPE).  One at a time: the first revert re-adds a column with a new
-- number, and the second still loads the older content into it.  revert_to
-- over them loads the oldest content once, columns mapped to their numbers
-- now; a row written by another transaction since goes to the quarantine.
SET client_min_messages = warning;
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.kept8 (id int PRIMARY KEY, a int, b int);
INSERT INTO mig.kept8 SELECT g, g, 10 * g FROM generate_series(1, 5) g;
CREATE TABLE mig.kept7 (id int PRIMARY KEY, a int, b int, c text);
INSERT INTO mig.kept7 SELECT g, g, 10 * g, 'c' || g FROM generate_series(1, 5) g;
SELECT rollback.track('mig.kept8');
SELECT rollback.track('mig.kept7');
RESET rollback.auto_track_migrations;
CREATE TEMP TABLE kept8_before AS SELECT * FROM mig.kept8;
CREATE TEMP TABLE kept7_before AS SELECT * FROM mig.kept7;
SELECT rollback.begin_migration('11-a') > 0 AS begun;
ALTER TABLE mig.kept8 DROP COLUMN a;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('11-b') > 0 AS begun;
ALTER TABLE mig.kept8 DROP COLUMN b;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('11-b');
SELECT * FROM mig.kept8 ORDER BY id;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('11-a');
SELECT * FROM mig.kept8 ORDER BY id;
SELECT (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.id) FROM mig.kept8 x) =
	   (SELECT jsonb_agg(to_jsonb(y) ORDER BY y.id) FROM kept8_before y) AS rows_unchanged;
SELECT rollback.begin_migration('11-c') > 0 AS begun;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('11-d') > 0 AS begun;
UPDATE mig.kept7 SET b = b + 1 WHERE id = 1;
ALTER TABLE mig.kept7 DROP COLUMN a;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('11-e') > 0 AS begun;
ALTER TABLE mig.kept7 ALTER COLUMN b TYPE text USING b || '!';
DELETE FROM mig.kept7 WHERE id = 2;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('11-f') > 0 AS begun;
ALTER TABLE mig.kept7 DROP COLUMN b;
ALTER TABLE mig.kept7 RENAME COLUMN c TO label;
SELECT rollback.end_migration();
INSERT INTO mig.kept7 VALUES (6, 'late');
SELECT step, action, regexp_replace(detail, '_[0-9]+', '_<n>', 'g') AS detail, rows
  FROM rollback.revert_to('11-c', dry_run => true);
SELECT step, action, rows FROM rollback.revert_to('11-c');
SELECT * FROM mig.kept7 ORDER BY id;
SELECT (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.id) FROM mig.kept7 x) =
	   (SELECT jsonb_agg(to_jsonb(y) ORDER BY y.id) FROM kept7_before y) AS rows_unchanged;
SELECT row_data FROM rollback.quarantine WHERE tbl = 'mig.kept7';
SELECT version, status FROM rollback.migrations WHERE version LIKE '11-%' ORDER BY id;

-- 12. serial columns: their sequences come back named by OID, wherever they
-- are when the undo runs (a holding schema, another schema), with their next
-- values (\c above reset client_min_messages)
SET client_min_messages = warning;
SET rollback.auto_track_migrations = off;
CREATE SCHEMA mig_s11;
SELECT rollback.track_schema('mig_s11');
CREATE TABLE mig.s11a (a int, b serial);
CREATE TABLE mig.s11b (cid serial PRIMARY KEY, note text);
CREATE TABLE mig.s11c (a text, id bigserial);
INSERT INTO mig.s11a (a) VALUES (1), (2);
INSERT INTO mig.s11b (note) VALUES ('a'), ('b'), ('c');
INSERT INTO mig.s11c (a) VALUES ('x'), ('y');
RESET rollback.auto_track_migrations;
CREATE FUNCTION pg_temp.s11_seqs() RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; acc text := ''; v text;
BEGIN
	FOR r IN SELECT c.oid::regclass AS s FROM pg_class c
			  WHERE c.relkind = 'S' AND c.relname LIKE 's11%' ORDER BY c.relname LOOP
		EXECUTE format('SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM %s', r.s) INTO v;
		acc := acc || r.s::text || '=' || v || ' ';
	END LOOP;
	RETURN acc;
END $$;
SELECT public.mig_fp() AS fp11 \gset
SELECT pg_temp.s11_seqs() AS seqs11 \gset
SELECT count(*) AS hold11 FROM pg_namespace WHERE nspname LIKE 'rollback\_hold\_%' \gset
\! pg_dump --schema-only --schema=mig --schema=mig_s11 | grep -v '^\\.*restrict' > $RB_DUMP.before11
-- DROP TABLE: the owned sequence goes to the holding schema with the table
SELECT rollback.begin_migration('11-drop-table') > 0 AS begun;
DROP TABLE mig.s11a;
SELECT rollback.end_migration();
SELECT count(*) AS s11a_left FROM pg_class WHERE relnamespace = 'mig'::regnamespace AND relname LIKE 's11a%';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('11-drop-table');
SELECT * FROM mig.s11a ORDER BY a;
-- ALTER TABLE ... SET SCHEMA: the owned sequence moves with the table
SELECT rollback.begin_migration('11-set-schema') > 0 AS begun;
ALTER TABLE mig.s11b SET SCHEMA mig_s11;
INSERT INTO mig_s11.s11b (note) VALUES ('d');
SELECT rollback.end_migration();
SELECT pg_get_serial_sequence('mig_s11.s11b', 'cid') AS moved_sequence;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('11-set-schema');
SELECT * FROM mig.s11b ORDER BY cid;
-- DROP COLUMN of a serial column: the sequence would go with it; it waits in
-- a holding schema instead, and the app's schema is what DROP COLUMN gives
-- (the column is the last one, so that it comes back in its place)
SELECT rollback.begin_migration('11-drop-column') > 0 AS begun;
ALTER TABLE mig.s11c DROP COLUMN id;
INSERT INTO mig.s11c (a) VALUES ('z');
SELECT rollback.end_migration();
SELECT count(*) AS s11c_sequences_in_app_schemas FROM pg_class
 WHERE relkind = 'S' AND relname LIKE 's11c%' AND relnamespace IN ('mig'::regnamespace, 'mig_s11'::regnamespace);
SELECT regexp_replace(detail, '_[0-9]+', '_<n>', 'g') AS detail
  FROM rollback.revert_migration('11-drop-column', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('11-drop-column');
SELECT * FROM mig.s11c ORDER BY id;
SELECT public.mig_fp() = :'fp11' AS rows_unchanged;
SELECT pg_temp.s11_seqs() = :'seqs11' AS sequences_unchanged;
\! pg_dump --schema-only --schema=mig --schema=mig_s11 | grep -v '^\\.*restrict' | diff $RB_DUMP.before11 - && echo schema unchanged
SELECT count(*) = :hold11 AS holding_schemas_unchanged FROM pg_namespace WHERE nspname LIKE 'rollback\_hold\_%';
-- the revert of the DROP COLUMN can be reverted: the column goes again, the
-- sequence back to its holding schema; and that revert reverted again
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:11-drop-column');
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'mig' AND table_name = 's11c' ORDER BY ordinal_position;
SELECT count(*) AS s11c_sequences_in_app_schemas FROM pg_class
 WHERE relkind = 'S' AND relname LIKE 's11c%' AND relnamespace IN ('mig'::regnamespace, 'mig_s11'::regnamespace);
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:revert:11-drop-column');
SELECT public.mig_fp() = :'fp11' AS rows_unchanged;
SELECT pg_temp.s11_seqs() = :'seqs11' AS sequences_unchanged;
\! pg_dump --schema-only --schema=mig --schema=mig_s11 | grep -v '^\\.*restrict' | diff $RB_DUMP.before11 - && echo schema unchanged
INSERT INTO mig.s11c (a) VALUES ('w') RETURNING id, a;

-- 13. the session's migration state follows its transactions: a begin that
-- is rolled back (the transaction, or a savepoint) leaves no migration and
-- no lock; an end that is rolled back leaves the migration running
CREATE FUNCTION pg_temp.mig_locks() RETURNS bigint LANGUAGE sql AS $$
SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 21058 AND pid = pg_backend_pid()
$$;
BEGIN;
SELECT rollback.begin_migration('12-a') > 0 AS begun;
ALTER TABLE mig.s11a ADD COLUMN x12 int;
ROLLBACK;
SELECT rollback._current_migration() IS NULL AS no_migration, pg_temp.mig_locks() AS locks;
SELECT count(*) AS rows FROM rollback.migration WHERE version = '12-a';
BEGIN;
SAVEPOINT s;
SELECT rollback.begin_migration('12-b') > 0 AS begun;
ROLLBACK TO s;
SELECT rollback._current_migration() IS NULL AS no_migration, pg_temp.mig_locks() AS locks;
COMMIT;
BEGIN;
SAVEPOINT s;
SELECT rollback.begin_migration('12-c') > 0 AS begun;
RELEASE s;
COMMIT;
SELECT rollback._current_migration() IS NOT NULL AS in_migration, pg_temp.mig_locks() > 0 AS locked;
ALTER TABLE mig.s11a ADD COLUMN c12 int;
BEGIN;
SELECT rollback.end_migration();
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT rollback.end_migration();
ROLLBACK TO s;
COMMIT;
SELECT status FROM rollback.migrations WHERE version = '12-c';
SELECT rollback._current_migration() IS NOT NULL AS in_migration, pg_temp.mig_locks() > 0 AS locked;
SELECT rollback.end_migration();
SELECT status FROM rollback.migrations WHERE version = '12-c';
SELECT rollback._current_migration() IS NULL AS no_migration, pg_temp.mig_locks() AS locks;
-- an automatic migration started in a savepoint that is rolled back
BEGIN;
SAVEPOINT s;
ALTER TABLE mig.s11a ADD COLUMN d12 int;
ROLLBACK TO s;
SELECT rollback._current_migration() IS NULL AS no_migration;
INSERT INTO mig.s11a (a) VALUES (12);
COMMIT;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('12-c');
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'mig' AND table_name = 's11a' ORDER BY ordinal_position;
SELECT count(*) AS quarantined FROM rollback.quarantine WHERE tbl = 'mig.s11a';

-- 14. CREATE OR REPLACE VIEW that adds a column: OR REPLACE cannot take it
-- away, so the undo drops the view and the views over it and creates them
-- again, with their options, owner, privileges, comments and column defaults;
-- journal entries that name the old view (its OID) still find the new one
SET client_min_messages = warning;
SET rollback.auto_track_migrations = off;
CREATE VIEW mig.v14 WITH (security_barrier) AS SELECT id, customer_id FROM mig.orders WHERE id > 10;
COMMENT ON VIEW mig.v14 IS 'view 14';
COMMENT ON COLUMN mig.v14.customer_id IS 'who';
ALTER VIEW mig.v14 ALTER COLUMN customer_id SET DEFAULT 1;
GRANT SELECT ON mig.v14 TO rb_mig_other;
GRANT SELECT (id) ON mig.v14 TO PUBLIC;
CREATE VIEW mig.v14_over AS SELECT id FROM mig.v14;
CREATE VIEW mig.v14_top AS SELECT o.id, v.customer_id FROM mig.v14_over o JOIN mig.v14 v USING (id);
GRANT SELECT ON mig.v14_top TO rb_mig_other;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp14 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before14
SELECT rollback.begin_migration('14-a') > 0 AS begun;
COMMENT ON VIEW mig.v14_over IS 'over';
SELECT rollback.end_migration();
SELECT rollback.begin_migration('14-b') > 0 AS begun;
CREATE OR REPLACE VIEW mig.v14 WITH (security_barrier) AS
	SELECT id, customer_id, amount FROM mig.orders WHERE id > 10;
CREATE VIEW mig.v14_amount AS SELECT amount FROM mig.v14;
GRANT SELECT ON mig.v14 TO PUBLIC;
SELECT rollback.end_migration();
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.after14
SELECT version, irreversible FROM rollback.migrations WHERE version LIKE '14-%' ORDER BY id;
SELECT action, detail FROM rollback.revert_migration('14-b', dry_run => true)
 WHERE detail ~ '^(DROP|CREATE)';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('14-b');
SELECT count(*) AS v14_top_rows FROM mig.v14_top;
-- the revert can be reverted, and that revert reverted again
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:14-b');
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.after14 - && echo schema as after 14-b
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:revert:14-b');
-- 14-a's undo names mig.v14_over by the OID it had then
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('14-a');
SELECT public.mig_fp() = :'fp14' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before14 - && echo schema unchanged
-- refused, clearly, when something other than a view depends on it
CREATE FUNCTION mig.v14_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM mig.v14; END;
SELECT rollback.begin_migration('14-c') > 0 AS begun;
CREATE OR REPLACE VIEW mig.v14 WITH (security_barrier) AS
	SELECT id, customer_id, 1 AS one FROM mig.orders WHERE id > 10;
SELECT rollback.end_migration();
SET rollback.auto_track_migrations = off;
DROP FUNCTION mig.v14_count();
DROP VIEW mig.v14_top, mig.v14_over, mig.v14;
RESET rollback.auto_track_migrations;

-- 15. identity columns: DROP COLUMN and DROP IDENTITY come back with the
-- sequence's name, options and state; the revert of ADD COLUMN ... AS
-- IDENTITY can itself be reverted
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.id15 (a int, id int GENERATED ALWAYS AS IDENTITY (START WITH 10 INCREMENT BY 5));
CREATE TABLE mig.id15b (a int, id bigint GENERATED BY DEFAULT AS IDENTITY);
INSERT INTO mig.id15 (a) VALUES (1), (2);
INSERT INTO mig.id15b (a) VALUES (1), (2), (3);
RESET rollback.auto_track_migrations;
CREATE FUNCTION pg_temp.next15() RETURNS text LANGUAGE sql AS $$
	SELECT (SELECT CASE WHEN is_called THEN last_value + 5 ELSE last_value END FROM mig.id15_id_seq)
		|| ' ' || (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM mig.id15b_id_seq) $$;
SELECT public.mig_fp() AS fp15, pg_temp.next15() AS next15 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before15
SELECT rollback.begin_migration('15-a') > 0 AS begun;
ALTER TABLE mig.id15 DROP COLUMN id;
ALTER TABLE mig.id15b ALTER COLUMN id DROP IDENTITY;
INSERT INTO mig.id15 (a) VALUES (3);
SELECT rollback.end_migration();
SELECT version, irreversible FROM rollback.migrations WHERE version = '15-a';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('15-a');
SELECT public.mig_fp() = :'fp15' AS rows_unchanged, pg_temp.next15() = :'next15' AS sequences_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before15 - && echo schema unchanged
SELECT rollback.begin_migration('15-b') > 0 AS begun;
ALTER TABLE mig.id15 ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('15-b');
SELECT version, irreversible FROM rollback.migrations WHERE version IN ('15-b', 'revert:15-b') ORDER BY id;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:15-b');
SELECT a, id, n FROM mig.id15 ORDER BY a;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:revert:15-b');
SELECT public.mig_fp() = :'fp15' AS rows_unchanged, pg_temp.next15() = :'next15' AS sequences_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before15 - && echo schema unchanged

-- 16. a view created by a later migration over a column an earlier one
-- added: the later revert drops the view (it is not held, where it would
-- still depend on the column), so the earlier revert can drop the column;
-- the same for a materialized view and a function whose body uses it
SELECT public.mig_fp() AS fp16 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before16
SELECT rollback.begin_migration('16-a') > 0 AS begun;
ALTER TABLE mig.id15 ADD COLUMN c16 int;
ALTER TABLE mig.id15 ADD COLUMN d16 int;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('16-b') > 0 AS begun;
CREATE VIEW mig.v16 AS SELECT a, c16 FROM mig.id15;
GRANT SELECT ON mig.v16 TO rb_mig_other;
CREATE MATERIALIZED VIEW mig.mv16 AS SELECT a, d16 FROM mig.id15;
CREATE INDEX mv16_a ON mig.mv16 (a);
CREATE FUNCTION mig.f16() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(c16) FROM mig.id15; END;
SELECT rollback.end_migration();
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.after16
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('16-b');
-- the revert of the view's creation can be reverted, and reverted again
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:16-b');
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.after16 - && echo schema as after 16-b
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:revert:16-b');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('16-a');
SELECT public.mig_fp() = :'fp16' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before16 - && echo schema unchanged
-- the same, both in one revert_to (and with ALTER COLUMN TYPE)
SELECT rollback.begin_migration('16-c') > 0 AS begun;
ALTER TABLE mig.id15 ADD COLUMN c16 int;
ALTER TABLE mig.id15 ALTER COLUMN a TYPE bigint;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('16-d') > 0 AS begun;
CREATE VIEW mig.v16 AS SELECT a, c16 FROM mig.id15;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('16-a');
SELECT public.mig_fp() = :'fp16' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before16 - && echo schema unchanged
SELECT count(*) AS holding_schemas FROM pg_namespace WHERE nspname LIKE 'rollback\_hold\_%';
\! rm -f $RB_DUMP.before14 $RB_DUMP.after14 $RB_DUMP.before15 $RB_DUMP.before16 $RB_DUMP.after16

-- 17. a revert that re-adds a dropped column gives it a new number, in the
-- table's version store too: the rows 17-a changed, and the rows the revert
-- of 17-b emptied, come back from images that hold the column under its old
-- number, with its values (NULL would break NOT NULL).  Rows written before
-- d was added have no value for it on disk: their images, taken after d was
-- dropped, get the DEFAULT it was added with
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t17 (id int PRIMARY KEY, w text, v int NOT NULL);
INSERT INTO mig.t17 SELECT g, 'w' || g, 10 * g FROM generate_series(1, 4) g;
ALTER TABLE mig.t17 ADD COLUMN d int NOT NULL DEFAULT 7;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp17 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before17
SELECT rollback.begin_migration('17-a') > 0 AS begun;
UPDATE mig.t17 SET v = v + 1, w = w || '!', d = 8 WHERE id <= 2;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('17-b') > 0 AS begun;
ALTER TABLE mig.t17 DROP COLUMN v, DROP COLUMN d;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('17-b');
SELECT * FROM mig.t17 ORDER BY id;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('17-a');
SELECT * FROM mig.t17 ORDER BY id;
SELECT public.mig_fp() = :'fp17' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before17 - && echo schema unchanged
\! rm -f $RB_DUMP.before17
-- 19. kept content holds the table's history (live rows and images, with
-- the transactions that wrote them): a revert to an older point than the
-- migration that kept it reads that point's rows from it, so the row
-- changes of an earlier migration are undone and the rows other
-- transactions wrote between are quarantined, not lost.  DROP COLUMN of a
-- partitioned table keeps each partition's content, under the partition's
-- own column numbers.  A revert's rows are the migration system's: the
-- revert after it does not quarantine them.
SET client_min_messages = warning;
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t19 (id int PRIMARY KEY, b text, a int);
INSERT INTO mig.t19 SELECT g, 'b' || g, g FROM generate_series(1, 5) g;
CREATE TABLE mig.p19 (id int, b text, a int) PARTITION BY RANGE (id);
CREATE TABLE mig.p19_1 PARTITION OF mig.p19 FOR VALUES FROM (0) TO (10);
CREATE TABLE mig.p19_2 (x int, id int, b text, a int);
ALTER TABLE mig.p19_2 DROP COLUMN x;
ALTER TABLE mig.p19 ATTACH PARTITION mig.p19_2 FOR VALUES FROM (10) TO (20);
INSERT INTO mig.p19 SELECT g, 'b' || g, g FROM generate_series(1, 19, 3) g;
SELECT rollback.track('mig.t19');
SELECT rollback.track('mig.p19');
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp19 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before19
SELECT rollback.begin_migration('19-0') > 0 AS begun;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('19-a') > 0 AS begun;
UPDATE mig.t19 SET a = 100 WHERE id = 1;
DELETE FROM mig.t19 WHERE id = 2;
INSERT INTO mig.t19 VALUES (10, 'new', 10);
SELECT rollback.end_migration();
-- another transaction's rows, between the migrations
INSERT INTO mig.t19 VALUES (20, 'other', 20);
UPDATE mig.t19 SET b = 'other' WHERE id = 3;
SELECT rollback.begin_migration('19-b') > 0 AS begun;
ALTER TABLE mig.t19 ALTER COLUMN a TYPE bigint;
ALTER TABLE mig.p19 DROP COLUMN a;
SELECT rollback.end_migration();
INSERT INTO mig.t19 VALUES (30, 'late', 30);
SELECT action, regexp_replace(detail, '_[0-9]+', '_<n>', 'g') AS detail, rows
  FROM rollback.revert_to('19-0', dry_run => true)
 WHERE action NOT IN ('lock', 'sequence') OR detail ~ 'mig\.[pt]19' ORDER BY step;
SELECT action, rows FROM rollback.revert_to('19-0') WHERE rows IS NOT NULL ORDER BY step;
SELECT * FROM mig.t19 ORDER BY id;
SELECT * FROM mig.p19 ORDER BY id;
SELECT public.mig_fp() = :'fp19' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before19 - && echo schema unchanged
SELECT row_data, xid <> '0' AS has_xid FROM rollback.quarantine WHERE tbl = 'mig.t19' ORDER BY row_data->>'id';
-- one at a time, and the revert of a revert, and back: no quarantine
SELECT rollback.begin_migration('19-c') > 0 AS begun;
UPDATE mig.t19 SET b = 'c' WHERE id = 4;
UPDATE mig.p19 SET b = 'c' WHERE id = 4;
SELECT rollback.end_migration();
SELECT public.mig_fp() AS fp19c \gset
SELECT rollback.begin_migration('19-d') > 0 AS begun;
ALTER TABLE mig.t19 DROP COLUMN a;
ALTER TABLE mig.p19 DROP COLUMN a;
SELECT rollback.end_migration();
SELECT public.mig_fp() AS fp19d \gset
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('19-d');
SELECT * FROM mig.p19 ORDER BY id;
SELECT public.mig_fp() = :'fp19c' AS rows_as_after_19c;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:19-d');
SELECT public.mig_fp() = :'fp19d' AS rows_as_after_19d;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('revert:revert:19-d');
SELECT public.mig_fp() = :'fp19c' AS rows_as_after_19c;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('19-c');
SELECT * FROM mig.t19 ORDER BY id;
SELECT * FROM mig.p19 ORDER BY id;
SELECT public.mig_fp() = :'fp19' AS rows_unchanged;
SELECT m.version, count(q.id) AS quarantined FROM rollback.migration m
  LEFT JOIN rollback.quarantine q ON q.revert_id = m.id
 WHERE m.version LIKE 'revert:%19-%' GROUP BY m.id, m.version ORDER BY m.id;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before19 - && echo schema unchanged
\! rm -f $RB_DUMP.before19


-- 20. objects one migration creates and a later one drops, reverted in one
-- revert: the later one's re-creation and the earlier one's drop cancel out
-- (an index, a foreign key, an index rebuilt by ALTER COLUMN TYPE in
-- between); one at a time, the index re-created by the first revert is
-- found by the second through rollback.relocated
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t20 (id int PRIMARY KEY, note text, ref int);
INSERT INTO mig.t20 SELECT g, 'n' || g, g FROM generate_series(1, 5) g;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp20 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before20
SELECT rollback.begin_migration('20-0') > 0 AS begun;
COMMENT ON TABLE mig.t20 IS 'twenty';
SELECT rollback.end_migration();
SELECT rollback.begin_migration('20-a') > 0 AS begun;
CREATE INDEX t20_note ON mig.t20 (note);
ALTER TABLE mig.t20 ADD CONSTRAINT t20_ref FOREIGN KEY (ref) REFERENCES mig.t20 (id);
SELECT rollback.end_migration();
SELECT rollback.begin_migration('20-b') > 0 AS begun;
ALTER TABLE mig.t20 ALTER COLUMN note TYPE varchar(20);
SELECT rollback.end_migration();
SELECT rollback.begin_migration('20-c') > 0 AS begun;
DROP INDEX mig.t20_note;
ALTER TABLE mig.t20 DROP CONSTRAINT t20_ref;
UPDATE mig.t20 SET ref = 99 WHERE id = 1;
SELECT rollback.end_migration();
-- the plan: nothing of the index or the foreign key is created or dropped
SELECT action, detail FROM rollback.revert_to('20-0', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('20-0');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('20-0');
SELECT public.mig_fp() = :'fp20' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before20 - && echo schema unchanged
-- one at a time: 20-e re-creates the index, 20-d's undo drops it
SELECT rollback.begin_migration('20-d') > 0 AS begun;
CREATE INDEX t20_note ON mig.t20 (note);
SELECT rollback.end_migration();
SELECT rollback.begin_migration('20-e') > 0 AS begun;
ALTER TABLE mig.t20 ALTER COLUMN note TYPE varchar(20);
DROP INDEX mig.t20_note;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('20-e');
SELECT count(*) AS t20_note FROM pg_indexes WHERE schemaname = 'mig' AND indexname = 't20_note';
SELECT action, detail FROM rollback.revert_migration('20-d', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('20-d');
SELECT public.mig_fp() = :'fp20' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before20 - && echo schema unchanged
\! rm -f $RB_DUMP.before20
-- an index the journal names, dropped outside any migration since: the
-- revert says which, and changes nothing
SELECT rollback.begin_migration('20-f') > 0 AS begun;
CREATE INDEX t20_gone ON mig.t20 (ref);
SELECT rollback.end_migration();
SET rollback.auto_track_migrations = off;
DROP INDEX mig.t20_gone;
RESET rollback.auto_track_migrations;
SELECT detail FROM rollback.revert_migration('20-f', dry_run => true) WHERE action = 'undo';
\set VERBOSITY terse
SELECT count(*) FROM rollback.revert_migration('20-f');
\set VERBOSITY default
SELECT status FROM rollback.migrations WHERE version = '20-f';

-- 21. DROP COLUMN ... CASCADE and DROP CONSTRAINT ... CASCADE drop objects
-- outside the table (a view and a view over it, a function whose body uses
-- the column, another table's foreign key): the revert creates them again
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.p21 (id int PRIMARY KEY, name text);
CREATE TABLE mig.c21 (cid int PRIMARY KEY, pid int REFERENCES mig.p21 (id));
INSERT INTO mig.p21 VALUES (1, 'a'), (2, 'b');
INSERT INTO mig.c21 VALUES (10, 1), (11, 2);
CREATE VIEW mig.v21 AS SELECT id, name FROM mig.p21 WHERE id > 0;
CREATE VIEW mig.v21_over AS SELECT id FROM mig.v21;
GRANT SELECT ON mig.v21 TO rb_mig_other;
CREATE FUNCTION mig.f21() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(id) FROM mig.p21; END;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp21 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before21
SELECT rollback.begin_migration('21-a') > 0 AS begun;
ALTER TABLE mig.p21 DROP COLUMN id CASCADE;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('21-a');
SELECT public.mig_fp() = :'fp21' AS rows_unchanged, mig.f21() AS f21, (SELECT count(*) FROM mig.v21_over) AS v21_over;
-- the column comes back last (see the limits); everything else is as before
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before21 - | grep '^[<>]' | grep -v '^[<>]     \(id integer NOT NULL\|name text\),\?$' ; echo compared
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before21
SELECT rollback.begin_migration('21-b') > 0 AS begun;
ALTER TABLE mig.p21 DROP CONSTRAINT p21_pkey CASCADE;
SELECT rollback.end_migration();
SELECT count(*) AS fks FROM pg_constraint WHERE conrelid = 'mig.c21'::regclass AND contype = 'f';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('21-b');
SELECT count(*) AS fks FROM pg_constraint WHERE conrelid = 'mig.c21'::regclass AND contype = 'f';
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before21 - && echo schema unchanged
-- a foreign key names the table it references by OID: renamed since (here
-- outside any migration), it is still found
SELECT rollback.begin_migration('21-c') > 0 AS begun;
ALTER TABLE mig.c21 DROP CONSTRAINT c21_pid_fkey;
SELECT rollback.end_migration();
SET rollback.auto_track_migrations = off;
ALTER TABLE mig.p21 RENAME TO p21_renamed;
RESET rollback.auto_track_migrations;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('21-c');
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'mig.c21'::regclass AND contype = 'f';
\! rm -f $RB_DUMP.before21

-- 22. renames by an older migration of what a newer one dropped, in one
-- revert: the newer one's re-creation waits for the rows, so the rename of
-- that index or constraint waits behind it, and a renamed column is named
-- as it is then in what waits
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t22 (id int CONSTRAINT t22_pk PRIMARY KEY, a int CONSTRAINT t22_a CHECK (a > 0), b text);
CREATE INDEX t22_b ON mig.t22 (b);
CREATE INDEX t22_ab ON mig.t22 (a, b);
COMMENT ON INDEX mig.t22_b IS 'on b';
INSERT INTO mig.t22 SELECT g, g, 'b' || g FROM generate_series(1, 5) g;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp22 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before22
SELECT rollback.begin_migration('22-0') > 0 AS begun;
COMMENT ON TABLE mig.t22 IS 'twenty-two';
SELECT rollback.end_migration();
SELECT rollback.begin_migration('22-a') > 0 AS begun;
ALTER TABLE mig.t22 RENAME COLUMN a TO a_renamed;
ALTER TABLE mig.t22 RENAME CONSTRAINT t22_pk TO t22_pk_renamed;
ALTER TABLE mig.t22 RENAME CONSTRAINT t22_a TO t22_a_renamed;
ALTER INDEX mig.t22_b RENAME TO t22_b_renamed;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('22-b') > 0 AS begun;
ALTER TABLE mig.t22 DROP CONSTRAINT t22_pk_renamed;
ALTER TABLE mig.t22 DROP CONSTRAINT t22_a_renamed;
DROP INDEX mig.t22_b_renamed, mig.t22_ab;
INSERT INTO mig.t22 VALUES (1, -1, 'dup');
SELECT rollback.end_migration();
SELECT step, action, detail FROM rollback.revert_to('22-0', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('22-0');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('22-0');
SELECT public.mig_fp() = :'fp22' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before22 - && echo schema unchanged
\! rm -f $RB_DUMP.before22

-- 23. a table whose owner cannot reach its schema: the revert writes rows
-- as the table's owner, so it refuses, saying why, and changes nothing
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t23 (id int PRIMARY KEY, v int);
INSERT INTO mig.t23 VALUES (1, 1);
ALTER TABLE mig.t23 OWNER TO rb_mig_nobody;
RESET rollback.auto_track_migrations;
SELECT rollback.begin_migration('23-a') > 0 AS begun;
UPDATE mig.t23 SET v = 2;
SELECT rollback.end_migration();
SELECT count(*) FROM rollback.revert_migration('23-a', dry_run => true);
SELECT count(*) FROM rollback.revert_migration('23-a');
SELECT v, (SELECT status FROM rollback.migrations WHERE version = '23-a') FROM mig.t23;
GRANT USAGE ON SCHEMA mig TO rb_mig_nobody;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('23-a');
SELECT v FROM mig.t23;
REVOKE USAGE ON SCHEMA mig FROM rb_mig_nobody;
SET rollback.auto_track_migrations = off;
DROP TABLE mig.t23;
RESET rollback.auto_track_migrations;

-- 24. a comment on a constraint or an index the same migration created,
-- and a comment changed on one that was there: the revert sets the comment
-- back while the object is there
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t24 (id int PRIMARY KEY, v int CONSTRAINT t24_v CHECK (v > 0));
CREATE INDEX t24_v_idx ON mig.t24 (v);
COMMENT ON CONSTRAINT t24_v ON mig.t24 IS 'positive';
RESET rollback.auto_track_migrations;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before24
SELECT rollback.begin_migration('24-a') > 0 AS begun;
ALTER TABLE mig.t24 ADD CONSTRAINT t24_small CHECK (v < 1000);
COMMENT ON CONSTRAINT t24_small ON mig.t24 IS 'small';
CREATE INDEX t24_id_v ON mig.t24 (id, v);
COMMENT ON INDEX mig.t24_id_v IS 'both';
COMMENT ON CONSTRAINT t24_v ON mig.t24 IS 'changed';
COMMENT ON INDEX mig.t24_v_idx IS 'on v';
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('24-a');
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before24 - && echo schema unchanged
\! rm -f $RB_DUMP.before24
SET rollback.auto_track_migrations = off;
DROP TABLE mig.t24;
RESET rollback.auto_track_migrations;

-- 25. a kept content reloaded for a table whose owner changed since (the
-- reload runs as the owner now, lent what it needs for that, and only for
-- that); a column an older migration added, whose NOT NULL a newer one
-- dropped, in one revert
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t25 (id int PRIMARY KEY, a int, b int);
INSERT INTO mig.t25 SELECT g, g, g FROM generate_series(1, 4) g;
GRANT USAGE ON SCHEMA mig TO rb_mig_nobody;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp25 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before25
SELECT rollback.begin_migration('25-0') > 0 AS begun;
COMMENT ON TABLE mig.t25 IS 'twenty-five';
SELECT rollback.end_migration();
SELECT rollback.begin_migration('25-a') > 0 AS begun;
ALTER TABLE mig.t25 DROP COLUMN b;
ALTER TABLE mig.t25 ADD COLUMN c int DEFAULT 7 NOT NULL;
SELECT rollback.end_migration();
SET rollback.auto_track_migrations = off;
ALTER TABLE mig.t25 OWNER TO rb_mig_nobody;
RESET rollback.auto_track_migrations;
SELECT rollback.begin_migration('25-b') > 0 AS begun;
ALTER TABLE mig.t25 ALTER COLUMN c DROP NOT NULL;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('25-0');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('25-0');
SELECT has_schema_privilege('rb_mig_nobody', 'rollback_store', 'USAGE') AS store_usage;
SET rollback.auto_track_migrations = off;
ALTER TABLE mig.t25 OWNER TO postgres;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() = :'fp25' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before25 - && echo schema unchanged
\! rm -f $RB_DUMP.before25
SET rollback.auto_track_migrations = off;
DROP TABLE mig.t25;
REVOKE USAGE ON SCHEMA mig FROM rb_mig_nobody;
RESET rollback.auto_track_migrations;

-- 26. a view dropped (held) then its table dropped with CASCADE in the same
-- migration: the held view stays held, both come back
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t26 (id int PRIMARY KEY);
INSERT INTO mig.t26 VALUES (1);
CREATE VIEW mig.v26 AS SELECT id FROM mig.t26;
RESET rollback.auto_track_migrations;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before26
SELECT rollback.begin_migration('26-a') > 0 AS begun;
DROP VIEW mig.v26;
DROP TABLE mig.t26 CASCADE;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('26-a');
SELECT * FROM mig.v26;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before26 - && echo schema unchanged
\! rm -f $RB_DUMP.before26
SET rollback.auto_track_migrations = off;
DROP TABLE mig.t26 CASCADE;
RESET rollback.auto_track_migrations;

-- 27. a column added and dropped again: in one migration (an identity
-- column, re-added NOT NULL by the undo of its drop, then dropped by the
-- undo of its addition), and over two migrations in one revert
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before27
SELECT public.mig_fp() AS fp27 \gset
SELECT rollback.begin_migration('27-a') > 0 AS begun;
ALTER TABLE mig.kept8 ADD COLUMN c27 bigint GENERATED ALWAYS AS IDENTITY;
COMMENT ON COLUMN mig.kept8.c27 IS 'twenty-seven';
ALTER TABLE mig.kept8 DROP COLUMN c27;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('27-a');
SELECT rollback.begin_migration('27-b') > 0 AS begun;
ALTER TABLE mig.kept8 ADD COLUMN d27 int NOT NULL DEFAULT 1;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('27-c') > 0 AS begun;
ALTER TABLE mig.kept8 ALTER COLUMN d27 DROP NOT NULL;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('27-d') > 0 AS begun;
ALTER TABLE mig.kept8 DROP COLUMN d27;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('revert:27-a');
SELECT public.mig_fp() = :'fp27' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before27 - && echo schema unchanged
\! rm -f $RB_DUMP.before27

-- 18. a NOT NULL one migration set and a later one dropped (DROP NOT NULL,
-- or DROP COLUMN), reverted in one revert_to: the later one's SET NOT NULL
-- waits for the rows, the earlier one's DROP NOT NULL runs at once; the
-- pair cancels, the columns come back nullable.  With a self-referencing
-- foreign key the earlier one added and the later one's DROP TABLE ...
-- CASCADE dropped (fuzz seed 3)
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t18 (id int PRIMARY KEY, v int, w text, u text);
INSERT INTO mig.t18 SELECT g, g, 'w' || g, 'u' || g FROM generate_series(1, 5) g;
RESET rollback.auto_track_migrations;
SELECT rollback.begin_migration('18-0') > 0 AS begun;
COMMENT ON TABLE mig.t18 IS 't18';
SELECT rollback.end_migration();
SELECT public.mig_fp() AS fp18 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before18
SELECT rollback.begin_migration('18-a') > 0 AS begun;
ALTER TABLE mig.t18 ALTER COLUMN w SET NOT NULL;
ALTER TABLE mig.t18 ALTER COLUMN u SET NOT NULL;
ALTER TABLE mig.t18 ADD CONSTRAINT t18_self FOREIGN KEY (v) REFERENCES mig.t18 (id) ON DELETE CASCADE;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('18-b') > 0 AS begun;
ALTER TABLE mig.t18 ALTER COLUMN w DROP NOT NULL;
ALTER TABLE mig.t18 DROP COLUMN u;
DROP TABLE mig.t18 CASCADE;
SELECT rollback.end_migration();
SELECT action, regexp_replace(detail, 'rollback_hold_[0-9_]+', 'rollback_hold_M_T', 'g') AS detail
  FROM rollback.revert_to('18-0', dry_run => true) WHERE action = 'undo' ORDER BY step;
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('18-0');
SELECT public.mig_fp() = :'fp18' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before18 - && echo schema unchanged
\! rm -f $RB_DUMP.before18

-- 28. DROP COLUMN on a partitioned table whose partitions number the
-- column differently, after a migration that changed rows: reverted one at
-- a time, the rows come back with the column's values (the partitions'
-- stores follow the re-added column)
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.p28 (id int, a int, b int) PARTITION BY RANGE (id);
CREATE TABLE mig.p28_1 PARTITION OF mig.p28 FOR VALUES FROM (0) TO (10);
CREATE TABLE mig.p28_2 (b int, id int, a int);
ALTER TABLE mig.p28 ATTACH PARTITION mig.p28_2 FOR VALUES FROM (10) TO (20);
INSERT INTO mig.p28 SELECT g, g, 100 + g FROM generate_series(1, 15) g;
SELECT rollback.track('mig.p28');
RESET rollback.auto_track_migrations;
CREATE TEMP TABLE p28_before AS SELECT * FROM mig.p28;
SELECT rollback.begin_migration('28-a') > 0 AS begun;
UPDATE mig.p28 SET b = b + 1000 WHERE id % 2 = 0;
DELETE FROM mig.p28 WHERE id IN (3, 12);
SELECT rollback.end_migration();
SELECT rollback.begin_migration('28-b') > 0 AS begun;
ALTER TABLE mig.p28 DROP COLUMN b;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('28-b');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('28-a');
SELECT (SELECT count(*) FROM (SELECT id, a, b FROM p28_before EXCEPT SELECT id, a, b FROM mig.p28) x) AS missing,
	   (SELECT count(*) FROM (SELECT id, a, b FROM mig.p28 EXCEPT SELECT id, a, b FROM p28_before) x) AS extra;
SET rollback.auto_track_migrations = off;
SELECT rollback.untrack('mig.p28', force => true);
DROP TABLE mig.p28;
RESET rollback.auto_track_migrations;

-- 29. a constraint one migration adds, a second drops, the drop reverted
-- (the constraint comes back with a new OID), a third drops it again: a
-- revert of all three to before the first leaves no constraint (the
-- third's re-creation and the first's drop cancel out through
-- rollback.relocated, as for an index).  Found by fuzz_ddl.pl seed 3020.
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t29 (id int, sn bigint, c int CHECK (c > 0));
INSERT INTO mig.t29 SELECT g, g, g FROM generate_series(1, 5) g;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp29 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before29
SELECT rollback.begin_migration('29-0') > 0 AS begun;
COMMENT ON TABLE mig.t29 IS 'twenty-nine';
SELECT rollback.end_migration();
SELECT rollback.begin_migration('29-a') > 0 AS begun;
ALTER TABLE mig.t29 ADD CONSTRAINT t29_sn UNIQUE (sn);
ALTER TABLE mig.t29 ADD CONSTRAINT t29_c CHECK (c < 100);
SELECT rollback.end_migration();
SELECT rollback.begin_migration('29-b') > 0 AS begun;
ALTER TABLE mig.t29 DROP CONSTRAINT t29_sn, DROP CONSTRAINT t29_c;
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('29-b');
SELECT conname FROM pg_constraint WHERE conrelid = 'mig.t29'::regclass AND conname LIKE 't29\_%' ORDER BY 1;
SELECT rollback.begin_migration('29-c') > 0 AS begun;
ALTER TABLE mig.t29 DROP CONSTRAINT t29_sn, DROP CONSTRAINT t29_c;
UPDATE mig.t29 SET sn = 1, c = 500 WHERE id = 2;
SELECT rollback.end_migration();
-- the plan: neither constraint is created or dropped
SELECT action, detail FROM rollback.revert_to('29-0', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('29-0');
SELECT conname FROM pg_constraint WHERE conrelid = 'mig.t29'::regclass AND conname LIKE 't29\_%' ORDER BY 1;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('29-0');
SELECT public.mig_fp() = :'fp29' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before29 - && echo schema unchanged
-- the same when ALTER COLUMN TYPE rebuilt the constraints in between
SELECT rollback.begin_migration('29-1') > 0 AS begun;
COMMENT ON TABLE mig.t29 IS 'twenty-nine';
SELECT rollback.end_migration();
SELECT rollback.begin_migration('29-d') > 0 AS begun;
ALTER TABLE mig.t29 ADD CONSTRAINT t29_sn UNIQUE (sn), ADD CONSTRAINT t29_c CHECK (c < 100);
SELECT rollback.end_migration();
SELECT rollback.begin_migration('29-e') > 0 AS begun;
ALTER TABLE mig.t29 ALTER COLUMN sn TYPE numeric, ALTER COLUMN c TYPE bigint;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('29-f') > 0 AS begun;
ALTER TABLE mig.t29 DROP CONSTRAINT t29_sn, DROP CONSTRAINT t29_c;
SELECT rollback.end_migration();
SELECT action, detail FROM rollback.revert_to('29-1', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('29-1');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('29-1');
SELECT public.mig_fp() = :'fp29' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before29 - && echo schema unchanged
\! rm -f $RB_DUMP.before29

-- 30. a table of another role, dropped by one migration (held), then a
-- later migration reverted: the restore runs as the held table's owner,
-- who can reach the holding schema.  Found by fuzz_ddl.pl seed 3096.
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t30 (id int PRIMARY KEY, v text);
INSERT INTO mig.t30 SELECT g, 'v' || g FROM generate_series(1, 3) g;
ALTER TABLE mig.t30 OWNER TO rb_mig_other;
GRANT USAGE ON SCHEMA mig TO rb_mig_other;
CREATE TABLE mig.t30b (id int PRIMARY KEY, v text);
INSERT INTO mig.t30b SELECT g, 'w' || g FROM generate_series(1, 3) g;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp30 \gset
SELECT rollback.begin_migration('30-a') > 0 AS begun;
DROP TABLE mig.t30;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('30-b') > 0 AS begun;
UPDATE mig.t30b SET v = upper(v);
SELECT rollback.end_migration();
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('30-b');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('30-a');
SELECT * FROM mig.t30 ORDER BY id;
SELECT pg_catalog.pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'mig.t30'::regclass;
SELECT public.mig_fp() = :'fp30' AS rows_unchanged;
SELECT count(*) AS holding_schemas_left FROM pg_namespace WHERE nspname LIKE 'rollback\_hold\_%' AND
	   EXISTS (SELECT 1 FROM rollback.migration m WHERE m.version = '30-a' AND nspname LIKE 'rollback\_hold\_' || m.id || '\_%');
SET rollback.auto_track_migrations = off;
ALTER TABLE mig.t30 OWNER TO CURRENT_USER;
RESET rollback.auto_track_migrations;
REVOKE USAGE ON SCHEMA mig FROM rb_mig_other;

-- 31. an index and a constraint one migration creates, a second comments
-- on and renames, a third drops: a revert of all three neither creates nor
-- drops them, and what the second set on them is not set back either (they
-- never exist during the revert).  Found by fuzz_ddl.pl seeds 3164 and 3250.
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t31 (id int PRIMARY KEY, v int);
INSERT INTO mig.t31 SELECT g, g FROM generate_series(1, 3) g;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp31 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before31
SELECT rollback.begin_migration('31-0') > 0 AS begun;
COMMENT ON TABLE mig.t31 IS 'thirty-one';
SELECT rollback.end_migration();
SELECT rollback.begin_migration('31-a') > 0 AS begun;
CREATE INDEX t31_v ON mig.t31 (v);
ALTER TABLE mig.t31 ADD CONSTRAINT t31_pos CHECK (v > 0);
SELECT rollback.end_migration();
SELECT rollback.begin_migration('31-b') > 0 AS begun;
COMMENT ON INDEX mig.t31_v IS 'by v';
COMMENT ON CONSTRAINT t31_pos ON mig.t31 IS 'positive';
ALTER INDEX mig.t31_v RENAME TO t31_v2;
ALTER TABLE mig.t31 RENAME CONSTRAINT t31_pos TO t31_pos2;
SELECT rollback.end_migration();
SELECT rollback.begin_migration('31-c') > 0 AS begun;
DROP INDEX mig.t31_v2;
ALTER TABLE mig.t31 DROP CONSTRAINT t31_pos2;
SELECT rollback.end_migration();
SELECT action, detail FROM rollback.revert_to('31-0', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_to('31-0');
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('31-0');
SELECT public.mig_fp() = :'fp31' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before31 - && echo schema unchanged
\! rm -f $RB_DUMP.before31

-- 32. a column's privileges and comment set, then the column dropped, in
-- one migration: its revert re-adds the column with what it had when it was
-- dropped, once the rows are back, and only then takes back the GRANT and
-- the COMMENT.  Found by fuzz_ddl.pl seed 3358.
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t32 (id int PRIMARY KEY, v text);
INSERT INTO mig.t32 SELECT g, 'v' || g FROM generate_series(1, 3) g;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp32 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before32
SELECT rollback.begin_migration('32-a') > 0 AS begun;
GRANT UPDATE (v) ON mig.t32 TO rb_mig_other;
COMMENT ON COLUMN mig.t32.v IS 'vee';
ALTER TABLE mig.t32 DROP COLUMN v;
SELECT rollback.end_migration();
SELECT action, detail FROM rollback.revert_migration('32-a', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('32-a');
SELECT attname, attacl, col_description(attrelid, attnum) FROM pg_attribute
 WHERE attrelid = 'mig.t32'::regclass AND attname = 'v';
SELECT public.mig_fp() = :'fp32' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before32 - && echo schema unchanged
\! rm -f $RB_DUMP.before32

-- 33. an index and a constraint created, then rebuilt by ALTER COLUMN TYPE,
-- in one migration: its revert drops the rebuilt ones (the creation's drop
-- and the rebuild's re-creation cancel out; the rebuild's drop stays).
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t33 (id int PRIMARY KEY, v int);
INSERT INTO mig.t33 SELECT g, g FROM generate_series(1, 3) g;
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp33 \gset
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' > $RB_DUMP.before33
SELECT rollback.begin_migration('33-a') > 0 AS begun;
CREATE INDEX t33_v ON mig.t33 (v);
ALTER TABLE mig.t33 ADD CONSTRAINT t33_u UNIQUE (v);
ALTER TABLE mig.t33 ALTER COLUMN v TYPE bigint;
SELECT rollback.end_migration();
SELECT action, detail FROM rollback.revert_migration('33-a', dry_run => true) WHERE action = 'undo';
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('33-a');
SELECT public.mig_fp() = :'fp33' AS rows_unchanged;
\! pg_dump --schema-only --schema=mig | grep -v '^\\.*restrict' | diff $RB_DUMP.before33 - && echo schema unchanged
\! rm -f $RB_DUMP.before33

-- 34. a migration that dropped a primary key and added a row whose key is
-- too large for an index entry: its revert deletes the row and re-adds the
-- key in one transaction, and PostgreSQL's index build still indexes the
-- row it deleted (as DELETE then ADD PRIMARY KEY in one transaction would):
-- 54000, and the revert changes nothing.
SET rollback.auto_track_migrations = off;
CREATE TABLE mig.t34 (a int, b text, PRIMARY KEY (a, b));
INSERT INTO mig.t34 VALUES (1, 'one');
RESET rollback.auto_track_migrations;
SELECT public.mig_fp() AS fp34 \gset
SELECT rollback.begin_migration('34-a') > 0 AS begun;
ALTER TABLE mig.t34 DROP CONSTRAINT t34_pkey;
INSERT INTO mig.t34 SELECT 2, string_agg(md5(g::text), '') FROM generate_series(1, 400) g;
SELECT rollback.end_migration();
SELECT public.mig_fp() AS fp34a \gset
\set VERBOSITY terse
SELECT count(*) FROM rollback.revert_migration('34-a');
\set VERBOSITY default
SELECT status FROM rollback.migrations WHERE version = '34-a';
SELECT public.mig_fp() = :'fp34a' AS rows_as_after_34a;
DELETE FROM mig.t34 WHERE a = 2;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('34-a');
SELECT public.mig_fp() = :'fp34' AS rows_unchanged;
SELECT conname FROM pg_constraint WHERE conrelid = 'mig.t34'::regclass;

\! rm -f $RB_DUMP.before $RB_DUMP.before5 $RB_DUMP.before11
-- leave the database as the other tests expect it: no tracked table
SET rollback.auto_track_migrations = off;
DO $$
DECLARE s text;
BEGIN
	FOR s IN SELECT nspname FROM pg_namespace
			  WHERE nspname LIKE 'rollback\_hold\_%' OR nspname IN ('mig', 'mig_other', 'mig_s11') LOOP
		EXECUTE format('DROP SCHEMA %I CASCADE', s);
	END LOOP;
END $$;
DROP EXTENSION rollback CASCADE;
CREATE EXTENSION rollback;
RESET rollback.auto_track_migrations;
RESET client_min_messages;
DROP FUNCTION public.mig_fp();
DROP ROLE rb_mig_nobody, rb_mig_other;
