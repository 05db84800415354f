-- Checks and the worker's SQL API (issue 4): add_check and the built-ins,
-- drop_check, run_checks through the worker (tags only: no migration exists
-- here, so nothing is ever acted on), what a check may do when it runs,
-- pause/resume/hold/release, the audit log and its tampering, status() and
-- metrics().  Everything that writes a migration or an audit entry runs in
-- BEGIN ... ROLLBACK, and every check is dropped at the end: the tests after
-- this one see the database as it was.
SET rollback.auto_track_migrations = off;
SET client_min_messages = warning;
-- err(q): run q, show its SQLSTATE and message instead of failing
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS
$$BEGIN EXECUTE q; RETURN 'no error'; EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END$$;
-- errd(q): the same with the error's detail (batch numbers masked)
CREATE FUNCTION pg_temp.errd(q text) RETURNS text LANGUAGE plpgsql AS
$$DECLARE d text;
BEGIN EXECUTE q; RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || ' / ' || regexp_replace(d, 'batch [0-9]+', 'batch <n>');
END$$;
-- the worker starts with the extension: wait for it (up to 30 s)
CREATE FUNCTION pg_temp.worker_running() RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN
	FOR i IN 1 .. 300 LOOP
		IF rollback._worker_pid() IS NOT NULL THEN RETURN true; END IF;
		PERFORM pg_sleep(0.1);
	END LOOP;
	RETURN false;
END$$;
-- the results of the last run_checks() call
CREATE TEMP VIEW last_runs AS
SELECT check_name, status, severity, dry_run, runs, failures, detail,
	   jsonb_array_length(failing_rows) AS rows_kept
  FROM rollback.check_runs WHERE batch = (SELECT max(batch) FROM rollback.check_runs) ORDER BY id;

-- preconditions: the worker runs, and there is nothing it could act on
SELECT pg_temp.worker_running() AS worker_running;
SELECT (SELECT count(*) FROM rollback.migration) AS migrations,
	   (SELECT count(*) FROM rollback.checks) AS checks,
	   (SELECT count(*) FROM rollback.audit_log) AS audit_entries;
SELECT * FROM rollback.status();

CREATE SCHEMA rbchk;
CREATE TABLE rbchk.parent (id int PRIMARY KEY, name text);
CREATE TABLE rbchk.child (id int PRIMARY KEY, parent_id int REFERENCES rbchk.parent, email text,
	seen timestamptz);
CREATE TABLE rbchk.nofk (id int);
CREATE TABLE rbchk.log (x int);
CREATE SEQUENCE rbchk.s;
INSERT INTO rbchk.parent VALUES (1, 'a'), (2, 'b');
INSERT INTO rbchk.child VALUES (1, 1, 'x@example.com', now()), (2, 2, 'y@example.com', now());
-- a function that writes, run with the caller's rights; one with its owner's (a superuser)
CREATE FUNCTION rbchk.write() RETURNS boolean LANGUAGE plpgsql
	AS $$BEGIN INSERT INTO rbchk.log VALUES (1); RETURN true; END$$;
CREATE FUNCTION rbchk.write_definer() RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = pg_catalog AS $$BEGIN INSERT INTO rbchk.log VALUES (2); RETURN true; END$$;

--
-- add_check: bad input, each refused with its own SQLSTATE
--
SELECT pg_temp.err($$SELECT rollback.add_check(NULL, 'SELECT true')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('', 'SELECT true')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', NULL)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', '')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', ' ;; ')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', applies_to => NULL)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', applies_to => '')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', severity => NULL)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', severity => 'fatal')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', severity => 'ERROR')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', timeout => NULL)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', timeout => '0')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', timeout => '-1 second')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', timeout => '2 months')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', settle_count => NULL)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', settle_count => 0)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', settle_interval => NULL)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', settle_interval => '-1 second')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', failure_limit => NULL)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', failure_limit => -1)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', failure_limit => 1)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', settle_count => 3, failure_limit => 3)$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true', dry_run => NULL)$$);
-- not one query that reads
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'DELETE FROM rbchk.log')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'CREATE TABLE rbchk.t2 (x int)')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true; SELECT false')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT true; DELETE FROM rbchk.log')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', '-- nothing but a comment')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELEC true')$$);
-- text that would only parse once wrapped in a subquery
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT 1) x, (SELECT 2')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT 1 INTO rbchk.t2')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT * FROM rbchk.log FOR UPDATE')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'WITH d AS (DELETE FROM rbchk.log RETURNING *) SELECT * FROM d')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT * FROM rbchk.nope')$$);
SELECT pg_temp.err($$SELECT rollback.add_check('c', 'SELECT nope FROM rbchk.log')$$);
-- none of that registered anything
SELECT count(*) AS checks FROM rollback.checks;

--
-- add_check: what is stored (names and roles, not OIDs); trailing blanks
-- and semicolons are dropped; a duplicate name is refused
--
SELECT rollback.add_check('plain', 'SELECT true ;; ', applies_to => 'rb_regress_none') > 0 AS added;
SELECT rollback.add_check('all_options', $$SELECT count(*) = 2 FROM rbchk.parent  -- two rows;$$,
	applies_to => 'V4*', severity => 'warning', timeout => '2 seconds', settle_count => 4,
	settle_interval => '250 ms', failure_limit => 2, dry_run => true) > 0 AS added;
SELECT rollback.add_check('values', 'VALUES (true)', applies_to => 'rb_regress_none', severity => 'info') > 0 AS added;
SELECT pg_temp.err($$SELECT rollback.add_check('plain', 'SELECT false')$$);
SELECT name, sql, applies_to, severity, timeout, settle_count, settle_interval, failure_limit,
	   dry_run, kind, relid::regclass, owner::regrole, created_at IS NOT NULL AS created
  FROM rollback.checks ORDER BY id;
-- the pattern language of applies_to: * any text, ? one character, the rest literal
SELECT l, p, rollback._glob_match(l, p) AS matches
  FROM (VALUES ('V4_add', 'V4*'), ('V40', 'V4?'), ('V4', 'V4?'), ('V4x', 'V4_'), ('50%', '50%'),
			   ('500', '50%'), ('anything', '*')) v(l, p);

-- drop_check
SELECT pg_temp.err($$SELECT rollback.drop_check(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.drop_check('nope')$$);
SELECT rollback.drop_check('plain');
SELECT rollback.drop_check('all_options');
SELECT rollback.drop_check('values');
SELECT count(*) AS checks FROM rollback.checks;

--
-- built-in checks: errors, then the SQL each registers (table OIDs masked)
--
SELECT pg_temp.err($$SELECT rollback.check_row_count(NULL, 10)$$);
SELECT pg_temp.err($$SELECT rollback.check_row_count('rbchk.child', NULL)$$);
SELECT pg_temp.err($$SELECT rollback.check_row_count('rbchk.child', -1)$$);
SELECT pg_temp.err($$SELECT rollback.check_row_count('rbchk.child', 100.5)$$);
SELECT pg_temp.err($$SELECT rollback.check_row_count('rbchk.nope', 10)$$);
SELECT pg_temp.err($$SELECT rollback.check_row_count('rbchk.child', 10, severity => 'bad')$$);
SELECT pg_temp.err($$SELECT rollback.check_row_count('rbchk.child', 10, applies_to => NULL)$$);
SELECT pg_temp.err($$SELECT rollback.check_row_count('rbchk.child', 10, name => '')$$);
SELECT pg_temp.err($$SELECT rollback.check_no_new_nulls(NULL, 'email')$$);
SELECT pg_temp.err($$SELECT rollback.check_no_new_nulls('rbchk.child', NULL)$$);
SELECT pg_temp.err($$SELECT rollback.check_no_new_nulls('rbchk.child', 'nope')$$);
SELECT pg_temp.err($$SELECT rollback.check_unique(NULL, '{email}')$$);
SELECT pg_temp.err($$SELECT rollback.check_unique('rbchk.child', NULL)$$);
SELECT pg_temp.err($$SELECT rollback.check_unique('rbchk.child', '{}')$$);
SELECT pg_temp.err($$SELECT rollback.check_unique('rbchk.child', '{email,NULL}')$$);
SELECT pg_temp.err($$SELECT rollback.check_unique('rbchk.child', '{email,nope}')$$);
SELECT pg_temp.err($$SELECT rollback.check_freshness(NULL, 'seen', '1 hour')$$);
SELECT pg_temp.err($$SELECT rollback.check_freshness('rbchk.child', NULL, '1 hour')$$);
SELECT pg_temp.err($$SELECT rollback.check_freshness('rbchk.child', 'seen', NULL)$$);
SELECT pg_temp.err($$SELECT rollback.check_freshness('rbchk.child', 'nope', '1 hour')$$);
-- a column that is not a timestamp: the SQL does not validate
SELECT pg_temp.err($$SELECT rollback.check_freshness('rbchk.child', 'email', '1 hour')$$);
SELECT pg_temp.err($$SELECT rollback.check_fk(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.check_fk('rbchk.nofk')$$);
SELECT count(*) AS checks FROM rollback.checks;

SELECT rollback.check_row_count('rbchk.child', 10, applies_to => 'rb_regress_builtin') > 0 AS added;
SELECT rollback.check_no_new_nulls('rbchk.child', 'email', applies_to => 'rb_regress_builtin') > 0 AS added;
SELECT rollback.check_unique('rbchk.child', '{email}', applies_to => 'rb_regress_builtin') > 0 AS added;
SELECT rollback.check_unique('rbchk.child', '{parent_id,email}', applies_to => 'rb_regress_builtin',
	severity => 'warning') > 0 AS added;
SELECT rollback.check_freshness('rbchk.child', 'seen', '1 hour', applies_to => 'rb_regress_builtin') > 0 AS added;
SELECT rollback.check_fk('rbchk.child', applies_to => 'rb_regress_builtin') > 0 AS added;
SELECT rollback.check_fk('rbchk.parent', applies_to => 'rb_regress_builtin', name => 'parent_fks') > 0 AS added;
-- the default name is taken
SELECT pg_temp.err($$SELECT rollback.check_fk('rbchk.child')$$);
SELECT name, kind, relid::regclass, owner::regrole, applies_to, severity, timeout, settle_count,
	   failure_limit, dry_run
  FROM rollback.checks ORDER BY id;
\x on
SELECT name, regexp_replace(sql, '''[0-9]+''::pg_catalog.regclass', '''<oid>''::pg_catalog.regclass', 'g') AS sql
  FROM rollback.checks ORDER BY id;
\x off

-- run through the worker with no migration, so with no point: the
-- comparisons with a point pass, the others look at the table as it is
SELECT * FROM rollback.run_checks(tag => 'rb_regress_builtin');
UPDATE rbchk.child SET seen = now() - interval '2 hours';
UPDATE rbchk.child SET email = 'x@example.com' WHERE id = 2;
SET session_replication_role = replica;  -- an orphan, past the foreign key
INSERT INTO rbchk.child VALUES (3, 99, NULL, NULL);
RESET session_replication_role;
SELECT pg_temp.errd($$SELECT * FROM rollback.run_checks(tag => 'rb_regress_builtin')$$);
SELECT * FROM last_runs;
-- (the freshness check's row without its timestamp)
SELECT check_name, CASE WHEN check_name LIKE 'freshness:%'
	   THEN jsonb_build_array((failing_rows -> 0) - 'newest') ELSE failing_rows END AS failing_rows
  FROM rollback.check_runs
 WHERE batch = (SELECT max(batch) FROM rollback.check_runs) AND failing_rows IS NOT NULL ORDER BY id;
DELETE FROM rbchk.child WHERE id = 3;
UPDATE rbchk.child SET email = 'y@example.com' WHERE id = 2;
UPDATE rbchk.child SET seen = now();
SELECT * FROM rollback.run_checks(tag => 'rb_regress_builtin');

--
-- run_checks through the worker: one of each outcome; none of these raises
--
SELECT rollback.add_check('passes', 'SELECT count(*) = 2 FROM rbchk.parent', applies_to => 'rb_regress_tag') > 0 AS added;
SELECT rollback.add_check('rows_fail', 'SELECT g AS n FROM pg_catalog.generate_series(1, 150) g',
	applies_to => 'rb_regress_tag', severity => 'warning') > 0 AS added;
SELECT rollback.add_check('two_rows', 'SELECT p.id, p.name FROM rbchk.parent p ORDER BY p.id',
	applies_to => 'rb_regress_tag', severity => 'warning') > 0 AS added;
SELECT rollback.add_check('false_warning', 'SELECT false', applies_to => 'rb_regress_tag', severity => 'warning') > 0 AS added;
SELECT rollback.add_check('null_info', 'SELECT NULL::boolean', applies_to => 'rb_regress_tag', severity => 'info') > 0 AS added;
SELECT rollback.add_check('dry_error', 'SELECT false', applies_to => 'rb_regress_tag', dry_run => true) > 0 AS added;
SELECT rollback.add_check('errors', 'SELECT 1 / (SELECT count(*) FROM rbchk.nofk) > 0', applies_to => 'rb_regress_tag') > 0 AS added;
SELECT rollback.add_check('slow', 'SELECT pg_catalog.pg_sleep(5) IS NOT NULL', applies_to => 'rb_regress_tag',
	timeout => '100 ms') > 0 AS added;
-- a check can never write, nor gain rights
SELECT rollback.add_check('nextval', $$SELECT pg_catalog.nextval('rbchk.s') > 0$$, applies_to => 'rb_regress_tag') > 0 AS added;
SELECT rollback.add_check('writes', 'SELECT rbchk.write()', applies_to => 'rb_regress_tag') > 0 AS added;
SELECT rollback.add_check('writes_definer', 'SELECT rbchk.write_definer()', applies_to => 'rb_regress_tag') > 0 AS added;
SELECT rollback.add_check('read_write', $$SELECT pg_catalog.set_config('transaction_read_only', 'off', true) IS NOT NULL$$,
	applies_to => 'rb_regress_tag') > 0 AS added;
SELECT rollback.add_check('set_role', $$SELECT pg_catalog.set_config('role', 'postgres', true) IS NOT NULL$$,
	applies_to => 'rb_regress_tag') > 0 AS added;
-- the settings a check runs with
SELECT rollback.add_check('settings', $$SELECT pg_catalog.current_setting('transaction_read_only') = 'on'
	AND pg_catalog.current_setting('search_path') = 'pg_catalog, pg_temp'
	AND pg_catalog.current_setting('statement_timeout') = '0'
	AND rollback.check_point() IS NULL$$, applies_to => 'rb_regress_tag') > 0 AS added;
SELECT * FROM rollback.run_checks(tag => 'rb_regress_tag');
SELECT * FROM last_runs;
SELECT (SELECT count(*) FROM rbchk.log) AS rows_written,
	   (SELECT is_called FROM rbchk.s) AS sequence_used;
SELECT tag, migration_id, count(*) AS results, bool_and(started_at <= finished_at) AS timed
  FROM rollback.check_runs WHERE batch = (SELECT max(batch) FROM rollback.check_runs) GROUP BY 1, 2;
SELECT check_name, failing_rows FROM rollback.check_runs
 WHERE batch = (SELECT max(batch) FROM rollback.check_runs) AND check_name = 'two_rows';
SELECT failing_rows -> 0 AS first, failing_rows -> 99 AS last FROM rollback.check_runs
 WHERE batch = (SELECT max(batch) FROM rollback.check_runs) AND check_name = 'rows_fail';

-- an error-severity check that fails raises 23514, naming it; the results are kept
SELECT rollback.add_check('fails', 'SELECT p.id FROM rbchk.parent p WHERE p.id = 1',
	applies_to => 'rb_regress_raise') > 0 AS added;
SELECT rollback.add_check('passes_too', 'SELECT true', applies_to => 'rb_regress_raise') > 0 AS added;
SELECT pg_temp.errd($$SELECT * FROM rollback.run_checks(tag => 'rb_regress_raise')$$);
SELECT * FROM last_runs;
SELECT rollback.add_check('fails_too', 'SELECT false', applies_to => 'rb_regress_raise') > 0 AS added;
-- as pg_cron calls it
SELECT pg_temp.errd($$SELECT rollback.run_checks(tag => 'rb_regress_raise')$$);
SELECT * FROM last_runs;

-- settle window: three runs 10 ms apart, failure_limit 1: a check that always
-- fails is decided after two runs; one that passes, or cannot decide, runs
-- three times
SELECT rollback.add_check('settle_fails', 'SELECT false', applies_to => 'rb_regress_settle',
	settle_count => 3, settle_interval => '10 ms', failure_limit => 1) > 0 AS added;
SELECT rollback.add_check('settle_passes', 'SELECT true', applies_to => 'rb_regress_settle',
	settle_count => 3, settle_interval => '10 ms', failure_limit => 1) > 0 AS added;
SELECT rollback.add_check('settle_undecided', 'SELECT 1 / (SELECT count(*) FROM rbchk.nofk) = 1', applies_to => 'rb_regress_settle',
	settle_count => 3, settle_interval => '10 ms', failure_limit => 1) > 0 AS added;
SELECT pg_temp.errd($$SELECT * FROM rollback.run_checks(tag => 'rb_regress_settle')$$);
SELECT * FROM last_runs;

-- run_checks: bad calls
SELECT pg_temp.err($$SELECT * FROM rollback.run_checks(tag => '')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.run_checks(migration => '')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.run_checks(migration => 'nope')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.run_checks(migration => 'nope', tag => 'rb_regress_tag')$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.err($$SELECT * FROM rollback.run_checks(tag => 'rb_regress_tag')$$);
ROLLBACK;
-- nothing applies: a notice and no row
SET client_min_messages = notice;
SELECT * FROM rollback.run_checks(tag => 'rb_regress_nothing');
SELECT * FROM rollback.run_checks();
SET client_min_messages = warning;

--
-- checks run as the role that created them, with its rights of the moment
--
CREATE ROLE rb_chk_reader IN ROLE rollback_admin;
CREATE ROLE rb_chk_plain;
GRANT USAGE ON SCHEMA rbchk TO rb_chk_reader, rb_chk_plain;
GRANT SELECT ON rbchk.parent TO rb_chk_reader;
GRANT INSERT ON rbchk.log TO rb_chk_reader;
SET ROLE rb_chk_reader;
-- it cannot add a check on what it cannot read
SELECT pg_temp.err($$SELECT rollback.add_check('reader_child', 'SELECT count(*) > 0 FROM rbchk.child')$$);
SELECT pg_temp.err($$SELECT rollback.check_fk('rbchk.child', applies_to => 'rb_regress_role')$$);
SELECT rollback.add_check('reader_who', 'SELECT current_user AS who, p.name FROM rbchk.parent p WHERE p.id = 1',
	applies_to => 'rb_regress_role', severity => 'warning') > 0 AS added;
SELECT rollback.add_check('reader_writes', 'SELECT rbchk.write()', applies_to => 'rb_regress_role',
	severity => 'warning') > 0 AS added;
SELECT rollback.add_check('reader_count', 'SELECT count(*) = 2 FROM rbchk.parent', applies_to => 'rb_regress_role') > 0 AS added;
SELECT * FROM rollback.run_checks(tag => 'rb_regress_role');
RESET ROLE;
SELECT check_name, failing_rows FROM rollback.check_runs
 WHERE batch = (SELECT max(batch) FROM rollback.check_runs) AND check_name = 'reader_who';
SELECT name, owner::regrole FROM rollback.checks WHERE applies_to = 'rb_regress_role' ORDER BY id;
-- its right to read the table taken away: its checks cannot decide
REVOKE SELECT ON rbchk.parent FROM rb_chk_reader;
SELECT * FROM rollback.run_checks(tag => 'rb_regress_role');
-- a role with no rights: every entry point refuses
SET ROLE rb_chk_plain;
SELECT pg_temp.err($$SELECT rollback.add_check('plain', 'SELECT true')$$);
SELECT pg_temp.err($$SELECT rollback._add_check('plain', 'SELECT true', '*', 'error', 'sql', NULL)$$);
SELECT pg_temp.err($$SELECT rollback.check_fk('rbchk.child')$$);
SELECT pg_temp.err($$SELECT rollback.drop_check('reader_who')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.run_checks(tag => 'rb_regress_role')$$);
SELECT pg_temp.err($$SELECT rollback.pause('no')$$);
SELECT pg_temp.err($$SELECT rollback.resume()$$);
SELECT pg_temp.err($$SELECT rollback.hold('nope')$$);
SELECT pg_temp.err($$SELECT rollback.release('nope')$$);
SELECT pg_temp.err($$SELECT * FROM rollback.status()$$);
SELECT pg_temp.err($$SELECT rollback.metrics()$$);
SELECT pg_temp.err($$SELECT * FROM rollback.verify_audit_log()$$);
SELECT pg_temp.err($$SELECT count(*) FROM rollback.checks$$);
SELECT pg_temp.err($$SELECT count(*) FROM rollback.check_runs$$);
SELECT pg_temp.err($$SELECT count(*) FROM rollback.audit_log$$);
SELECT pg_temp.err($$SELECT count(*) FROM rollback.worker_state$$);
RESET ROLE;
-- the role that created the checks is gone: they cannot decide
DROP OWNED BY rb_chk_reader;
DROP ROLE rb_chk_reader;
SELECT * FROM rollback.run_checks(tag => 'rb_regress_role');

--
-- status(): tag checks whose last result failed (error or warning, not a
-- dry run) need attention
--
SELECT kind, subject, detail FROM rollback.status() ORDER BY kind, subject;

-- dropping a check keeps its results, unlinked
SELECT count(*) AS results FROM rollback.check_runs WHERE check_name = 'fails';
SELECT rollback.drop_check('fails');
SELECT count(*) AS results, count(check_id) AS linked FROM rollback.check_runs WHERE check_name = 'fails';

-- metrics: the names and types (values vary with what ran before)
SELECT regexp_replace(l, ' [0-9.e+-]+$', '') AS metric
  FROM regexp_split_to_table(rollback.metrics(), E'\n') l WHERE l <> '';
SELECT l AS metric FROM regexp_split_to_table(rollback.metrics(), E'\n') l
 WHERE l ~ '^rollback_(reverts_total|circuit_open|paused|audit_entries|revert_duration_seconds_count) ';
SELECT bool_and(l ~ '^rollback_checks_total\{status="(passed|failed|inconclusive)"\} [1-9][0-9]*$') AS counted
  FROM regexp_split_to_table(rollback.metrics(), E'\n') l WHERE l ~ '^rollback_checks_total\{';

--
-- pause, resume, hold, release, and the audit log.  All in one transaction
-- rolled back at the end: the worker sees none of it and the audit log is
-- left empty for the tests after this one.
--
BEGIN;
SELECT pg_temp.err($$SELECT rollback.pause(NULL)$$);
SELECT rollback.pause('regress: maintenance window');
SELECT paused, paused_reason, paused_by, paused_at IS NOT NULL AS has_since, circuit_open FROM rollback.worker_state;
SELECT kind, subject, detail FROM rollback.status() WHERE kind = 'paused';
SELECT l AS metric FROM regexp_split_to_table(rollback.metrics(), E'\n') l WHERE l ~ '^rollback_paused ';
-- a migration (no tracked table: nothing for it to capture)
SELECT rollback.begin_migration('rbchk-1') > 0 AS begun;
CREATE TABLE rbchk.added (x int);
SELECT rollback.end_migration();
SELECT pg_temp.err($$SELECT rollback.hold(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.hold('nope')$$);
SELECT pg_temp.err($$SELECT rollback.release(NULL)$$);
SELECT pg_temp.err($$SELECT rollback.release('nope')$$);
SELECT pg_temp.err($$SELECT rollback.release('rbchk-1')$$);
SELECT rollback.hold('rbchk-1');
SELECT pg_temp.err($$SELECT rollback.hold('rbchk-1')$$);
SELECT version, status, held_at IS NOT NULL AS held, held_by FROM rollback.migration;
SELECT rollback.release('rbchk-1');
SELECT version, status, held_at IS NOT NULL AS held, held_by FROM rollback.migration;
SELECT count(*) > 0 AS reverted FROM rollback.revert_migration('rbchk-1', reason => 'regress');
SELECT pg_temp.err($$SELECT rollback.hold('revert:rbchk-1')$$);
SELECT pg_temp.err($$SELECT rollback.release('revert:rbchk-1')$$);
SELECT rollback.resume();
SELECT paused, paused_reason, paused_by, paused_at, circuit_open FROM rollback.worker_state;
SELECT a.id, a.action, a.actor, m.version, a.reason, a.detail - '{duration_ms,revert_id}'::text[] AS detail,
	   length(a.hash) AS hash_bytes, a.prev_hash = coalesce(lag(a.hash) OVER (ORDER BY a.id), '') AS chained
  FROM rollback.audit_log a LEFT JOIN rollback.migration m ON m.id = a.migration_id ORDER BY a.id;
SELECT * FROM rollback.verify_audit_log();
-- append-only, even for a superuser
SELECT pg_temp.err($$UPDATE rollback.audit_log SET reason = 'edited' WHERE id = 1$$);
SELECT pg_temp.err($$DELETE FROM rollback.audit_log WHERE id = 1$$);
SELECT pg_temp.err($$TRUNCATE rollback.audit_log$$);
-- with the trigger disabled: each kind of tampering is found
ALTER TABLE rollback.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE rollback.audit_log SET reason = 'edited' WHERE id = 2;
SELECT * FROM rollback.verify_audit_log();
UPDATE rollback.audit_log SET reason = NULL WHERE id = 2;
SELECT * FROM rollback.verify_audit_log();
-- the entry's hash recomputed too: the next entry no longer chains to it
UPDATE rollback.audit_log SET reason = 'edited' WHERE id = 2;
UPDATE rollback.audit_log a SET hash = rollback._audit_hash(a) WHERE id = 2;
SELECT * FROM rollback.verify_audit_log();
UPDATE rollback.audit_log SET reason = NULL WHERE id = 2;
UPDATE rollback.audit_log a SET hash = rollback._audit_hash(a) WHERE id = 2;
SELECT * FROM rollback.verify_audit_log();
-- a microsecond more on the last entry's time
UPDATE rollback.audit_log SET at = at + interval '1 microsecond' WHERE id = 5;
SELECT * FROM rollback.verify_audit_log();
UPDATE rollback.audit_log SET at = at - interval '1 microsecond' WHERE id = 5;
SELECT * FROM rollback.verify_audit_log();
-- an entry deleted: the gap
DELETE FROM rollback.audit_log WHERE id = 3;
SELECT * FROM rollback.verify_audit_log();
ALTER TABLE rollback.audit_log ENABLE TRIGGER audit_log_append_only;
ROLLBACK;
SELECT (SELECT count(*) FROM rollback.migration) AS migrations,
	   (SELECT count(*) FROM rollback.audit_log) AS audit_entries,
	   (SELECT paused FROM rollback.worker_state) AS paused;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'rollback.audit_log'::regclass ORDER BY tgname;
SELECT * FROM rollback.verify_audit_log();

-- clean up: no check left for the tests after this one, nothing needs attention
DO $$DECLARE n text;
BEGIN
	FOR n IN SELECT name FROM rollback.checks ORDER BY id LOOP
		PERFORM rollback.drop_check(n);
	END LOOP;
END$$;
SELECT count(*) AS checks FROM rollback.checks;
SELECT * FROM rollback.status();
DROP SCHEMA rbchk CASCADE;
DROP ROLE rb_chk_plain;
