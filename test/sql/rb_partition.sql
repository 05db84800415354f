-- the copy-on-write engine alone: DDL here is not a migration
SET rollback.auto_track_migrations = off;
-- Partitioned tables, tracked schemas, and stores kept in step with DDL.
SET client_min_messages = warning;
CREATE TABLE m (id int, k int, note text) PARTITION BY RANGE (id);
CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
SELECT rollback.track('m');
-- a partition created later is tracked through its parent
CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200);
-- and one attached later too
CREATE TABLE m3 (id int, k int, note text);
ALTER TABLE m ATTACH PARTITION m3 FOR VALUES FROM (200) TO (300);
SELECT tbl, parent, captured FROM rollback.tracked ORDER BY tbl::text;

INSERT INTO m SELECT g, g, 'n' || g FROM generate_series(0, 299) g;
SELECT rollback.create_point('pm', ARRAY['m'::regclass]) > 0 AS created;
SELECT tables FROM rollback.points WHERE name = 'pm';
-- moves rows across partitions: each moved row is captured once
UPDATE m SET id = id + 100, k = -k WHERE id < 50;
DELETE FROM m WHERE id >= 290;
SELECT rows_captured FROM rollback.points WHERE name = 'pm';
SELECT count(*), sum(k) FROM rollback.as_of(NULL::m, 'pm');
SELECT count(*), sum(k) FROM rollback.as_of(NULL::m1, 'pm');
SELECT op, count(*) FROM rollback.diff('m', 'pm') GROUP BY op ORDER BY op;
SELECT * FROM rollback.restore('pm', ARRAY['m'::regclass]);
SELECT count(*), sum(k) FROM m;
SELECT count(*) FROM m1;

-- tracked schema: present and future tables
CREATE SCHEMA app;
CREATE TABLE app.a (x int);
CREATE TABLE app.b (y text);
SELECT rollback.track_schema('app');
SELECT rollback.track_schema('app');
CREATE TABLE app.c (z int);
CREATE TABLE app.d AS SELECT 1 AS w;
CREATE TEMP TABLE tmp_not_tracked (x int);
SELECT tbl FROM rollback.tracked WHERE tbl::text LIKE 'app.%' ORDER BY tbl::text;

-- ALTER TABLE keeps the store in step: a new column, a renamed one, a new type
INSERT INTO app.b VALUES ('one'), ('two');
SELECT rollback.create_point('before_ddl', ARRAY['app.b'::regclass]) > 0 AS created;
UPDATE app.b SET y = 'uno' WHERE y = 'one';
ALTER TABLE app.b ADD COLUMN n int DEFAULT 7;
ALTER TABLE app.b RENAME COLUMN y TO label;
UPDATE app.b SET n = 8 WHERE label = 'two';
SELECT * FROM rollback.as_of(NULL::app.b, 'before_ddl') ORDER BY label;
-- a rewriting ALTER would give every row a new xmin: refused while points exist
ALTER TABLE app.b ALTER COLUMN n TYPE bigint;
-- a dropped column stays in the store, and leaves as_of's output
ALTER TABLE app.b ADD COLUMN extra text;
UPDATE app.b SET extra = 'e';
ALTER TABLE app.b DROP COLUMN extra;
SELECT * FROM rollback.as_of(NULL::app.b, 'before_ddl') ORDER BY label;
SELECT * FROM rollback.restore('before_ddl');
SELECT * FROM app.b ORDER BY label;
-- without points, the rewrite goes through and the store follows
SELECT rollback.drop_point('before_ddl');
SELECT rollback.drop_point('before restore to before_ddl');
ALTER TABLE app.b ALTER COLUMN n TYPE bigint;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = (SELECT store FROM rollback.tracked_table WHERE relid = 'app.b'::regclass)
   AND attname = 'c2';

-- dropping a tracked table forgets it; dropping the schema forgets the schema
DROP TABLE app.a;
SELECT tbl FROM rollback.tracked WHERE tbl::text LIKE 'app.%' ORDER BY tbl::text;
DROP SCHEMA app CASCADE;
SELECT count(*) FROM rollback.tracked_schema;
SELECT name, tables FROM rollback.points ORDER BY id;

SELECT rollback.untrack('m', force => true);
SELECT count(*) FROM rollback.tracked;
DROP TABLE m;
