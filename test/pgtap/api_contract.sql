-- API contract: catalog shape, function signatures and properties,
-- privileges, idempotence.  Runs in a database where pgtap and rollback are
-- installed; cleans up after itself.  Not one transaction: a point sees only
-- what was committed before it, so the rows it is tested on must be.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
-- the engine's contract: DDL here is not a migration
SET rollback.auto_track_migrations = off;
SELECT plan(178);

-- schemas, tables, views
SELECT has_schema('rollback');
SELECT has_schema('rollback_store');
SELECT has_table('rollback', 'tracked_table', 'catalog: tracked_table');
SELECT has_table('rollback', 'tracked_schema', 'catalog: tracked_schema');
SELECT has_table('rollback', 'point', 'catalog: point');
SELECT has_table('rollback', 'point_table', 'catalog: point_table');
SELECT has_view('rollback', 'points', 'view: points');
SELECT has_view('rollback', 'tracked', 'view: tracked');
SELECT columns_are('rollback', 'points',
	ARRAY['id', 'name', 'created_at', 'created_by', 'comment', 'tables', 'rows_captured', 'store_bytes', 'incomplete']);
SELECT col_type_is('rollback', 'points', 'tables', 'regclass[]', 'points.tables is regclass[]');
SELECT col_is_unique('rollback', 'point', ARRAY['name'], 'point names are unique');
SELECT has_role('rollback_admin');
SELECT has_role('rollback_reader');

-- the public functions, their signatures and results
SELECT has_function('rollback', 'track', ARRAY['regclass']);
SELECT has_function('rollback', 'untrack', ARRAY['regclass', 'boolean']);
SELECT has_function('rollback', 'track_schema', ARRAY['name']);
SELECT has_function('rollback', 'create_point', ARRAY['text', 'regclass[]', 'text']);
SELECT has_function('rollback', 'drop_point', ARRAY['text']);
SELECT has_function('rollback', 'as_of', ARRAY['anyelement', 'text']);
SELECT has_function('rollback', 'diff', ARRAY['regclass', 'text']);
SELECT has_function('rollback', 'restore', ARRAY['text', 'regclass[]', 'boolean']);
SELECT has_function('rollback', 'purge', ARRAY['interval']);
SELECT function_returns('rollback', 'track', ARRAY['regclass'], 'void');
SELECT function_returns('rollback', 'track_schema', ARRAY['name'], 'integer');
SELECT function_returns('rollback', 'create_point', ARRAY['text', 'regclass[]', 'text'], 'bigint');
SELECT function_returns('rollback', 'as_of', ARRAY['anyelement', 'text'], 'setof anyelement');
SELECT function_returns('rollback', 'restore', ARRAY['text', 'regclass[]', 'boolean'], 'setof record');
SELECT function_returns('rollback', 'purge', ARRAY['interval'], 'bigint');
SELECT volatility_is('rollback', 'create_point', ARRAY['text', 'regclass[]', 'text'], 'volatile');
SELECT volatility_is('rollback', 'restore', ARRAY['text', 'regclass[]', 'boolean'], 'volatile');
SELECT volatility_is('rollback', 'as_of', ARRAY['anyelement', 'text'], 'stable');
SELECT volatility_is('rollback', 'diff', ARRAY['regclass', 'text'], 'stable');
SELECT isnt_definer('rollback', 'restore', ARRAY['text', 'regclass[]', 'boolean'],
					'restore runs as the caller (it checks rights itself)');
SELECT isnt_definer('rollback', 'as_of', ARRAY['anyelement', 'text'],
					'as_of runs as the caller');
SELECT is(
	(SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	  WHERE n.nspname = 'rollback' AND obj_description(p.oid, 'pg_proc') IS NULL),
	0, 'every function of the extension has a comment');
-- SECURITY DEFINER: the history-table trigger, which labels migrations for
-- the tool's role, and the three read-only reports that rollback_reader may
-- call (they read tables it cannot); each has a pinned search_path
SELECT is(
	(SELECT array_agg(p.proname::text || ':' || coalesce(array_to_string(p.proconfig, ','), '')
					  ORDER BY p.proname)
	   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	  WHERE n.nspname = 'rollback' AND p.prosecdef),
	ARRAY['_on_history_row:search_path=pg_catalog, pg_temp', 'metrics:search_path=pg_catalog, pg_temp',
		  'status:search_path=pg_catalog, pg_temp', 'verify_audit_log:search_path=pg_catalog, pg_temp'],
	'only the history trigger and the reports are SECURITY DEFINER, with a pinned search_path');
SELECT is(
	(SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	  WHERE n.nspname = 'rollback' AND c.relkind IN ('r', 'p', 'v')
		AND obj_description(c.oid, 'pg_class') IS NULL),
	0, 'every table and view of the extension has a comment');

-- privileges: the catalog and the stores are closed to PUBLIC
SELECT schema_privs_are('rollback_store', 'public', ARRAY[]::text[]);
SELECT schema_privs_are('rollback', 'public', ARRAY['USAGE']);
SELECT table_privs_are('rollback', 'point', 'public', ARRAY[]::text[]);
SELECT table_privs_are('rollback', 'tracked_table', 'public', ARRAY[]::text[]);
SELECT table_privs_are('rollback', 'points', 'rollback_reader', ARRAY['SELECT']);
SELECT table_privs_are('rollback', 'points', 'public', ARRAY[]::text[]);
SELECT function_privs_are('rollback', '_point_rows', ARRAY['bigint'], 'public', ARRAY[]::text[]);

-- idempotence and shape of tracking
CREATE TABLE tap_t (id int PRIMARY KEY, v text);
INSERT INTO tap_t SELECT g, 'v' || g FROM generate_series(1, 100) g;
SELECT lives_ok($$SELECT rollback.track('tap_t')$$, 'track');
SELECT lives_ok($$SELECT rollback.track('tap_t')$$, 'track again is a no-op');
SELECT is((SELECT count(*)::int FROM rollback.tracked WHERE tbl = 'tap_t'::regclass), 1,
		  'tracked once');
SELECT is((SELECT array_agg(tgenabled::text ORDER BY tgname) FROM pg_trigger
			WHERE tgrelid = 'tap_t'::regclass),
		  ARRAY['A', 'A'], 'both capture triggers fire ALWAYS');
SELECT is((SELECT deptype::text FROM pg_depend d JOIN rollback.tracked_table t ON d.objid = t.store::oid
			WHERE t.relid = 'tap_t'::regclass AND d.refclassid = 'pg_extension'::regclass),
		  'e', 'the store belongs to the extension');
SELECT is((SELECT relnamespace::regnamespace::text FROM pg_class c JOIN rollback.tracked_table t
			ON c.oid = t.store WHERE t.relid = 'tap_t'::regclass),
		  'rollback_store', 'the store is in rollback_store');
CREATE SCHEMA tap_s;
CREATE TABLE tap_s.a (x int);
SELECT is(rollback.track_schema('tap_s'), 1, 'track_schema counts what it tracked');
SELECT is(rollback.track_schema('tap_s'), 0, 'track_schema again tracks nothing new');

-- a point copies no rows, whatever the table size
SELECT lives_ok($$SELECT rollback.create_point('tap_p', ARRAY['tap_t'::regclass])$$, 'create_point');
SELECT is((SELECT rows_captured FROM rollback.points WHERE name = 'tap_p'), 0::bigint,
		  'creating a point copies no rows');
SELECT throws_ok($$SELECT rollback.create_point('tap_p', ARRAY['tap_t'::regclass])$$,
				 '42710', NULL, 'duplicate point name');
UPDATE tap_t SET v = 'x' WHERE id <= 10;
UPDATE tap_t SET v = 'y' WHERE id <= 10;
SELECT is((SELECT rows_captured FROM rollback.points WHERE name = 'tap_p'), 10::bigint,
		  'ten rows changed twice: ten images');
SELECT results_eq($$SELECT count(*) FROM rollback.as_of(NULL::tap_t, 'tap_p') WHERE v LIKE 'v%'$$,
				  ARRAY[100::bigint], 'as_of sees the old values');
SELECT results_eq($$SELECT rows_deleted, rows_restored FROM rollback.restore('tap_p', dry_run => true)$$,
				  $$VALUES (10::bigint, 10::bigint)$$, 'dry run counts');
SELECT is((SELECT count(*)::int FROM rollback.points), 1, 'dry run takes no point');
SELECT is((SELECT count(*)::int FROM tap_t WHERE v = 'y'), 10, 'dry run changes nothing');

-- a role without rights
CREATE ROLE tap_nobody;
SET ROLE tap_nobody;
SELECT throws_ok($$SELECT rollback.track('tap_t')$$, '42501', NULL, 'no rights: track refused');
SELECT throws_ok($$SELECT * FROM rollback.as_of(NULL::tap_t, 'tap_p')$$, '42501', NULL,
				 'no rights: history refused');
SELECT throws_ok($$SELECT * FROM rollback.restore('tap_p')$$, '42501', NULL,
				 'no rights: restore refused');
SELECT throws_ok($$SELECT * FROM rollback.points$$, '42501', NULL, 'no rights: points view refused');
RESET ROLE;

-- restore, then the restore itself undone
SELECT results_eq($$SELECT rows_deleted, rows_restored FROM rollback.restore('tap_p')$$,
				  $$VALUES (10::bigint, 10::bigint)$$, 'restore');
SELECT is((SELECT count(*)::int FROM tap_t WHERE v LIKE 'v%'), 100, 'table back to the point');

-- checks, the worker's controls, the audit log (issue 4)
SELECT has_table('rollback', 'checks', 'catalog: checks');
SELECT has_table('rollback', 'check_runs', 'catalog: check_runs');
SELECT has_table('rollback', 'audit_log', 'catalog: audit_log');
SELECT has_table('rollback', 'worker_state', 'catalog: worker_state');
SELECT has_table('rollback', 'check_totals', 'catalog: check_totals');
SELECT columns_are('rollback', 'checks',
	ARRAY['id', 'name', 'sql', 'applies_to', 'severity', 'timeout', 'settle_count', 'settle_interval',
		  'failure_limit', 'dry_run', 'kind', 'relid', 'owner', 'created_at']);
SELECT columns_are('rollback', 'check_runs',
	ARRAY['id', 'batch', 'check_id', 'check_name', 'migration_id', 'tag', 'status', 'severity', 'dry_run',
		  'runs', 'failures', 'detail', 'failing_rows', 'started_at', 'finished_at']);
SELECT columns_are('rollback', 'audit_log',
	ARRAY['id', 'at', 'actor', 'action', 'migration_id', 'reason', 'detail', 'prev_hash', 'hash']);
SELECT columns_are('rollback', 'worker_state',
	ARRAY['one', 'paused', 'paused_reason', 'paused_by', 'paused_at', 'circuit_open', 'circuit_opened_at',
		  'circuit_reset_at', 'purged_at']);
SELECT col_is_unique('rollback', 'checks', ARRAY['name'], 'check names are unique');
SELECT col_is_fk('rollback', 'check_runs', 'check_id', 'a result names its check');
SELECT col_type_is('rollback', 'check_runs', 'failing_rows', 'jsonb', 'failing rows are jsonb');
SELECT has_trigger('rollback', 'audit_log', 'audit_log_chain', 'the audit log is chained by a trigger');
SELECT has_trigger('rollback', 'audit_log', 'audit_log_append_only', 'UPDATE and DELETE are refused by a trigger');
SELECT has_trigger('rollback', 'audit_log', 'audit_log_no_truncate', 'TRUNCATE is refused by a trigger');
SELECT has_column('rollback', 'migration', 'held_at', 'migration.held_at');
SELECT has_column('rollback', 'migration', 'held_by', 'migration.held_by');
SELECT has_column('rollback', 'migration', 'checked_at', 'migration.checked_at');

SELECT function_returns('rollback', 'add_check',
	ARRAY['text', 'text', 'text', 'text', 'interval', 'integer', 'interval', 'integer', 'boolean'], 'bigint');
SELECT function_returns('rollback', 'drop_check', ARRAY['text'], 'void');
SELECT function_returns('rollback', 'check_point', ARRAY[]::text[], 'text');
SELECT function_returns('rollback', 'check_row_count', ARRAY['regclass', 'numeric', 'text', 'text', 'text'], 'bigint');
SELECT function_returns('rollback', 'check_no_new_nulls', ARRAY['regclass', 'name', 'text', 'text', 'text'], 'bigint');
SELECT function_returns('rollback', 'check_unique', ARRAY['regclass', 'name[]', 'text', 'text', 'text'], 'bigint');
SELECT function_returns('rollback', 'check_freshness',
	ARRAY['regclass', 'name', 'interval', 'text', 'text', 'text'], 'bigint');
SELECT function_returns('rollback', 'check_fk', ARRAY['regclass', 'text', 'text', 'text'], 'bigint');
SELECT function_returns('rollback', 'run_checks', ARRAY['text', 'text'], 'setof record');
SELECT function_returns('rollback', 'pause', ARRAY['text'], 'void');
SELECT function_returns('rollback', 'resume', ARRAY[]::text[], 'void');
SELECT function_returns('rollback', 'hold', ARRAY['text'], 'void');
SELECT function_returns('rollback', 'release', ARRAY['text'], 'void');
SELECT function_returns('rollback', 'verify_audit_log', ARRAY[]::text[], 'record');
SELECT function_returns('rollback', 'status', ARRAY[]::text[], 'setof record');
SELECT function_returns('rollback', 'metrics', ARRAY[]::text[], 'text');
SELECT is(
	(SELECT pg_get_function_arguments('rollback.add_check(text,text,text,text,interval,integer,interval,integer,boolean)'::regprocedure)),
	'name text, sql text, applies_to text DEFAULT ''*''::text, severity text DEFAULT ''error''::text, '
	'timeout interval DEFAULT ''00:00:30''::interval, settle_count integer DEFAULT 1, '
	'settle_interval interval DEFAULT ''00:00:00''::interval, failure_limit integer DEFAULT 0, '
	'dry_run boolean DEFAULT false',
	'add_check: argument names and defaults');
SELECT is(
	(SELECT pg_get_function_arguments('rollback.run_checks(text,text)'::regprocedure)),
	'migration text DEFAULT NULL::text, tag text DEFAULT NULL::text',
	'run_checks: argument names and defaults');
SELECT is(
	(SELECT pg_get_function_result('rollback.run_checks(text,text)'::regprocedure)),
	'TABLE(check_name text, status text, detail text)', 'run_checks: result columns');
SELECT is(
	(SELECT pg_get_function_result('rollback.status()'::regprocedure)),
	'TABLE(kind text, subject text, since timestamp with time zone, detail text)', 'status: result columns');
SELECT is(
	(SELECT pg_get_function_result('rollback.verify_audit_log()'::regprocedure)),
	'record', 'verify_audit_log: one row');
SELECT is(
	(SELECT array_agg(a ORDER BY n) FROM pg_proc p, unnest(p.proargnames, p.proargmodes::text[]) WITH ORDINALITY u(a, m, n)
	  WHERE p.oid = 'rollback.verify_audit_log()'::regprocedure),
	ARRAY['intact', 'entries', 'broken_at', 'detail'], 'verify_audit_log: output columns');
SELECT volatility_is('rollback', 'add_check',
	ARRAY['text', 'text', 'text', 'text', 'interval', 'integer', 'interval', 'integer', 'boolean'], 'volatile');
SELECT volatility_is('rollback', 'run_checks', ARRAY['text', 'text'], 'volatile');
SELECT volatility_is('rollback', 'pause', ARRAY['text'], 'volatile');
SELECT volatility_is('rollback', 'check_point', ARRAY[]::text[], 'stable');
SELECT volatility_is('rollback', 'status', ARRAY[]::text[], 'stable');
SELECT volatility_is('rollback', 'metrics', ARRAY[]::text[], 'stable');
SELECT volatility_is('rollback', 'verify_audit_log', ARRAY[]::text[], 'stable');
-- not STRICT: a NULL argument is an error, never a silent NULL result
SELECT is(
	(SELECT array_agg(p.proname::text ORDER BY p.proname) FROM pg_proc p
	  WHERE p.pronamespace = 'rollback'::regnamespace AND p.proisstrict
		AND p.proname IN ('add_check', 'drop_check', 'check_row_count', 'check_no_new_nulls', 'check_unique',
						  'check_freshness', 'check_fk', 'run_checks', 'pause', 'hold', 'release')),
	NULL::text[], 'the check and control functions are not STRICT');
SELECT throws_ok($$SELECT rollback.add_check(NULL, 'SELECT true')$$, '22004', NULL, 'add_check: NULL name is an error');
SELECT throws_ok($$SELECT rollback.check_fk(NULL)$$, '22004', NULL, 'check_fk: NULL table is an error');
SELECT throws_ok($$SELECT rollback.pause(NULL)$$, '22004', NULL, 'pause: NULL reason is an error');
SELECT throws_ok($$SELECT rollback.hold(NULL)$$, '22004', NULL, 'hold: NULL migration is an error');
SELECT is_strict('rollback', '_glob_match', ARRAY['text', 'text'], '_glob_match is STRICT');

-- privileges.  The tables are closed to PUBLIC and readable by both roles,
-- written only through the functions.  The C entry points are executable by
-- PUBLIC and check rollback_admin themselves; the reports are not.
SELECT table_privs_are('rollback', 'checks', 'public', ARRAY[]::text[]);
SELECT table_privs_are('rollback', 'check_runs', 'public', ARRAY[]::text[]);
SELECT table_privs_are('rollback', 'audit_log', 'public', ARRAY[]::text[]);
SELECT table_privs_are('rollback', 'worker_state', 'public', ARRAY[]::text[]);
SELECT table_privs_are('rollback', 'check_totals', 'public', ARRAY[]::text[]);
SELECT table_privs_are('rollback', 'checks', 'rollback_reader', ARRAY['SELECT']);
SELECT table_privs_are('rollback', 'check_runs', 'rollback_reader', ARRAY['SELECT']);
SELECT table_privs_are('rollback', 'audit_log', 'rollback_reader', ARRAY['SELECT']);
SELECT table_privs_are('rollback', 'worker_state', 'rollback_reader', ARRAY['SELECT']);
SELECT table_privs_are('rollback', 'check_totals', 'rollback_reader', ARRAY['SELECT']);
SELECT table_privs_are('rollback', 'checks', 'rollback_admin', ARRAY['SELECT']);
SELECT table_privs_are('rollback', 'audit_log', 'rollback_admin', ARRAY['SELECT']);
SELECT sequence_privs_are('rollback', 'check_batch_seq', 'public', ARRAY[]::text[]);
SELECT function_privs_are('rollback', 'status', ARRAY[]::text[], 'public', ARRAY[]::text[]);
SELECT function_privs_are('rollback', 'metrics', ARRAY[]::text[], 'public', ARRAY[]::text[]);
SELECT function_privs_are('rollback', 'verify_audit_log', ARRAY[]::text[], 'public', ARRAY[]::text[]);
SELECT function_privs_are('rollback', '_start_worker', ARRAY[]::text[], 'public', ARRAY[]::text[]);
SELECT function_privs_are('rollback', 'status', ARRAY[]::text[], 'rollback_reader', ARRAY['EXECUTE']);
SELECT function_privs_are('rollback', 'metrics', ARRAY[]::text[], 'rollback_reader', ARRAY['EXECUTE']);
SELECT function_privs_are('rollback', 'verify_audit_log', ARRAY[]::text[], 'rollback_reader', ARRAY['EXECUTE']);
SELECT function_privs_are('rollback', 'add_check',
	ARRAY['text', 'text', 'text', 'text', 'interval', 'integer', 'interval', 'integer', 'boolean'],
	'public', ARRAY['EXECUTE']);
SELECT function_privs_are('rollback', 'pause', ARRAY['text'], 'public', ARRAY['EXECUTE']);

-- a role without rights: refused by the functions' own check (42501)
SET ROLE tap_nobody;
SELECT throws_ok($$SELECT rollback.add_check('tap_c', 'SELECT true')$$, '42501', NULL, 'no rights: add_check refused');
SELECT throws_ok($$SELECT rollback._add_check('tap_c', 'SELECT true', '*', 'error', 'sql', NULL)$$, '42501', NULL,
				 'no rights: _add_check refused');
SELECT throws_ok($$SELECT rollback.check_row_count('tap_t', 10)$$, '42501', NULL, 'no rights: built-in check refused');
SELECT throws_ok($$SELECT rollback.drop_check('tap_c')$$, '42501', NULL, 'no rights: drop_check refused');
SELECT throws_ok($$SELECT * FROM rollback.run_checks(tag => 'tap')$$, '42501', NULL, 'no rights: run_checks refused');
SELECT throws_ok($$SELECT rollback.pause('no')$$, '42501', NULL, 'no rights: pause refused');
SELECT throws_ok($$SELECT rollback.resume()$$, '42501', NULL, 'no rights: resume refused');
SELECT throws_ok($$SELECT rollback.hold('x')$$, '42501', NULL, 'no rights: hold refused');
SELECT throws_ok($$SELECT rollback.release('x')$$, '42501', NULL, 'no rights: release refused');
SELECT throws_ok($$SELECT * FROM rollback.status()$$, '42501', NULL, 'no rights: status refused');
SELECT throws_ok($$SELECT rollback.metrics()$$, '42501', NULL, 'no rights: metrics refused');
SELECT throws_ok($$SELECT * FROM rollback.verify_audit_log()$$, '42501', NULL, 'no rights: verify_audit_log refused');
SELECT throws_ok($$SELECT * FROM rollback.audit_log$$, '42501', NULL, 'no rights: audit_log closed');
SELECT throws_ok($$SELECT * FROM rollback.checks$$, '42501', NULL, 'no rights: checks closed');
SELECT is(rollback.check_point(), NULL, 'check_point() is NULL outside a check');
RESET ROLE;

-- rollback_reader: reads everything, changes nothing
CREATE ROLE tap_reader IN ROLE rollback_reader;
SET ROLE tap_reader;
SELECT lives_ok($$SELECT * FROM rollback.checks$$, 'reader: checks readable');
SELECT lives_ok($$SELECT * FROM rollback.check_runs$$, 'reader: check_runs readable');
SELECT lives_ok($$SELECT * FROM rollback.audit_log$$, 'reader: audit_log readable');
SELECT lives_ok($$SELECT * FROM rollback.worker_state$$, 'reader: worker_state readable');
SELECT lives_ok($$SELECT * FROM rollback.status()$$, 'reader: status()');
SELECT matches(rollback.metrics(), '# TYPE rollback_reverts_total counter', 'reader: metrics()');
SELECT is((SELECT intact FROM rollback.verify_audit_log()), true, 'reader: verify_audit_log()');
SELECT throws_ok($$INSERT INTO rollback.checks (name, sql, owner) VALUES ('x', 'SELECT true', 10)$$, '42501', NULL,
				 'reader: cannot insert a check');
SELECT throws_ok($$UPDATE rollback.checks SET dry_run = true$$, '42501', NULL, 'reader: cannot update checks');
SELECT throws_ok($$DELETE FROM rollback.check_runs$$, '42501', NULL, 'reader: cannot delete results');
SELECT throws_ok($$INSERT INTO rollback.audit_log (action, prev_hash, hash) VALUES ('x', '', '')$$, '42501', NULL,
				 'reader: cannot write the audit log');
SELECT throws_ok($$UPDATE rollback.audit_log SET reason = 'x'$$, '42501', NULL, 'reader: cannot edit the audit log');
SELECT throws_ok($$UPDATE rollback.worker_state SET paused = true$$, '42501', NULL, 'reader: cannot pause by hand');
SELECT throws_ok($$SELECT rollback.add_check('tap_c', 'SELECT true')$$, '42501', NULL, 'reader: add_check refused');
SELECT throws_ok($$SELECT rollback.pause('no')$$, '42501', NULL, 'reader: pause refused');
RESET ROLE;

-- rollback_admin: adds and drops checks, run as itself; it cannot add one on
-- a table it cannot read
CREATE ROLE tap_admin IN ROLE rollback_admin;
SET ROLE tap_admin;
SELECT throws_ok($$SELECT rollback.add_check('tap_c', 'SELECT count(*) > 0 FROM tap_t')$$, '42501', NULL,
				 'admin: no check on a table it cannot read');
SELECT lives_ok($$SELECT rollback.add_check('tap_c', 'SELECT true', applies_to => 'tap')$$, 'admin: add_check');
SELECT throws_ok($$SELECT rollback.add_check('tap_c', 'SELECT true')$$, '42710', NULL, 'admin: duplicate check name');
RESET ROLE;
SELECT is((SELECT owner::regrole::text FROM rollback.checks WHERE name = 'tap_c'), 'tap_admin',
		  'a check belongs to the role that added it');
SET ROLE tap_admin;
SELECT lives_ok($$SELECT rollback.drop_check('tap_c')$$, 'admin: drop_check');
SELECT throws_ok($$SELECT rollback.drop_check('tap_c')$$, '42704', NULL, 'admin: drop_check of an unknown check');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM rollback.checks), 0, 'no check left');

SELECT * FROM finish();

SELECT rollback.untrack('tap_t', force => true);
SELECT rollback.untrack('tap_s.a', force => true);
DROP TABLE tap_t;
DROP SCHEMA tap_s CASCADE;
DROP ROLE tap_nobody, tap_reader, tap_admin;
