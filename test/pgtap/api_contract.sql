-- API contract: catalog shape, function signatures and properties,
-- privileges, idempotence.  Runs in a database where pgtap and rollback are
-- installed; cleans up after itself.  Not one transaction: a point sees only
-- what was committed before it, so the rows it is tested on must be.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
-- the engine's contract: DDL here is not a migration
SET rollback.auto_track_migrations = off;
SELECT plan(65);

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
-- the one SECURITY DEFINER function is the history-table trigger, which
-- labels migrations for the tool's role; its search_path is pinned
SELECT is(
	(SELECT array_agg(p.proname::text || ':' || coalesce(array_to_string(p.proconfig, ','), ''))
	   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	  WHERE n.nspname = 'rollback' AND p.prosecdef),
	ARRAY['_on_history_row:search_path=pg_catalog, pg_temp'],
	'only the history trigger is SECURITY DEFINER, with a pinned search_path');

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

SELECT * FROM finish();

SELECT rollback.untrack('tap_t', force => true);
SELECT rollback.untrack('tap_s.a', force => true);
DROP TABLE tap_t;
DROP SCHEMA tap_s CASCADE;
DROP ROLE tap_nobody;
