-- the copy-on-write engine alone: DDL here is not a migration
SET rollback.auto_track_migrations = off;
-- Restore at the heap level (src/heaprestore.c), what it checks, and the
-- tables it hands over to SQL statements.
SET client_min_messages = warning;
CREATE EXTENSION amcheck;

-- A table with a primary key, a unique expression index, a partial index
-- and TOASTed values.
CREATE TABLE big (id int PRIMARY KEY, code text NOT NULL, v int, note text);
CREATE UNIQUE INDEX big_code ON big (lower(code));
CREATE INDEX big_v_part ON big (v) WHERE v % 7 = 0;
INSERT INTO big
SELECT g, 'c' || g, g, CASE WHEN g % 5000 = 0 THEN repeat(md5(g::text), 300) END
  FROM generate_series(1, 40000) g;
ANALYZE big;
SELECT rollback.track('big');
CREATE TABLE big_copy AS SELECT * FROM big;
CREATE TABLE big_files AS
SELECT c.relname, pg_relation_filenode(c.oid) AS filenode
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'big'::regclass;
-- the content, the indexes (every row has its entries) and the constraints
CREATE FUNCTION pg_temp.big_ok() RETURNS TABLE (differences bigint, indexes_checked bigint)
LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM ((TABLE big EXCEPT ALL TABLE big_copy)
								  UNION ALL (TABLE big_copy EXCEPT ALL TABLE big)) d),
		   (SELECT count(bt_index_check(i.indexrelid, true)) FROM pg_index i
			 WHERE i.indrelid = 'big'::regclass)
$$;
-- which indexes the restore rebuilt (a rebuilt index has a new file)
CREATE FUNCTION pg_temp.big_rebuilt() RETURNS text[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(f.relname::text ORDER BY f.relname), '{}') FROM big_files f
	 WHERE pg_relation_filenode(f.relname::regclass) <> f.filenode
$$;

-- A few rows: each one's index entries are made in place.
SELECT rollback.create_point('b1', ARRAY['big'::regclass]) > 0 AS created;
UPDATE big SET v = -v, code = upper(code) WHERE id % 100 = 0;
DELETE FROM big WHERE id % 100 = 1;
INSERT INTO big SELECT g, 'n' || g, g FROM generate_series(40001, 40100) g;
SELECT * FROM rollback.restore('b1');
SELECT * FROM pg_temp.big_ok();
SELECT pg_temp.big_rebuilt() AS rebuilt;

-- Every row: past 1 row in 8 of the table, the rest go in without index
-- entries and the indexes are rebuilt once at the end.
SELECT rollback.create_point('b2', ARRAY['big'::regclass]) > 0 AS created;
UPDATE big SET v = -v, code = upper(code), note = note || 'x';
DELETE FROM big WHERE id % 10 = 0;
INSERT INTO big SELECT g, 'n' || g, g FROM generate_series(40001, 41000) g;
SELECT * FROM rollback.restore('b2');
SELECT * FROM pg_temp.big_ok();
SELECT pg_temp.big_rebuilt() AS rebuilt;
-- the index scans find the rows
SET enable_seqscan = off;
SELECT id, code FROM big WHERE lower(code) = 'c77';
SELECT count(*) AS partial_rows FROM big WHERE v % 7 = 0 AND v > 0;
RESET enable_seqscan;
-- and the restore can itself be undone: back to the state it replaced
SELECT * FROM rollback.restore('before restore to b2');
SELECT count(*) AS rows_now, count(*) FILTER (WHERE v < 0) AS negated FROM big;
SELECT count(bt_index_check(i.indexrelid, true)) AS indexes_checked
  FROM pg_index i WHERE i.indrelid = 'big'::regclass;

-- Pages whose visibility-map bit was set before the point and is still set
-- are skipped unread.  A VACUUM since the point sets the bits of pages that
-- hold rows written since: those pages must still be read.
CREATE TABLE vm (id int PRIMARY KEY, v int);
INSERT INTO vm SELECT g, g FROM generate_series(1, 2000) g;
VACUUM vm;
SELECT rollback.track('vm');
SELECT rollback.create_point('v1', ARRAY['vm'::regclass]) > 0 AS created;
UPDATE vm SET v = -v WHERE id = 1000;
INSERT INTO vm SELECT g, g FROM generate_series(2001, 2500) g;
VACUUM vm;
VACUUM vm;	-- the second one sets the bits the first could not yet
SELECT op, count(*) FROM rollback.diff('vm', 'v1') GROUP BY op ORDER BY op;
SELECT * FROM rollback.restore('v1');
SELECT count(*) AS rows_now, sum(v) AS sum_v FROM vm;

-- A unique index made after the point rejects the point's duplicates, both
-- when entries are made row by row and when the index is rebuilt; the
-- restore then changes nothing.
CREATE TABLE dup (id int, k int);
INSERT INTO dup SELECT g, g % 10000 FROM generate_series(1, 20000) g;
ANALYZE dup;
SELECT rollback.track('dup');
SELECT rollback.create_point('d1', ARRAY['dup'::regclass]) > 0 AS created;
UPDATE dup SET k = id;
CREATE UNIQUE INDEX dup_k ON dup (k);
SELECT * FROM rollback.restore('d1');
SELECT count(*) AS rows_kept, count(DISTINCT k) AS distinct_k FROM dup;
SELECT rollback.drop_point('d1');
DROP INDEX dup_k;
UPDATE dup SET k = 5 WHERE id = 1;
SELECT rollback.create_point('d2', ARRAY['dup'::regclass]) > 0 AS created;
UPDATE dup SET k = -1 WHERE id = 1;
CREATE UNIQUE INDEX dup_k ON dup (k);
SELECT * FROM rollback.restore('d2');
SELECT k FROM dup WHERE id = 1;

-- NOT NULL and CHECK constraints added since the point are checked.
CREATE TABLE chk (id int PRIMARY KEY, v int, w int);
INSERT INTO chk VALUES (1, 1, NULL), (2, 2, 2);
SELECT rollback.track('chk');
SELECT rollback.create_point('c1', ARRAY['chk'::regclass]) > 0 AS created;
UPDATE chk SET v = v + 10, w = 0;
ALTER TABLE chk ADD CONSTRAINT chk_v CHECK (v > 10);
SELECT * FROM rollback.restore('c1');
ALTER TABLE chk DROP CONSTRAINT chk_v;
ALTER TABLE chk ALTER COLUMN w SET NOT NULL;
SELECT * FROM rollback.restore('c1');
ALTER TABLE chk ALTER COLUMN w DROP NOT NULL;
SELECT * FROM rollback.restore('c1');
SELECT * FROM chk ORDER BY id;

-- The partition constraint of a partition is checked.
CREATE TABLE pt (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (1) TO (100);
INSERT INTO pt SELECT g, g FROM generate_series(1, 60) g;
SELECT rollback.track('pt');
SELECT rollback.create_point('p1', ARRAY['pt'::regclass]) > 0 AS created;
DELETE FROM pt WHERE id > 40;
ALTER TABLE pt DETACH PARTITION pt1;
ALTER TABLE pt ATTACH PARTITION pt1 FOR VALUES FROM (1) TO (41);
SELECT * FROM rollback.restore('p1');
SELECT count(*) AS rows_kept FROM pt;

-- A published table must be able to publish the deletes, as for DELETE.
CREATE TABLE pub (v int);
INSERT INTO pub VALUES (1), (2);
SELECT rollback.track('pub');
SELECT rollback.create_point('pub1', ARRAY['pub'::regclass]) > 0 AS created;
UPDATE pub SET v = v + 1;
SET client_min_messages = error;	-- wal_level may be below logical
CREATE PUBLICATION rb_restore_pub FOR TABLE pub;
SET client_min_messages = warning;
SELECT * FROM rollback.restore('pub1');
ALTER TABLE pub REPLICA IDENTITY FULL;
SELECT * FROM rollback.restore('pub1');
SELECT * FROM pub ORDER BY v;
DROP PUBLICATION rb_restore_pub;

-- Tables restored with SQL statements instead: a trigger that fires under
-- session_replication_role = replica sees the restore's rows...
CREATE TABLE trg (id int PRIMARY KEY, v int);
CREATE TABLE trg_log (op text, id int, v int);
INSERT INTO trg VALUES (1, 1), (2, 2), (3, 3);
CREATE FUNCTION pg_temp.trg_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO public.trg_log VALUES (TG_OP, OLD.id, OLD.v);
	ELSE
		INSERT INTO public.trg_log VALUES (TG_OP, NEW.id, NEW.v);
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER trg_note AFTER INSERT OR UPDATE OR DELETE ON trg
	FOR EACH ROW EXECUTE FUNCTION pg_temp.trg_note();
ALTER TABLE trg ENABLE ALWAYS TRIGGER trg_note;
SELECT rollback.track('trg');
SELECT rollback.create_point('t1', ARRAY['trg'::regclass]) > 0 AS created;
UPDATE trg SET v = v * 10 WHERE id = 1;
DELETE FROM trg WHERE id = 2;
INSERT INTO trg VALUES (4, 4);
TRUNCATE trg_log;
SELECT * FROM rollback.restore('t1');
SELECT * FROM trg_log ORDER BY op, id;
SELECT * FROM trg ORDER BY id;
-- ... an ordinary one does not, and leaves the heap-level restore alone
ALTER TABLE trg ENABLE TRIGGER trg_note;
UPDATE trg SET v = v * 10 WHERE id = 1;
TRUNCATE trg_log;
SELECT * FROM rollback.restore('t1');
SELECT count(*) AS logged FROM trg_log;
SELECT * FROM trg ORDER BY id;

-- A deferrable unique constraint, checked at commit: values swapped since
-- the point are swapped back.
CREATE TABLE dfr (id int PRIMARY KEY, k int UNIQUE DEFERRABLE INITIALLY DEFERRED);
INSERT INTO dfr VALUES (1, 10), (2, 20);
SELECT rollback.track('dfr');
SELECT rollback.create_point('f1', ARRAY['dfr'::regclass]) > 0 AS created;
UPDATE dfr SET k = CASE id WHEN 1 THEN 20 ELSE 10 END;
SELECT * FROM rollback.restore('f1');
SELECT * FROM dfr ORDER BY id;
