-- the copy-on-write engine alone: DDL here is not a migration
SET rollback.auto_track_migrations = off;
-- Edge cases of the copy-on-write rule.
SET client_min_messages = warning;

-- Many types, NULLs, TOASTed values, identity and generated columns, no key.
CREATE TABLE wide (
	id int GENERATED ALWAYS AS IDENTITY,
	n numeric, b bytea, j jsonb, ts timestamptz, arr int[], t text,
	len int GENERATED ALWAYS AS (length(t)) STORED
);
INSERT INTO wide (n, b, j, ts, arr, t)
SELECT g / 3.0, decode(md5(g::text), 'hex'), jsonb_build_object('g', g),
	   '2026-01-01'::timestamptz + g * interval '1 hour', ARRAY[g, NULL, g],
	   CASE WHEN g % 2 = 0 THEN NULL
			ELSE (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 400) i) END
  FROM generate_series(1, 6) g;
SELECT rollback.track('wide');
SELECT rollback.create_point('w1') > 0 AS created;
CREATE TABLE wide_copy AS SELECT * FROM wide;
UPDATE wide SET t = t || 'x', arr = NULL WHERE id <= 3;
DELETE FROM wide WHERE id = 6;
INSERT INTO wide (n, t) VALUES (0, 'new');
-- the store keeps its own copy of TOASTed values
SELECT count(*) AS toasted_images FROM rollback.as_of(NULL::wide, 'w1') WHERE length(t) > 8000;
SELECT count(*) AS as_of_minus_copy FROM
  (SELECT * FROM rollback.as_of(NULL::wide, 'w1') EXCEPT ALL SELECT * FROM wide_copy) d;
SELECT count(*) AS copy_minus_as_of FROM
  (SELECT * FROM wide_copy EXCEPT ALL SELECT * FROM rollback.as_of(NULL::wide, 'w1')) d;
-- without a key, a changed row is a delete plus an insert
SELECT op, count(*) FROM rollback.diff('wide', 'w1') GROUP BY op ORDER BY op;
SELECT * FROM rollback.restore('w1');
SELECT count(*) AS differences FROM
  ((SELECT * FROM wide EXCEPT ALL SELECT * FROM wide_copy)
   UNION ALL (SELECT * FROM wide_copy EXCEPT ALL SELECT * FROM wide)) d;
-- identity sequence set back: the next row gets id 7 again
INSERT INTO wide (n) VALUES (1) RETURNING id;

-- Subtransactions: what a rolled-back savepoint did leaves no image.
CREATE TABLE sub (id int PRIMARY KEY, v int);
INSERT INTO sub SELECT g, g FROM generate_series(1, 4) g;
SELECT rollback.track('sub');
SELECT rollback.create_point('s1', ARRAY['sub'::regclass]) > 0 AS created;
BEGIN;
UPDATE sub SET v = v + 10 WHERE id = 1;
SAVEPOINT a;
UPDATE sub SET v = v + 100 WHERE id = 2;
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
DELETE FROM sub WHERE id = 3;
INSERT INTO sub VALUES (5, 5);
RELEASE SAVEPOINT b;
UPDATE sub SET v = v + 1000 WHERE id = 5;
COMMIT;
SELECT name, rows_captured FROM rollback.points WHERE name = 's1';
SELECT * FROM rollback.as_of(NULL::sub, 's1') ORDER BY id;
SELECT * FROM rollback.diff('sub', 's1');

-- A point taken in a transaction that inserted first does not see those rows.
BEGIN;
INSERT INTO sub VALUES (6, 6);
SELECT rollback.create_point('s2', ARRAY['sub'::regclass]) > 0 AS created;
INSERT INTO sub VALUES (7, 7);
COMMIT;
SELECT * FROM rollback.as_of(NULL::sub, 's2') ORDER BY id;
SELECT * FROM rollback.restore('s2');
SELECT * FROM sub ORDER BY id;

-- Capture fires in replica mode too (the triggers are ENABLE ALWAYS).
SELECT rollback.create_point('s3', ARRAY['sub'::regclass]) > 0 AS created;
SET session_replication_role = replica;
UPDATE sub SET v = -1;
RESET session_replication_role;
SELECT * FROM rollback.as_of(NULL::sub, 's3') ORDER BY id;
SELECT * FROM rollback.restore('s3');
SELECT * FROM sub ORDER BY id;

-- Foreign keys and user triggers stay out of the way of a restore.
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, pid int REFERENCES parent ON DELETE CASCADE);
CREATE TABLE trig_log (msg text);
CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN INSERT INTO trig_log VALUES (TG_OP || ' ' || TG_TABLE_NAME); RETURN NULL; END$$;
CREATE TRIGGER log_child AFTER INSERT OR UPDATE OR DELETE ON child
  FOR EACH ROW EXECUTE FUNCTION log_change();
INSERT INTO parent SELECT g FROM generate_series(1, 3) g;
INSERT INTO child SELECT g, g FROM generate_series(1, 3) g;
SELECT rollback.track('parent'), rollback.track('child');
SELECT rollback.create_point('fk1', ARRAY['parent', 'child']::regclass[]) > 0 AS created;
DELETE FROM parent WHERE id = 2;   -- cascades to child
INSERT INTO parent VALUES (4);
INSERT INTO child VALUES (4, 4);
TRUNCATE trig_log;
SELECT * FROM rollback.restore('fk1');
SELECT * FROM parent ORDER BY id;
SELECT * FROM child ORDER BY id;
SELECT count(*) AS user_trigger_calls FROM trig_log;
-- the restore did not leave replica mode behind
SHOW session_replication_role;

-- Freezing keeps the raw xmin, and that is what points compare: rows
-- written after a point stay out of it however they are frozen or moved.
CREATE TABLE frz (v int);
INSERT INTO frz VALUES (1);
SELECT rollback.track('frz');
SELECT rollback.create_point('f1', ARRAY['frz'::regclass]) > 0 AS created;
INSERT INTO frz VALUES (2);
SET vacuum_freeze_min_age = 0;
VACUUM frz;
VACUUM (FREEZE) frz;
VACUUM FULL frz;
COPY frz FROM PROGRAM 'echo 3';
RESET vacuum_freeze_min_age;
SELECT * FROM rollback.as_of(NULL::frz, 'f1');
UPDATE frz SET v = v + 10;
SELECT * FROM rollback.as_of(NULL::frz, 'f1');
SELECT * FROM rollback.restore('f1');
SELECT * FROM frz;

-- A table updated many times after a point keeps one image per row.
CREATE TABLE hot (id int PRIMARY KEY, v int);
INSERT INTO hot SELECT g, 0 FROM generate_series(1, 100) g;
SELECT rollback.track('hot');
SELECT rollback.create_point('h1', ARRAY['hot'::regclass]) > 0 AS created;
UPDATE hot SET v = v + 1;
UPDATE hot SET v = v + 1;
UPDATE hot SET v = v + 1;
SELECT rows_captured FROM rollback.points WHERE name = 'h1';
-- a second point: rows changed again are copied once more, for it
SELECT rollback.create_point('h2', ARRAY['hot'::regclass]) > 0 AS created;
UPDATE hot SET v = v + 1 WHERE id <= 10;
SELECT name, rows_captured FROM rollback.points WHERE name IN ('h1', 'h2') ORDER BY id;
SELECT sum(v) FROM rollback.as_of(NULL::hot, 'h1');
SELECT sum(v) FROM rollback.as_of(NULL::hot, 'h2');

-- Restore writes changed rows back in place when a primary key pairs them
-- (an identity key is left as it is) ...
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
INSERT INTO ident (v) VALUES ('a'), ('b'), ('c');
SELECT rollback.track('ident');
SELECT rollback.create_point('i1', ARRAY['ident'::regclass]) > 0 AS created;
UPDATE ident SET v = v || '!' WHERE id <= 2;
DELETE FROM ident WHERE id = 3;
INSERT INTO ident (v) VALUES ('d');
SELECT * FROM rollback.restore('i1');
SELECT * FROM ident ORDER BY id;
-- ... and deletes and re-inserts when another unique index could collide
-- midway: values swapped between rows restore cleanly
CREATE TABLE uq (id int PRIMARY KEY, email text UNIQUE);
INSERT INTO uq VALUES (1, 'a'), (2, 'b');
SELECT rollback.track('uq');
SELECT rollback.create_point('u1', ARRAY['uq'::regclass]) > 0 AS created;
UPDATE uq SET email = 'x' WHERE id = 1;
UPDATE uq SET email = 'a' WHERE id = 2;
UPDATE uq SET email = 'b' WHERE id = 1;
SELECT * FROM rollback.restore('u1');
SELECT * FROM uq ORDER BY id;

SELECT rollback.purge('0 seconds') > 0 AS purged;
SELECT rollback.untrack(tbl, force => true) FROM rollback.tracked WHERE parent IS NULL ORDER BY tbl::text;
DROP TABLE wide, wide_copy, sub, child, parent, trig_log, hot, ident, uq, frz;
DROP FUNCTION log_change();
