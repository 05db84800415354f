/*-------------------------------------------------------------------------
 *
 * autorevert.c
 *		What the worker does each pass: check the migrations just applied,
 *		answer run_checks() requests, revert a migration whose check
 *		failed, and purge old points.
 *
 * Each step is a transaction of its own, started and ended here (the
 * worker has no transaction between steps):
 *
 *	1. the migrations to check: kind 'migration', status 'applied', not
 *	   checked yet, applied within rollback.revert_window, and labelled (a
 *	   tool that writes its history row after the migration's commit gets
 *	   rollback.history_wait to do so);
 *	2. each check runs in its own read-only transaction (check.c);
 *	3. the results are recorded and the migration is marked checked
 *	   ('verified' when every error-severity check passed), unless an
 *	   error-severity check failed: then 4 marks it checked;
 *	4. on a failure: the decision (auto_revert, pause, hold, circuit
 *	   breaker, irreversible) is made and written with an audit entry
 *	   "revert_started" in one transaction; the revert runs in the next;
 *	   if it fails, a third marks the migration 'revert_failed'.
 *
 * A crash between 4's transactions leaves the migration 'failed' with
 * "revert_started" as its last audit entry: the next pass (after the
 * restart) starts the revert again, once.  A revert that was started twice
 * and never finished is not tried a third time: 'revert_failed'.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "rollback.h"

/* settings */
bool		rollback_auto_revert = true;
int			rollback_max_auto_reverts = 3;
int			rollback_circuit_window = 3600;
int			rollback_revert_window = 3600;
int			rollback_history_wait = 3000;
int			rollback_revert_lock_timeout = 5000;

/* A migration the worker looks at. */
typedef struct Target
{
	int64		id;
	char	   *version;
	char	   *point;			/* its point's name, or NULL */
} Target;

/*
 * event_detail: the JSON object of an audit entry about a check: the
 * check's name, the trigger, and more members (JSON text, or NULL).
 */
static char *
event_detail(const char *check, const char *trigger, const char *more)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"check\": ");
	escape_json(&buf, check);
	appendStringInfoString(&buf, ", \"trigger\": ");
	escape_json(&buf, trigger);
	if (more)
		appendStringInfo(&buf, ", %s", more);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* how long the worker's own bookkeeping waits for a lock (see begin_xact) */
#define RB_BOOKKEEPING_LOCK_TIMEOUT "500ms"

/*
 * begin_xact: start a transaction, lock the extension (see
 * rb_lock_extension) and connect to SPI as the extension owner; with
 * bounded, lock waits end after RB_BOOKKEEPING_LOCK_TIMEOUT (an error: the
 * step is done again by a later pass).  The worker's bookkeeping is
 * bounded: queued behind a session's lock (a revert holds its migration's
 * row), the worker would queue every later session behind itself.  Below
 * deadlock_timeout's default, so that the worker gives way first.  The
 * revert has a bound of its own (rollback.revert_lock_timeout).
 */
static void
begin_xact(const char *what, RbOwnerSave *save, bool bounded)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (bounded)
		(void) set_config_option("lock_timeout", RB_BOOKKEEPING_LOCK_TIMEOUT, PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	pgstat_report_activity(STATE_RUNNING, what);
	rb_lock_extension();
	PushActiveSnapshot(GetTransactionSnapshot());
	rb_spi_connect_as_owner(save);
}

/* begin: a transaction of the worker's bookkeeping (see begin_xact). */
static void
begin(const char *what, RbOwnerSave *save)
{
	begin_xact(what, save, true);
}

/* commit: the other end of begin. */
static void
commit(RbOwnerSave *save)
{
	rb_spi_finish_as_owner(save);
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * abort_error: after an error caught in a step: copy the message into cxt,
 * log it, and roll the transaction back.
 */
static char *
abort_error(MemoryContext cxt, int *code)
{
	ErrorData  *edata;
	char	   *msg;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	if (code)
		*code = edata->sqlerrcode;
	FlushErrorState();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
	msg = pstrdup(edata->message);
	FreeErrorData(edata);
	return msg;
}

/*
 * load_checks: the checks that apply, read in the current SPI connection:
 * by tag (applies_to equal to it) or by migration label (applies_to, a
 * pattern with * and ?, matches it).
 */
static List *
load_checks(const char *label, const char *tag, MemoryContext cxt)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	List	   *result = NIL;
	uint64		i;

	values[0] = CStringGetTextDatum(tag ? tag : label);
	rb_spi_exec(tag ?
				"SELECT id, name, sql, severity, extract(epoch FROM timeout) * 1000, settle_count,"
				" extract(epoch FROM settle_interval) * 1000, failure_limit, dry_run, owner"
				" FROM rollback.checks WHERE applies_to = $1 ORDER BY id" :
				"SELECT id, name, sql, severity, extract(epoch FROM timeout) * 1000, settle_count,"
				" extract(epoch FROM settle_interval) * 1000, failure_limit, dry_run, owner"
				" FROM rollback.checks WHERE rollback._glob_match($1, applies_to) ORDER BY id",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		RbCheck    *c = palloc0(sizeof(RbCheck));
		bool		isnull;

		c->id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
		c->name = SPI_getvalue(t, d, 2);
		c->sql = SPI_getvalue(t, d, 3);
		c->severity = SPI_getvalue(t, d, 4);
		c->timeout_ms = (int) Min(strtod(SPI_getvalue(t, d, 5), NULL), (double) INT_MAX);
		c->settle_count = DatumGetInt32(SPI_getbinval(t, d, 6, &isnull));
		c->settle_ms = (int) Min(strtod(SPI_getvalue(t, d, 7), NULL), (double) INT_MAX);
		c->failure_limit = DatumGetInt32(SPI_getbinval(t, d, 8, &isnull));
		c->dry_run = DatumGetBool(SPI_getbinval(t, d, 9, &isnull));
		c->owner = DatumGetObjectId(SPI_getbinval(t, d, 10, &isnull));
		result = lappend(result, c);
		MemoryContextSwitchTo(old);
	}
	return result;
}

/*
 * run_and_record: run the checks and record their results under batch;
 * with a migration (id != 0) and no error-severity check failed, also mark
 * it checked, and 'verified' when none was inconclusive.  Returns the first
 * error-severity check (not a dry run) that failed, or NULL; sets
 * *inconclusive when one was inconclusive.
 */
static char *
run_and_record(List *checks, int64 batch, int64 migration_id, const char *point,
			   const char *tag, MemoryContext cxt, bool *inconclusive)
{
	ListCell   *lc;
	RbCheckResult *results = palloc0(sizeof(RbCheckResult) * Max(list_length(checks), 1));
	int			n = 0;
	char	   *failed = NULL;
	RbOwnerSave save;

	*inconclusive = false;
	foreach(lc, checks)
	{
		RbCheck    *c = lfirst(lc);
		RbCheckResult *r = &results[n++];

		rb_run_check(c, point, cxt, r);
		if (strcmp(c->severity, "error") == 0 && !c->dry_run)
		{
			if (strcmp(r->status, "failed") == 0 && failed == NULL)
				failed = c->name;
			else if (strcmp(r->status, "inconclusive") == 0)
				*inconclusive = true;
		}
		ereport(LOG,
				(errmsg("rollback: check \"%s\"%s %s%s%s", c->name,
						c->dry_run ? " (dry run)" : "", r->status,
						r->detail ? ": " : "", r->detail ? r->detail : "")));
	}

	begin("rollback: recording check results", &save);
	n = 0;
	foreach(lc, checks)
	{
		RbCheck    *c = lfirst(lc);
		RbCheckResult *r = &results[n++];
		Oid			argtypes[14] = {INT8OID, INT8OID, TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID,
		BOOLOID, INT4OID, INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
		Datum		values[14];
		char		nulls[14] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		values[0] = Int64GetDatum(batch);
		values[1] = Int64GetDatum(c->id);
		values[2] = CStringGetTextDatum(c->name);
		values[3] = Int64GetDatum(migration_id);
		if (migration_id == 0)
			nulls[3] = 'n';
		if (tag)
			values[4] = CStringGetTextDatum(tag);
		else
			nulls[4] = 'n';
		values[5] = CStringGetTextDatum(r->status);
		values[6] = CStringGetTextDatum(c->severity);
		values[7] = BoolGetDatum(c->dry_run);
		values[8] = Int32GetDatum(r->runs);
		values[9] = Int32GetDatum(r->failures);
		if (r->detail)
			values[10] = CStringGetTextDatum(r->detail);
		else
			nulls[10] = 'n';
		if (r->failing_rows)
			values[11] = CStringGetTextDatum(r->failing_rows);
		else
			nulls[11] = 'n';
		values[12] = TimestampTzGetDatum(r->started);
		values[13] = TimestampTzGetDatum(r->finished);
		/* the check may have been dropped meanwhile: keep the result, without the link */
		rb_spi_exec("INSERT INTO rollback.check_runs (batch, check_id, check_name, migration_id, tag,"
					" status, severity, dry_run, runs, failures, detail, failing_rows, started_at, finished_at)"
					" VALUES ($1, (SELECT id FROM rollback.checks WHERE id = $2), $3, $4, $5, $6, $7, $8,"
					" $9, $10, $11, $12::jsonb, $13, $14)",
					14, argtypes, values, nulls, false, SPI_OK_INSERT);
		rb_spi_exec("UPDATE rollback.check_totals SET n = n + 1 WHERE status = $6",
					14, argtypes, values, nulls, false, SPI_OK_UPDATE);
	}
	/*
	 * A failure leaves checked_at alone: the decision's transaction sets it
	 * with the status.  Set here, a crash before the decision would leave the
	 * migration applied and checked, never checked again nor reverted.
	 */
	if (migration_id != 0 && failed == NULL)
	{
		Oid			argtypes[2] = {INT8OID, BOOLOID};
		Datum		values[2];

		values[0] = Int64GetDatum(migration_id);
		values[1] = BoolGetDatum(!*inconclusive && checks != NIL);
		rb_spi_exec("UPDATE rollback.migration SET checked_at = pg_catalog.clock_timestamp(),"
					" status = CASE WHEN $2 AND status = 'applied' THEN 'verified' ELSE status END"
					" WHERE id = $1",
					2, argtypes, values, NULL, false, SPI_OK_UPDATE);
		if (failed == NULL && *inconclusive)
			rb_audit("checks_inconclusive", "rollback worker", migration_id,
					 "an error-severity check could not decide (an error or a timeout); nothing was done",
					 psprintf("{\"batch\": " INT64_FORMAT "}", batch));
		else if (failed == NULL && checks != NIL)
		{
			Oid			a2[2] = {INT8OID, INT8OID};
			Datum		v2[2];

			v2[0] = Int64GetDatum(migration_id);
			v2[1] = Int64GetDatum(batch);
			rb_spi_exec("SELECT pg_catalog.pg_notify('rollback_events', pg_catalog.jsonb_build_object("
						" 'event', 'verified', 'migration', version, 'batch', $2)::text)"
						" FROM rollback.migration WHERE id = $1",
						2, a2, v2, NULL, false, SPI_OK_SELECT);
		}
	}
	commit(&save);
	return failed;
}

/* new_batch: a batch number for a worker pass's results. */
static int64
new_batch(void)
{
	bool		isnull;

	rb_spi_exec("SELECT pg_catalog.nextval('rollback.check_batch_seq')", 0, NULL, NULL, NULL,
				false, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * check_one: run the checks of one migration just applied, record them,
 * and act on a failure.
 */
static void
check_one(Target *m, MemoryContext cxt)
{
	RbOwnerSave save;
	List	   *checks;
	int64		batch;
	char	   *failed;
	bool		inconclusive;

	begin("rollback: loading checks", &save);
	checks = load_checks(m->version, NULL, cxt);
	batch = new_batch();
	commit(&save);
	ereport(LOG,
			(errmsg("rollback: migration %s applied: %d check%s to run", m->version,
					list_length(checks), list_length(checks) == 1 ? "" : "s")));
	failed = run_and_record(checks, batch, m->id, m->point, NULL, cxt, &inconclusive);
	if (failed)
		rb_act_on_failure(m->id, failed, "check");
	else if (checks != NIL)
		ereport(LOG,
				(errmsg("rollback: migration %s %s", m->version,
						inconclusive ? "left applied: a check was inconclusive" : "verified")));
}

/*
 * rb_check_migrations: one pass over the migrations to check, and over the
 * automatic reverts a crash interrupted.  Returns the milliseconds until
 * an unlabelled migration's wait for its history row ends (-1: none).
 */
long
rb_check_migrations(void)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "rollback pass",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	List	   *todo = NIL;
	List	   *resume = NIL;
	ListCell   *lc;
	long		wait = -1;
	RbOwnerSave save;
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	uint64		i;

	PG_TRY();
	{
		values[0] = Int32GetDatum(rollback_revert_window);
		values[1] = Int32GetDatum(rollback_history_wait);
		begin("rollback: looking for migrations to check", &save);
		/* too old to act on: marked checked, never run */
		rb_spi_exec("UPDATE rollback.migration SET checked_at = pg_catalog.clock_timestamp()"
					" WHERE kind = 'migration' AND status = 'applied' AND checked_at IS NULL"
					" AND applied_at < pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $1)",
					2, argtypes, values, NULL, false, SPI_OK_UPDATE);
		rb_spi_exec("SELECT m.id, m.version, p.name,"
					" CASE WHEN m.tool_ref IS NULL AND rollback._labelled_later()"
					"  THEN GREATEST(0, $2 - extract(epoch FROM pg_catalog.clock_timestamp() - m.applied_at) * 1000)"
					"  ELSE 0 END"
					" FROM rollback.migration m LEFT JOIN rollback.point p ON p.id = m.point_id"
					" WHERE m.kind = 'migration' AND m.status = 'applied' AND m.checked_at IS NULL"
					" ORDER BY m.id",
					2, argtypes, values, NULL, false, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;
			double		left = strtod(SPI_getvalue(t, d, 4), NULL);
			MemoryContext o2;
			Target	   *m;
			bool		isnull;

			if (left > 0)
			{
				/* waits for its label; the migrations after it wait too */
				wait = (long) left + 10;
				break;
			}
			o2 = MemoryContextSwitchTo(cxt);
			m = palloc0(sizeof(Target));
			m->id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
			m->version = SPI_getvalue(t, d, 2);
			m->point = SPI_getvalue(t, d, 3);
			todo = lappend(todo, m);
			MemoryContextSwitchTo(o2);
		}
		/* automatic reverts started and not finished (a crash) */
		rb_spi_exec("SELECT m.id FROM rollback.migration m WHERE m.kind = 'migration'"
					" AND m.status = 'failed' AND (SELECT a.action FROM rollback.audit_log a"
					"  WHERE a.migration_id = m.id ORDER BY a.id DESC LIMIT 1) = 'revert_started'"
					" ORDER BY m.id",
					0, NULL, NULL, NULL, false, SPI_OK_SELECT);
		resume = rb_spi_int8_list(1, cxt);
		commit(&save);

		foreach(lc, resume)
			rb_act_on_failure(*(int64 *) lfirst(lc), NULL, "check");
		foreach(lc, todo)
			check_one((Target *) lfirst(lc), cxt);
	}
	PG_CATCH();
	{
		char	   *msg = abort_error(cxt, NULL);

		ereport(LOG,
				(errmsg("rollback worker: a pass failed: %s", msg)));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return wait;
}

/*
 * rb_run_requested_checks: serve a run_checks() request: find the
 * migration concerned (the one named, else the last applied within
 * rollback.revert_window), run the tag's checks or those matching that
 * migration, and record them under batch.  When an error-severity check
 * failed and the migration may still be acted on, *act_on is set to it
 * (the caller acts after answering).  Returns NULL or an error message.
 */
char *
rb_run_requested_checks(int64 batch, const char *migration, const char *tag,
						int64 *act_on, char **failed_check)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "rollback request",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	char	   *error = NULL;
	RbOwnerSave save;

	*act_on = 0;
	*failed_check = NULL;
	PG_TRY();
	{
		Target		m = {0};
		bool		actionable = false;
		List	   *checks = NIL;
		char	   *failed;
		bool		inconclusive;
		Oid			argtypes[2] = {INT8OID, INT4OID};
		Datum		values[2];

		begin("rollback: run_checks", &save);
		if (migration)
			m.id = rb_find_migration(migration);
		values[0] = Int64GetDatum(m.id);
		values[1] = Int32GetDatum(rollback_revert_window);
		/* a migration named by a person may be failed (paused, held): acting is then asked for */
		rb_spi_exec("SELECT m.id, m.version, p.name, m.kind = 'migration'"
					" AND (m.status IN ('applied', 'verified') OR ($1 <> 0 AND m.status = 'failed'))"
					" AND m.applied_at > pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $2)"
					" FROM rollback.migration m LEFT JOIN rollback.point p ON p.id = m.point_id"
					" WHERE CASE WHEN $1 <> 0 THEN m.id = $1"
					"  ELSE m.kind = 'migration' AND m.status IN ('applied', 'verified') END"
					" ORDER BY m.id DESC LIMIT 1",
					2, argtypes, values, NULL, false, SPI_OK_SELECT);
		if (SPI_processed == 1)
		{
			HeapTuple	t = SPI_tuptable->vals[0];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;
			MemoryContext o2 = MemoryContextSwitchTo(cxt);

			m.id = DatumGetInt64(SPI_getbinval(t, d, 1, &isnull));
			m.version = SPI_getvalue(t, d, 2);
			m.point = SPI_getvalue(t, d, 3);
			actionable = DatumGetBool(SPI_getbinval(t, d, 4, &isnull));
			MemoryContextSwitchTo(o2);
		}
		else
			m.id = 0;
		/* a tag's checks compare with the last migration's point when it is recent */
		if (tag && !migration && !actionable)
		{
			m.id = 0;
			m.point = NULL;
		}
		if (tag || m.version)
			checks = load_checks(m.version, tag, cxt);
		commit(&save);

		failed = run_and_record(checks, batch, tag ? 0 : m.id, m.point, tag, cxt, &inconclusive);
		/* a tag's results name the migration they may act on */
		if (tag && m.id != 0)
		{
			Oid			a2[2] = {INT8OID, INT8OID};
			Datum		v2[2];

			v2[0] = Int64GetDatum(batch);
			v2[1] = Int64GetDatum(m.id);
			begin("rollback: recording check results", &save);
			rb_spi_exec("UPDATE rollback.check_runs SET migration_id = $2 WHERE batch = $1",
						2, a2, v2, NULL, false, SPI_OK_UPDATE);
			commit(&save);
		}
		if (failed && actionable)
		{
			*act_on = m.id;
			*failed_check = MemoryContextStrdup(TopMemoryContext, failed);
		}
	}
	PG_CATCH();
	{
		char	   *msg = abort_error(cxt, NULL);

		error = MemoryContextStrdup(TopMemoryContext, msg);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return error;
}

/*
 * rb_act_on_failure: an error-severity check of migration id failed (check
 * NULL: resume a revert a crash interrupted).  Revert it when allowed,
 * else mark it failed and say why.  trigger: "check" or "scheduled".
 */
void
rb_act_on_failure(int64 id, const char *failed_check, const char *trigger)
{
	const char *volatile check = failed_check;
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "rollback act",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RbOwnerSave save;
	char	   *volatile version = NULL;
	char	   *why_not = NULL;
	char	   *volatile reason = NULL;
	volatile bool go = false;
	volatile bool first_attempt = false;
	TimestampTz started = 0;

	PG_TRY();
	{
		Oid			argtypes[4] = {INT8OID, INT4OID, INT4OID, TEXTOID};
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		HeapTuple	t;
		TupleDesc	d;
		bool		isnull;
		char	   *status;
		bool		paused;
		bool		circuit_open;
		int64		recent;
		int64		starts;
		char	   *irreversible;
		char	   *paused_reason;

		values[0] = Int64GetDatum(id);
		values[1] = Int32GetDatum(rollback_circuit_window);
		values[2] = Int32GetDatum(rollback_max_auto_reverts);
		if (check)
			values[3] = CStringGetTextDatum(check);
		else
			nulls[3] = 'n';
		begin("rollback: deciding on a failed migration", &save);
		rb_spi_exec("SELECT m.version, m.status, m.held_at IS NOT NULL, m.irreversible,"
					" w.paused, w.circuit_open, w.paused_reason,"
					" (SELECT count(*) FROM rollback.audit_log a WHERE a.action = 'revert'"
					"   AND a.detail->>'trigger' IN ('check', 'scheduled')"
					"   AND a.at > GREATEST(pg_catalog.now() - pg_catalog.make_interval(secs => $2),"
					"                       coalesce(w.circuit_reset_at, '-infinity'))),"
					" (SELECT count(*) FROM rollback.audit_log a WHERE a.migration_id = m.id"
					"   AND a.action = 'revert_started'),"
					" (SELECT a.detail->>'check' FROM rollback.audit_log a WHERE a.migration_id = m.id"
					"   AND a.action = 'revert_started' ORDER BY a.id DESC LIMIT 1)"
					" FROM rollback.migration m, rollback.worker_state w WHERE m.id = $1 FOR UPDATE",
					4, argtypes, values, nulls, false, SPI_OK_SELECT);
		if (SPI_processed != 1)
			elog(ERROR, "migration " INT64_FORMAT " vanished", id);
		t = SPI_tuptable->vals[0];
		d = SPI_tuptable->tupdesc;
		version = MemoryContextStrdup(cxt, SPI_getvalue(t, d, 1));
		status = SPI_getvalue(t, d, 2);
		irreversible = SPI_getvalue(t, d, 4);
		paused = DatumGetBool(SPI_getbinval(t, d, 5, &isnull));
		circuit_open = DatumGetBool(SPI_getbinval(t, d, 6, &isnull));
		paused_reason = SPI_getvalue(t, d, 7);
		recent = DatumGetInt64(SPI_getbinval(t, d, 8, &isnull));
		starts = DatumGetInt64(SPI_getbinval(t, d, 9, &isnull));
		if (check == NULL)
			check = MemoryContextStrdup(cxt, SPI_getvalue(t, d, 10) ? SPI_getvalue(t, d, 10) : "?");
		reason = MemoryContextStrdup(cxt, psprintf("check \"%s\" failed", check));

		if (strcmp(status, "applied") != 0 && strcmp(status, "verified") != 0 &&
			strcmp(status, "failed") != 0)
		{
			/* reverted meanwhile (by a person), or already given up on */
			commit(&save);
			MemoryContextSwitchTo(old);
			MemoryContextDelete(cxt);
			return;
		}
		if (!rollback_auto_revert)
			why_not = "rollback.auto_revert is off";
		else if (paused)
			why_not = psprintf("automatic reverts are paused (%s)", paused_reason ? paused_reason : "no reason given");
		else if (DatumGetBool(SPI_getbinval(t, d, 3, &isnull)))
			why_not = "the migration is held";
		else if (irreversible != NULL)
			why_not = psprintf("the migration cannot be reverted: %s", irreversible);
		else if (circuit_open)
			why_not = "the circuit breaker is open";
		else if (starts >= 2)
			why_not = "an automatic revert of it was started twice and did not finish";
		else if (recent >= rollback_max_auto_reverts)
		{
			why_not = psprintf("the circuit breaker opened: " INT64_FORMAT " automatic reverts within rollback.circuit_window",
							   recent);
			rb_spi_exec("UPDATE rollback.worker_state SET circuit_open = true,"
						" circuit_opened_at = pg_catalog.now()",
						0, NULL, NULL, NULL, false, SPI_OK_UPDATE);
			rb_audit("circuit_open", "rollback worker", id, why_not,
					 psprintf("{\"reverts_in_window\": " INT64_FORMAT ", \"max_auto_reverts\": %d}",
							  recent, rollback_max_auto_reverts));
			ereport(LOG,
					(errmsg("rollback: circuit breaker opened after " INT64_FORMAT " automatic reverts; waiting for rollback.resume()",
							recent)));
		}

		if (why_not)
		{
			/* a revert started twice and never finished: given up on */
			rb_spi_exec(starts >= 2 ?
						"UPDATE rollback.migration SET status = 'revert_failed',"
						" checked_at = coalesce(checked_at, pg_catalog.clock_timestamp()) WHERE id = $1" :
						"UPDATE rollback.migration SET status = 'failed',"
						" checked_at = coalesce(checked_at, pg_catalog.clock_timestamp()) WHERE id = $1",
						1, argtypes, values, NULL, false, SPI_OK_UPDATE);
			rb_audit("check_failed", "rollback worker", id,
					 psprintf("%s; not reverted: %s", reason, why_not),
					 event_detail(check, trigger, "\"reverted\": false"));
			commit(&save);
			ereport(LOG,
					(errmsg("rollback: migration %s failed (%s) and was not reverted: %s",
							version, reason, why_not)));
		}
		else
		{
			rb_spi_exec("UPDATE rollback.migration SET status = 'failed',"
						" checked_at = coalesce(checked_at, pg_catalog.clock_timestamp()) WHERE id = $1",
						1, argtypes, values, NULL, false, SPI_OK_UPDATE);
			first_attempt = (starts == 0);
			rb_audit("revert_started", "rollback worker", id, reason,
					 event_detail(check, trigger, psprintf("\"attempt\": " INT64_FORMAT, starts + 1)));
			commit(&save);
			go = true;
		}
	}
	PG_CATCH();
	{
		char	   *msg = abort_error(cxt, NULL);

		ereport(LOG,
				(errmsg("rollback worker: could not decide on migration " INT64_FORMAT ": %s", id, msg)));
		go = false;
	}
	PG_END_TRY();

	if (go)
	{
		char	   *volatile error = NULL;
		volatile int code = 0;

		started = GetCurrentTimestamp();
		ereport(LOG,
				(errmsg("rollback: reverting migration %s: %s", version, reason)));
		PG_TRY();
		{
			/* a lock held elsewhere: give up waiting, try again at the next pass */
			begin_xact("rollback: reverting a migration", &save, false);
			(void) set_config_option("lock_timeout", psprintf("%d", rollback_revert_lock_timeout),
									 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
			rb_spi_finish_as_owner(&save);
			rb_auto_revert(id, reason, trigger, check);
			rb_spi_connect_as_owner(&save);
			rb_notify_revert(id);
			commit(&save);
		}
		PG_CATCH();
		{
			int			c;

			error = abort_error(cxt, &c);
			code = c;
		}
		PG_END_TRY();
		if (error == NULL)
			ereport(LOG,
					(errmsg("rollback: migration %s reverted in %.3f s", version,
							(double) (GetCurrentTimestamp() - started) / 1000000.0)));
		else if (code == ERRCODE_LOCK_NOT_AVAILABLE && first_attempt)
		{
			/* still 'failed' with 'revert_started' last: the next pass tries once more */
			ereport(LOG,
					(errmsg("rollback: the automatic revert of migration %s waits for a lock: %s; it is tried again at the next pass",
							version, error)));
		}
		else
		{
			ereport(WARNING,
					(errmsg("rollback: the automatic revert of migration %s failed: %s", version, error)));
			PG_TRY();
			{
				Oid			argtypes[1] = {INT8OID};
				Datum		values[1];

				values[0] = Int64GetDatum(id);
				begin("rollback: recording a failed revert", &save);
				rb_spi_exec("UPDATE rollback.migration SET status = 'revert_failed' WHERE id = $1",
							1, argtypes, values, NULL, false, SPI_OK_UPDATE);
				rb_audit("revert_failed", "rollback worker", id,
						 psprintf("%s; the revert failed: %s", reason, error),
						 event_detail(check, trigger, NULL));
				commit(&save);
			}
			PG_CATCH();
			{
				char	   *msg = abort_error(cxt, NULL);

				ereport(LOG,
						(errmsg("rollback worker: could not record the failed revert: %s", msg)));
			}
			PG_END_TRY();
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * rb_maybe_purge: once an hour, drop the points older than
 * rollback.retention that no live migration needs (one not yet reverted
 * and still inside rollback.revert_window, or failed and waiting for a
 * person), and the check results older than that.
 */
void
rb_maybe_purge(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	RbOwnerSave save;

	PG_TRY();
	{
		Oid			argtypes[2] = {INT4OID, INT4OID};
		Datum		values[2];
		List	   *ids;
		ListCell   *lc;
		int			nruns = 0;

		values[0] = Int32GetDatum(rollback_retention);
		values[1] = Int32GetDatum(rollback_revert_window);
		begin("rollback: purging old points", &save);
		rb_spi_exec("UPDATE rollback.worker_state SET purged_at = pg_catalog.now()"
					" WHERE purged_at IS NULL OR purged_at < pg_catalog.now() - interval '1 hour'"
					" RETURNING 1", 0, NULL, NULL, NULL, false, SPI_OK_UPDATE_RETURNING);
		if (SPI_processed == 0)
			ids = NIL;
		else
		{
			rb_spi_exec("SELECT p.id FROM rollback.point p"
						" WHERE p.created_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)"
						" AND NOT EXISTS (SELECT 1 FROM rollback.migration m WHERE m.point_id = p.id"
						"  AND (m.status IN ('running', 'failed', 'revert_failed')"
						"   OR (m.status IN ('applied', 'verified')"
						"       AND m.applied_at > pg_catalog.now() - pg_catalog.make_interval(secs => $2))))"
						" ORDER BY p.id",
						2, argtypes, values, NULL, false, SPI_OK_SELECT);
			ids = rb_spi_int8_list(1, cxt);
			/* check results too (rollback.check_totals keeps the counts) */
			nruns = rb_spi_exec("DELETE FROM rollback.check_runs"
								" WHERE finished_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)",
								2, argtypes, values, NULL, false, SPI_OK_DELETE);
		}
		rb_spi_finish_as_owner(&save);
		foreach(lc, ids)
			rb_drop_point_by_id(*(int64 *) lfirst(lc));
		if (ids != NIL || nruns > 0)
		{
			rb_spi_connect_as_owner(&save);
			rb_audit("purge", "rollback worker", 0,
					 "points and check results older than rollback.retention",
					 psprintf("{\"points_dropped\": %d, \"check_results_dropped\": %d}",
							  list_length(ids), nruns));
			rb_spi_finish_as_owner(&save);
			ereport(LOG,
					(errmsg("rollback: purged %d point%s and %d check result%s older than rollback.retention",
							list_length(ids), list_length(ids) == 1 ? "" : "s",
							nruns, nruns == 1 ? "" : "s")));
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
	PG_CATCH();
	{
		char	   *msg = abort_error(cxt, NULL);

		ereport(LOG,
				(errmsg("rollback worker: purge failed: %s", msg)));
	}
	PG_END_TRY();
}

/* rb_autorevert_init: settings (from _PG_init). */
void
rb_autorevert_init(void)
{
	DefineCustomBoolVariable("rollback.auto_revert",
							 "Lets the worker revert a migration whose error-severity check failed.",
							 "When off, such a migration is marked failed and an alert is raised.",
							 &rollback_auto_revert,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("rollback.max_auto_reverts",
							"Automatic reverts allowed within rollback.circuit_window before the circuit breaker opens.",
							NULL,
							&rollback_max_auto_reverts,
							3,
							1,
							1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("rollback.circuit_window",
							"Window over which automatic reverts are counted for the circuit breaker.",
							NULL,
							&rollback_circuit_window,
							3600,
							1,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("rollback.revert_window",
							"How long after its end a migration may still be reverted automatically.",
							"Also the window in which a failing scheduled check marks the last migration failed.",
							&rollback_revert_window,
							3600,
							1,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("rollback.revert_lock_timeout",
							"How long an automatic revert waits for a table lock before it gives up for this pass.",
							"A revert that could not get its locks is tried once more at the next pass, then marked revert_failed.",
							&rollback_revert_lock_timeout,
							5000,
							1,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("rollback.history_wait",
							"How long the worker waits for a migration tool's history row before checking a migration.",
							"Sqitch, Liquibase and Flyway write it after the migration commits; it names the migration.",
							&rollback_history_wait,
							3000,
							0,
							600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}
