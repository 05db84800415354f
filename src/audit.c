/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The audit log, events, and the manual overrides of the worker:
 *		pause, resume, hold, release.
 *
 * Every automatic action and every override writes an entry to
 * rollback.audit_log (append-only, hash-chained by its trigger; see the
 * install script), sends NOTIFY rollback_events with a JSON payload, and
 * writes a LOG line.  The entry and the notification belong to the
 * transaction of the action: both happen if and only if it commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_pause);
PG_FUNCTION_INFO_V1(rollback_resume);
PG_FUNCTION_INFO_V1(rollback_hold);
PG_FUNCTION_INFO_V1(rollback_release);

/*
 * rb_audit: append an entry and notify it.  actor NULL: the session user.
 * detail is the text of a JSON object (or NULL).  The NOTIFY payload is
 * the detail with the event, the migration's version, the audit entry's
 * id and hash added.  Must be called inside SPI, as the extension owner.
 */
void
rb_audit(const char *action, const char *actor, int64 migration_id, const char *reason,
		 const char *detail)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, INT8OID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(action);
	if (actor)
		values[1] = CStringGetTextDatum(actor);
	else
		nulls[1] = 'n';
	values[2] = Int64GetDatum(migration_id);
	if (migration_id == 0)
		nulls[2] = 'n';
	if (reason)
		values[3] = CStringGetTextDatum(reason);
	else
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(detail ? detail : "{}");
	rb_spi_exec("WITH e AS (INSERT INTO rollback.audit_log (action, actor, migration_id, reason, detail)"
				" VALUES ($1, coalesce($2, session_user), $3, $4, $5::jsonb) RETURNING *)"
				" SELECT pg_catalog.pg_notify('rollback_events', (e.detail || pg_catalog.jsonb_build_object("
				"  'event', e.action, 'migration', m.version, 'reason', e.reason, 'audit_id', e.id,"
				"  'audit_hash', pg_catalog.encode(e.hash, 'hex'), 'at', e.at))::text)"
				" FROM e LEFT JOIN rollback.migration m ON m.id = e.migration_id",
				5, argtypes, values, nulls, false, SPI_OK_SELECT);
}

/*
 * rb_notify_revert: the NOTIFY of a revert (whose audit entry revert.c
 * wrote): the entry's figures with the event, the migration and the check.
 */
void
rb_notify_revert(int64 migration_id)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(migration_id);
	rb_spi_exec("SELECT pg_catalog.pg_notify('rollback_events', (a.detail || pg_catalog.jsonb_build_object("
				"  'event', 'reverted', 'migration', m.version, 'reason', a.reason, 'audit_id', a.id,"
				"  'audit_hash', pg_catalog.encode(a.hash, 'hex'), 'at', a.at))::text)"
				" FROM rollback.audit_log a JOIN rollback.migration m ON m.id = a.migration_id"
				" WHERE a.migration_id = $1 AND a.action = 'revert' ORDER BY a.id DESC LIMIT 1",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
}

/* require_admin: overrides are for superusers and rollback_admin. */
static void
require_admin(const char *what)
{
	if (!rb_is_admin())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Only superusers and members of rollback_admin may do this.")));
}

/* rollback.pause(reason text): no automatic revert until resume(). */
Datum
rollback_pause(PG_FUNCTION_ARGS)
{
	char	   *reason;
	RbOwnerSave save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	require_admin("pause automatic reverts");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("reason must not be null"),
				 errhint("Say why, for the audit log and rollback.status().")));
	reason = text_to_cstring(PG_GETARG_TEXT_PP(0));
	values[0] = CStringGetTextDatum(reason);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("UPDATE rollback.worker_state SET paused = true, paused_reason = $1,"
				" paused_by = session_user, paused_at = pg_catalog.now()",
				1, argtypes, values, NULL, false, SPI_OK_UPDATE);
	rb_audit("pause", NULL, 0, reason, NULL);
	rb_spi_finish_as_owner(&save);
	ereport(LOG,
			(errmsg("rollback: automatic reverts paused by %s: %s", GetUserNameFromId(GetSessionUserId(), false),
					reason)));
	PG_RETURN_VOID();
}

/* rollback.resume(): allow automatic reverts again, close the circuit breaker. */
Datum
rollback_resume(PG_FUNCTION_ARGS)
{
	RbOwnerSave save;
	bool		was_paused;
	bool		was_open;
	bool		isnull;

	require_admin("resume automatic reverts");
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT paused, circuit_open FROM rollback.worker_state FOR UPDATE",
				0, NULL, NULL, NULL, false, SPI_OK_SELECT);
	was_paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	was_open = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	rb_spi_exec("UPDATE rollback.worker_state SET paused = false, paused_reason = NULL,"
				" paused_by = NULL, paused_at = NULL, circuit_open = false, circuit_opened_at = NULL,"
				" circuit_reset_at = CASE WHEN circuit_open THEN pg_catalog.now() ELSE circuit_reset_at END",
				0, NULL, NULL, NULL, false, SPI_OK_UPDATE);
	rb_audit("resume", NULL, 0, NULL,
			 psprintf("{\"was_paused\": %s, \"circuit_was_open\": %s}",
					  was_paused ? "true" : "false", was_open ? "true" : "false"));
	rb_spi_finish_as_owner(&save);
	ereport(LOG,
			(errmsg("rollback: automatic reverts resumed by %s%s",
					GetUserNameFromId(GetSessionUserId(), false),
					was_open ? "; circuit breaker closed" : "")));
	PG_RETURN_VOID();
}

/*
 * set_hold: hold or release a migration (named by version or id).  Only a
 * migration, not a revert; holding twice is an error, so that the audit
 * log tells who held it.
 */
static void
set_hold(FunctionCallInfo fcinfo, bool hold)
{
	char	   *name;
	int64		id;
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, BOOLOID};
	Datum		values[2];
	char	   *kind;
	bool		held;
	bool		isnull;

	require_admin(hold ? "hold a migration" : "release a migration");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	id = rb_find_migration(name);
	values[0] = Int64GetDatum(id);
	values[1] = BoolGetDatum(hold);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT kind, held_at IS NOT NULL FROM rollback.migration WHERE id = $1 FOR UPDATE",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	held = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (strcmp(kind, "migration") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is a revert, not a migration", name),
				 errdetail("A revert is never reverted automatically.")));
	if (hold && held)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is already held", name)));
	if (!hold && !held)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration \"%s\" is not held", name)));
	rb_spi_exec("UPDATE rollback.migration SET held_at = CASE WHEN $2 THEN pg_catalog.now() END,"
				" held_by = CASE WHEN $2 THEN session_user END WHERE id = $1",
				2, argtypes, values, NULL, false, SPI_OK_UPDATE);
	rb_audit(hold ? "hold" : "release", NULL, id, NULL, NULL);
	rb_spi_finish_as_owner(&save);
	ereport(LOG,
			(errmsg("rollback: migration %s %s by %s", name, hold ? "held" : "released",
					GetUserNameFromId(GetSessionUserId(), false))));
}

/* rollback.hold(migration text): never revert it automatically. */
Datum
rollback_hold(PG_FUNCTION_ARGS)
{
	set_hold(fcinfo, true);
	PG_RETURN_VOID();
}

/* rollback.release(migration text): undo hold(). */
Datum
rollback_release(PG_FUNCTION_ARGS)
{
	set_hold(fcinfo, false);
	PG_RETURN_VOID();
}
