-- the copy-on-write engine alone: DDL here is not a migration
SET rollback.auto_track_migrations = off;
-- Bad input: a clear error with a specific SQLSTATE, and nothing changed.
SET client_min_messages = warning;
-- err(q): run q, show its SQLSTATE and message instead of failing
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS
$$BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END$$;
CREATE TABLE t (id int PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5) g;
CREATE TABLE untracked (id int);
CREATE VIEW a_view AS SELECT 1 AS x;
CREATE MATERIALIZED VIEW a_matview AS SELECT 1 AS x;
CREATE SEQUENCE a_seq;
CREATE TEMP TABLE a_temp (x int);
CREATE TYPE a_type AS (x int);

-- nothing tracked yet
SELECT pg_temp.err($$SELECT rollback.create_point('p')$$);
SELECT rollback.track('t');

-- track
SELECT pg_temp.err($$SELECT rollback.track(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.track(0)$$);
SELECT pg_temp.err($$SELECT rollback.track('a_view')$$);
SELECT pg_temp.err($$SELECT rollback.track('a_matview')$$);
SELECT pg_temp.err($$SELECT rollback.track('a_seq')$$);
SELECT pg_temp.err($$SELECT rollback.track('a_temp')$$);
SELECT pg_temp.err($$SELECT rollback.track('pg_class')$$);
SELECT pg_temp.err($$SELECT rollback.track('information_schema.sql_features')$$);
SELECT pg_temp.err($$SELECT rollback.track('rollback.point')$$);
SELECT pg_temp.err($$SELECT rollback.track('does_not_exist')$$);
SELECT pg_temp.err($$SELECT rollback.track_schema(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.track_schema('no_such_schema')$$);
SELECT pg_temp.err($$SELECT rollback.track_schema('pg_catalog')$$);
SELECT pg_temp.err($$SELECT rollback.track_schema('rollback')$$);

-- create_point
SELECT pg_temp.err($$SELECT rollback.create_point(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.create_point('')$$);
SELECT pg_temp.err($$SELECT rollback.create_point('p', ARRAY[]::regclass[])$$);
SELECT pg_temp.err($$SELECT rollback.create_point('p', ARRAY[NULL]::regclass[])$$);
SELECT pg_temp.err($$SELECT rollback.create_point('p', ARRAY['untracked']::regclass[])$$);
SELECT pg_temp.err($$SELECT rollback.create_point('p', ARRAY['a_view']::regclass[])$$);
SELECT rollback.create_point('p') > 0 AS created;
SELECT pg_temp.err($$SELECT rollback.create_point('p')$$);
SELECT count(*) FROM rollback.points;
BEGIN;
DELETE FROM t WHERE id = 5;
SELECT pg_temp.err($$SELECT rollback.create_point('after_write')$$);
ROLLBACK;

-- unknown and null points
SELECT pg_temp.err($$SELECT rollback.drop_point(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.drop_point('nope')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.as_of(NULL::t, 'nope')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.as_of(NULL::t, NULL)$$);
SELECT pg_temp.err($$SELECT * FROM rollback.as_of(1, 'p')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.as_of(NULL::a_type, 'p')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.as_of(NULL::untracked, 'p')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.diff(NULL, 'p')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.diff('t', NULL)$$);
SELECT pg_temp.err($$SELECT * FROM rollback.diff('t', 'nope')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.restore(NULL)$$);
SELECT pg_temp.err($$SELECT * FROM rollback.restore('nope')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.restore('p', dry_run => NULL)$$);
SELECT pg_temp.err($$SELECT * FROM rollback.restore('p', ARRAY[]::regclass[])$$);
SELECT pg_temp.err($$SELECT * FROM rollback.restore('p', ARRAY[NULL]::regclass[])$$);
SELECT pg_temp.err($$SELECT * FROM rollback.restore('p', ARRAY['untracked']::regclass[])$$);
SELECT pg_temp.err($$SELECT rollback.purge(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.purge('-1 day')$$);

-- a point that does not cover a table
CREATE TABLE t2 (x int);
SELECT rollback.track('t2');
SELECT pg_temp.err($$SELECT * FROM rollback.as_of(NULL::t2, 'p')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.restore('p', ARRAY['t2']::regclass[])$$);

-- untrack refuses while a point needs the history
SELECT pg_temp.err($$SELECT rollback.untrack(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.untrack('t', NULL)$$);
SELECT pg_temp.err($$SELECT rollback.untrack('untracked')$$);
SELECT pg_temp.err($$SELECT rollback.untrack('t')$$);
SELECT pg_temp.err($$SELECT rollback.untrack(0)$$);

-- the capture triggers cannot be switched off while tracked
SELECT pg_temp.err($$ALTER TABLE t DISABLE TRIGGER ALL$$);
SELECT pg_temp.err($$ALTER TABLE t DISABLE TRIGGER USER$$);
SELECT pg_temp.err($$ALTER TABLE t DISABLE TRIGGER zz_rollback_capture$$);
SELECT pg_temp.err($$ALTER TABLE t ENABLE REPLICA TRIGGER zz_rollback_capture_truncate$$);
SELECT pg_temp.err($$DROP TRIGGER zz_rollback_capture ON t$$);
SELECT pg_temp.err($$ALTER TRIGGER zz_rollback_capture ON t RENAME TO other$$);
-- ENABLE TRIGGER ALL is let through, and capture stays ALWAYS
ALTER TABLE t ENABLE TRIGGER ALL;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 't'::regclass ORDER BY tgname;
-- a BEFORE ROW trigger that would fire after capture is refused
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER zzz_late BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
CREATE TRIGGER aaa_early BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
ALTER TRIGGER aaa_early ON t RENAME TO zzz_renamed;
CREATE TRIGGER zzz_after AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
CREATE TABLE late (id int);
CREATE TRIGGER zzz_late BEFORE DELETE ON late FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
SELECT pg_temp.err($$SELECT rollback.track('late')$$);
DROP TABLE late;
DROP TRIGGER aaa_early ON t;
DROP TRIGGER zzz_after ON t;

-- nothing changed by any of the above
SELECT * FROM t ORDER BY id;
SELECT name, tables FROM rollback.points;
SELECT tbl FROM rollback.tracked ORDER BY tbl::text;

-- untrack with force drops the point entries for the table
SELECT rollback.untrack('t', force => true);
SELECT count(*) FROM rollback.points;
SELECT rollback.untrack('t2');
DROP TABLE t, t2, untracked;
DROP VIEW a_view;
DROP MATERIALIZED VIEW a_matview;
DROP SEQUENCE a_seq;
DROP TYPE a_type;
