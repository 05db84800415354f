-- the copy-on-write engine alone: DDL here is not a migration
SET rollback.auto_track_migrations = off;
-- Who may do what: owners, rollback_admin, readers, and roles with no rights.
SET client_min_messages = warning;
\set VERBOSITY sqlstate
CREATE ROLE rb_alice;
CREATE ROLE rb_bob;
CREATE ROLE rb_carol;
CREATE ROLE rb_dave IN ROLE rollback_admin;
CREATE ROLE rb_reader IN ROLE rollback_reader;
GRANT CREATE ON SCHEMA public TO rb_alice;

-- a table owned by an ordinary role: its owner tracks and restores it
SET ROLE rb_alice;
CREATE TABLE acct (id int PRIMARY KEY, balance numeric);
INSERT INTO acct SELECT g, 100 FROM generate_series(1, 5) g;
GRANT SELECT ON acct TO rb_carol;
SELECT rollback.track('acct');
SELECT rollback.create_point('acct_p1', ARRAY['acct'::regclass]) > 0 AS created;
UPDATE acct SET balance = 0 WHERE id = 1;
SELECT * FROM rollback.as_of(NULL::acct, 'acct_p1') ORDER BY id;
RESET ROLE;

-- no rights: every entry point refuses, the catalog and the stores are closed
SET ROLE rb_bob;
SELECT rollback.track('acct');
SELECT rollback.untrack('acct');
SELECT rollback.create_point('bob_p', ARRAY['acct'::regclass]);
SELECT rollback.drop_point('acct_p1');
SELECT rollback.purge('0 seconds');
SELECT * FROM rollback.as_of(NULL::acct, 'acct_p1');
SELECT * FROM rollback.diff('acct', 'acct_p1');
SELECT * FROM rollback.restore('acct_p1');
SELECT * FROM rollback.restore('acct_p1', dry_run => true);
SELECT * FROM rollback.points;
SELECT * FROM rollback.point;
SELECT rollback.track_schema('public');
RESET ROLE;
SELECT format('SELECT * FROM %s', store) AS store_query
  FROM rollback.tracked_table WHERE relid = 'acct'::regclass \gset
SET ROLE rb_bob;
:store_query;
RESET ROLE;

-- SELECT on the table: history readable, restore refused
SET ROLE rb_carol;
SELECT * FROM rollback.as_of(NULL::acct, 'acct_p1') ORDER BY id;
SELECT op, old_row, new_row FROM rollback.diff('acct', 'acct_p1');
SELECT * FROM rollback.restore('acct_p1');
RESET ROLE;

-- the owner may restore its own table (dry run here)
SET ROLE rb_alice;
SELECT * FROM rollback.restore('acct_p1', dry_run => true);
RESET ROLE;

-- row-level security: history is not readable around the policies
ALTER TABLE acct ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_two ON acct FOR SELECT TO rb_carol USING (id = 2);
SET ROLE rb_carol;
SELECT * FROM rollback.as_of(NULL::acct, 'acct_p1');
RESET ROLE;
-- under FORCE ROW LEVEL SECURITY the owner's own restore would be filtered: refused
ALTER TABLE acct FORCE ROW LEVEL SECURITY;
SELECT * FROM rollback.restore('acct_p1');
ALTER TABLE acct NO FORCE ROW LEVEL SECURITY;
ALTER TABLE acct DISABLE ROW LEVEL SECURITY;

-- readers see the views
SET ROLE rb_reader;
SELECT name, tables, rows_captured FROM rollback.points;
SELECT tbl, captured FROM rollback.tracked;
RESET ROLE;

-- code attached to the table runs as the table's owner during a restore,
-- never as the extension's owner: an ALWAYS trigger records who it runs as
SET ROLE rb_alice;
CREATE TABLE who_ran (who name, super bool);
CREATE FUNCTION note_who() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN
	INSERT INTO public.who_ran SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
	RETURN NULL;
END$$;
CREATE TRIGGER note_who AFTER INSERT OR UPDATE OR DELETE ON acct FOR EACH ROW EXECUTE FUNCTION note_who();
ALTER TABLE acct ENABLE ALWAYS TRIGGER note_who;
RESET ROLE;

-- rollback_admin may restore any tracked table
SET ROLE rb_dave;
SELECT * FROM rollback.restore('acct_p1');
RESET ROLE;
SELECT * FROM acct ORDER BY id;
SELECT DISTINCT who, super FROM who_ran;

-- nothing of the refused calls changed anything
SELECT name FROM rollback.points ORDER BY id;

SELECT rollback.untrack('acct', force => true);
DROP TABLE acct, who_ran;
DROP FUNCTION note_who();
REVOKE CREATE ON SCHEMA public FROM rb_alice;
DROP ROLE rb_alice, rb_bob, rb_carol, rb_dave, rb_reader;
