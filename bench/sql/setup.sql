-- bench/sql/setup.sql: helpers for bench/run.sh, loaded into each benchmark
-- database after CREATE EXTENSION rollback.
--
-- The E-Maj-like baseline: a plain PL/pgSQL audit trigger that logs every
-- change as one row (old and new image as jsonb, the operation, the time),
-- and logs a TRUNCATE by copying every row the TRUNCATE removes, as E-Maj's
-- log triggers do.

CREATE TABLE audit_log (
	id		bigserial PRIMARY KEY,
	tbl		text NOT NULL,
	op		text NOT NULL,
	at		timestamptz NOT NULL,
	old_row	jsonb,
	new_row	jsonb
);

CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO audit_log (tbl, op, at, old_row, new_row)
		VALUES (TG_TABLE_NAME, TG_OP, now(), NULL, to_jsonb(NEW));
	ELSIF TG_OP = 'UPDATE' THEN
		INSERT INTO audit_log (tbl, op, at, old_row, new_row)
		VALUES (TG_TABLE_NAME, TG_OP, now(), to_jsonb(OLD), to_jsonb(NEW));
	ELSE
		INSERT INTO audit_log (tbl, op, at, old_row, new_row)
		VALUES (TG_TABLE_NAME, TG_OP, now(), to_jsonb(OLD), NULL);
	END IF;
	RETURN NULL;
END
$$;

CREATE FUNCTION audit_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('INSERT INTO audit_log (tbl, op, at, old_row)'
				   ' SELECT %L, ''TRUNCATE'', now(), to_jsonb(x) FROM ONLY %s x',
				   TG_TABLE_NAME, TG_RELID::regclass);
	RETURN NULL;
END
$$;

-- audit(tbl): put the audit triggers on a table.
CREATE FUNCTION audit(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TRIGGER audit_row AFTER INSERT OR UPDATE OR DELETE ON %s'
				   ' FOR EACH ROW EXECUTE FUNCTION audit_row()', tbl);
	EXECUTE format('CREATE TRIGGER audit_truncate BEFORE TRUNCATE ON %s'
				   ' FOR EACH STATEMENT EXECUTE FUNCTION audit_truncate()', tbl);
END
$$;

-- The row shape of the 1M-row table: id bigint primary key, two ints, a
-- numeric and a text column; :textlen characters of text per row.
-- bench_table(name) creates an empty one; bench_fill(name, lo, hi) adds
-- rows lo..hi, the same content for the same ids in every table.
CREATE FUNCTION bench_table(tbl text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I (id bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL,'
				   ' n numeric(12,2) NOT NULL, t text NOT NULL)', tbl);
END
$$;

CREATE FUNCTION bench_rows(lo bigint, hi bigint, textlen int)
	RETURNS TABLE (id bigint, a int, b int, n numeric(12,2), t text)
	LANGUAGE sql IMMUTABLE AS $$
	SELECT g, (g % 1000)::int, ((g * 7919) % 100000)::int, round((g % 100000) / 100.0, 2),
		   left(repeat(md5(g::text), 4), textlen)
	  FROM generate_series(lo, hi) g
$$;

-- bench_digest(tbl): a cheap content digest, to check a restore.
CREATE FUNCTION bench_digest(tbl regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format('SELECT concat_ws('','', count(*), sum(id), sum(a), sum(b), sum(n),'
				   ' sum(hashtext(t)::bigint)) FROM %s', tbl) INTO r;
	RETURN r;
END
$$;
