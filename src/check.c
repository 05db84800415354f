/*-------------------------------------------------------------------------
 *
 * check.c
 *		Quality checks: registering them, and running one.
 *
 * A check is one SQL query.  A query that returns a single row of a single
 * boolean column passes on true; any other query passes when it returns
 * no row, and the rows it returns are the failures.  An error or a
 * timeout makes the run inconclusive, not failed.
 *
 * A check runs in the background worker (worker.c), in a transaction of
 * its own that is READ ONLY, as the role that created the check, under
 * SECURITY_RESTRICTED_OPERATION (no SET ROLE, no temporary objects), with
 * its timeout as statement timeout and search_path fixed to pg_catalog,
 * pg_temp.  It can therefore never write, nor gain rights.  The
 * transaction is always rolled back.
 *
 * rollback.run_checks() does not run checks in the caller's transaction:
 * it hands the request to the database's worker and waits, so that the
 * results are committed even when it then raises an error (which is how a
 * pg_cron job reports a failing check).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/fmgrprotos.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_add_check);
PG_FUNCTION_INFO_V1(rollback_drop_check);
PG_FUNCTION_INFO_V1(rollback_check_point);
PG_FUNCTION_INFO_V1(rollback_run_checks);

/* rollback.max_failing_rows: failing rows kept per check result */
int			rollback_max_failing_rows = 100;

/* the point of the migration under check, while the worker runs a check */
static char *current_check_point = NULL;

/* text_arg: a text argument that must not be NULL. */
static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* interval_ms: an interval as milliseconds (months as 30 days). */
static int64
interval_ms(Interval *iv)
{
	return (int64) iv->month * 30 * USECS_PER_DAY / 1000 +
		(int64) iv->day * USECS_PER_DAY / 1000 + iv->time / 1000;
}

/*
 * trim_sql: the query without trailing blanks and semicolons, so that it
 * can be wrapped in a subquery.
 */
static char *
trim_sql(const char *sql)
{
	char	   *s = pstrdup(sql);
	int			n = strlen(s);

	while (n > 0 && (isspace((unsigned char) s[n - 1]) || s[n - 1] == ';'))
		s[--n] = '\0';
	return s;
}

/*
 * validate_sql: the query must be one query that reads (a SELECT, VALUES or
 * WITH without data-modifying parts) and the caller must be allowed to
 * read everything it names.  Parsed alone first (the worker runs it alone:
 * text that only parses once wrapped, such as "SELECT 1) x, (SELECT 2",
 * must not pass).  Then run wrapped in a subquery with LIMIT 0: the parser
 * refuses anything but a plain query there, and the executor checks the
 * caller's privileges on every relation without reading a row.
 */
static void
validate_sql(const char *name, const char *sql)
{
	int			rc;
	List	   *parsed = pg_parse_query(sql);

	if (list_length(parsed) != 1 ||
		!IsA(linitial_node(RawStmt, parsed)->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check \"%s\" must be one query that returns rows", name),
				 errdetail("A check is a single SELECT, VALUES or WITH query.")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute(psprintf("SELECT * FROM (%s\n) rollback_check LIMIT 0", sql), true, 0);
	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check \"%s\" must be a query that returns rows", name)));
	SPI_finish();
}

/*
 * rollback.add_check(name, sql, applies_to, severity, timeout, settle_count,
 *		settle_interval, failure_limit, dry_run) returns bigint
 * rollback._add_check(name, sql, applies_to, severity, kind, relid): the
 *		same with the defaults, for the built-in constructors.
 */
Datum
rollback_add_check(PG_FUNCTION_ARGS)
{
	bool		builtin = PG_NARGS() == 6;
	char	   *name;
	char	   *sql;
	char	   *applies_to;
	char	   *severity;
	Interval   *timeout = NULL;
	int32		settle_count = 1;
	Interval   *settle_interval = NULL;
	int32		failure_limit = 0;
	bool		dry_run = false;
	RbOwnerSave save;
	Oid			argtypes[13] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INTERVALOID, INT4OID,
	INTERVALOID, INT4OID, BOOLOID, TEXTOID, OIDOID, OIDOID, BOOLOID};
	Datum		values[13];
	char		nulls[13] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;

	if (!rb_is_admin())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to add a check"),
				 errdetail("Only superusers and members of rollback_admin may do this.")));
	name = text_arg(fcinfo, 0, "check name");
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check name must not be empty")));
	sql = trim_sql(text_arg(fcinfo, 1, "check sql"));
	if (sql[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("check sql must not be empty")));
	applies_to = text_arg(fcinfo, 2, "applies_to");
	if (applies_to[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("applies_to must not be empty"),
				 errhint("Use '*' for every migration.")));
	severity = text_arg(fcinfo, 3, "severity");
	if (strcmp(severity, "error") != 0 && strcmp(severity, "warning") != 0 &&
		strcmp(severity, "info") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid check severity \"%s\"", severity),
				 errhint("Use error, warning or info.")));
	if (!builtin)
	{
		int			i;

		for (i = 4; i < 9; i++)
			if (PG_ARGISNULL(i))
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("%s must not be null",
								i == 4 ? "timeout" : i == 5 ? "settle_count" :
								i == 6 ? "settle_interval" : i == 7 ? "failure_limit" : "dry_run")));
		timeout = PG_GETARG_INTERVAL_P(4);
		settle_count = PG_GETARG_INT32(5);
		settle_interval = PG_GETARG_INTERVAL_P(6);
		failure_limit = PG_GETARG_INT32(7);
		dry_run = PG_GETARG_BOOL(8);
		if (interval_ms(timeout) <= 0 || interval_ms(timeout) > INT_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("check timeout must be between 1 millisecond and %d milliseconds", INT_MAX)));
		if (settle_count < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("settle_count must be at least 1")));
		if (interval_ms(settle_interval) < 0 || interval_ms(settle_interval) > INT_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("settle_interval must be between 0 and %d milliseconds", INT_MAX)));
		if (failure_limit < 0 || failure_limit >= settle_count)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("failure_limit must be at least 0 and less than settle_count"),
					 errdetail("The check fails when more than failure_limit of its settle_count runs fail.")));
	}

	/* as the caller: a role that cannot read what the check reads cannot add it */
	validate_sql(name, sql);

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(sql);
	values[2] = CStringGetTextDatum(applies_to);
	values[3] = CStringGetTextDatum(severity);
	if (timeout)
	{
		values[4] = IntervalPGetDatum(timeout);
		values[6] = IntervalPGetDatum(settle_interval);
	}
	else
	{
		nulls[4] = 'n';
		nulls[6] = 'n';
		values[4] = values[6] = (Datum) 0;
	}
	values[5] = Int32GetDatum(settle_count);
	values[7] = Int32GetDatum(failure_limit);
	values[8] = BoolGetDatum(dry_run);
	values[9] = CStringGetTextDatum(builtin && !PG_ARGISNULL(4) ? text_to_cstring(PG_GETARG_TEXT_PP(4)) : "sql");
	values[10] = ObjectIdGetDatum(builtin && !PG_ARGISNULL(5) ? PG_GETARG_OID(5) : InvalidOid);
	if (!builtin || PG_ARGISNULL(5))
		nulls[10] = 'n';
	values[11] = ObjectIdGetDatum(GetUserId());
	values[12] = BoolGetDatum(builtin);

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT 1 FROM rollback.checks WHERE name = $1",
				1, argtypes, values, nulls, false, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("check \"%s\" already exists", name)));
	rb_spi_exec("INSERT INTO rollback.checks (name, sql, applies_to, severity, timeout, settle_count,"
				" settle_interval, failure_limit, dry_run, kind, relid, owner)"
				" VALUES ($1, $2, $3, $4, coalesce($5, '30 seconds'), $6, coalesce($7, '0'),"
				" $8, $9, $10, $11, $12) RETURNING id",
				13, argtypes, values, nulls, false, SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	rb_spi_finish_as_owner(&save);
	PG_RETURN_INT64(id);
}

/* rollback.drop_check(name text) */
Datum
rollback_drop_check(PG_FUNCTION_ARGS)
{
	char	   *name = text_arg(fcinfo, 0, "check name");
	RbOwnerSave save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int			n;

	if (!rb_is_admin())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to drop a check"),
				 errdetail("Only superusers and members of rollback_admin may do this.")));
	values[0] = CStringGetTextDatum(name);
	rb_spi_connect_as_owner(&save);
	n = rb_spi_exec("DELETE FROM rollback.checks WHERE name = $1",
					1, argtypes, values, NULL, false, SPI_OK_DELETE);
	rb_spi_finish_as_owner(&save);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("check \"%s\" does not exist", name)));
	PG_RETURN_VOID();
}

/*
 * rollback.check_point(): inside a check run by the worker, the name of
 * the recovery point of the migration under check; NULL elsewhere.
 */
Datum
rollback_check_point(PG_FUNCTION_ARGS)
{
	if (current_check_point == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(current_check_point));
}

/*
 * failing_rows_json: the rows of the last SPI result, at most max, as the
 * text of a JSON array of objects.
 */
static char *
failing_rows_json(uint64 max)
{
	StringInfoData buf;
	TupleDesc	desc = BlessTupleDesc(SPI_tuptable->tupdesc);
	uint64		i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (i = 0; i < SPI_processed && i < max; i++)
	{
		Datum		row = heap_copy_tuple_as_datum(SPI_tuptable->vals[i], desc);
		text	   *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));

		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf, text_to_cstring(json));
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/*
 * run_once: one run of a check, in a transaction of its own, read only, as
 * the check's owner.  Sets *status ("passed", "failed", "inconclusive"),
 * *detail and *rows (failing rows as JSON, or NULL), allocated in cxt.
 * Never throws but for FATAL: an error in the check is its result.
 */
static void
run_once(const RbCheck *c, MemoryContext cxt, const char **status, char **detail, char **rows)
{
	Oid			save_user;
	int			save_sec;
	MemoryContext old;

	*rows = NULL;
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		int			rc;
		uint64		max = rollback_max_failing_rows;

		rb_lock_extension();
		if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(c->owner)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("the role that created the check no longer exists")));
		(void) set_config_option("transaction_read_only", "on", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		SetUserIdAndSecContext(c->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		pgstat_report_activity(STATE_RUNNING, c->sql);
		enable_timeout_after(STATEMENT_TIMEOUT, c->timeout_ms);
		rc = SPI_execute(c->sql, true, max + 1);
		disable_timeout(STATEMENT_TIMEOUT, false);
		SetUserIdAndSecContext(save_user, save_sec);

		old = MemoryContextSwitchTo(cxt);
		if (rc != SPI_OK_SELECT)
		{
			*status = "inconclusive";
			*detail = pstrdup("the check is not a query that returns rows");
		}
		else if (SPI_tuptable->tupdesc->natts == 1 &&
				 TupleDescAttr(SPI_tuptable->tupdesc, 0)->atttypid == BOOLOID &&
				 SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull && DatumGetBool(d))
			{
				*status = "passed";
				*detail = NULL;
			}
			else
			{
				*status = "failed";
				*detail = pstrdup(isnull ? "the check returned NULL" : "the check returned false");
			}
		}
		else if (SPI_processed == 0)
		{
			*status = "passed";
			*detail = NULL;
		}
		else
		{
			*status = "failed";
			if (SPI_processed > max)
				*detail = psprintf("more than " UINT64_FORMAT " failing rows (the first " UINT64_FORMAT " are kept)",
								   max, max);
			else
				*detail = psprintf(UINT64_FORMAT " failing row%s", (uint64) SPI_processed,
								   SPI_processed == 1 ? "" : "s");
			*rows = failing_rows_json(max);
		}
		MemoryContextSwitchTo(old);
		PopActiveSnapshot();
		SPI_finish();
		/* nothing to keep: the abort also undoes the settings above */
		AbortCurrentTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(STATEMENT_TIMEOUT, false);
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		SetUserIdAndSecContext(save_user, save_sec);
		*status = "inconclusive";
		*detail = psprintf("error: %s", edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * rb_run_check: evaluate a check over its settle window: up to
 * settle_count runs, settle_interval apart, against the given point (NULL:
 * none).  The check fails when more than failure_limit runs failed; else
 * it is inconclusive if a run was; else it passed.  Stops early once the
 * outcome cannot change.  Results are allocated in cxt.
 */
void
rb_run_check(const RbCheck *c, const char *pointname, MemoryContext cxt, RbCheckResult *res)
{
	int			i;
	int			inconclusive = 0;
	char	   *last_detail = NULL;
	char	   *fail_detail = NULL;
	char	   *fail_rows = NULL;

	memset(res, 0, sizeof(*res));
	res->started = GetCurrentTimestamp();
	current_check_point = pointname ? MemoryContextStrdup(TopMemoryContext, pointname) : NULL;
	for (i = 0; i < c->settle_count; i++)
	{
		const char *status;
		char	   *detail;
		char	   *rows;

		if (i > 0 && c->settle_ms > 0)
			rb_worker_sleep(c->settle_ms);
		run_once(c, cxt, &status, &detail, &rows);
		res->runs++;
		if (strcmp(status, "failed") == 0)
		{
			res->failures++;
			fail_detail = detail;
			fail_rows = rows;
		}
		else if (strcmp(status, "inconclusive") == 0)
		{
			inconclusive++;
			last_detail = detail;
		}
		/* the outcome is decided: more failures than the limit */
		if (res->failures > c->failure_limit)
			break;
	}
	if (current_check_point)
		pfree(current_check_point);
	current_check_point = NULL;

	if (res->failures > c->failure_limit)
	{
		res->status = "failed";
		res->detail = fail_detail;
		res->failing_rows = fail_rows;
		if (c->settle_count > 1)
			res->detail = MemoryContextStrdup(cxt, psprintf("%s (%d of %d runs failed)", fail_detail,
															res->failures, res->runs));
	}
	else if (inconclusive > 0)
	{
		res->status = "inconclusive";
		res->detail = last_detail;
	}
	else
	{
		res->status = "passed";
		res->detail = res->failures > 0 ?
			MemoryContextStrdup(cxt, psprintf("%d of %d runs failed, within the failure limit of %d",
											  res->failures, res->runs, c->failure_limit)) : NULL;
	}
	res->finished = GetCurrentTimestamp();
}

/*
 * rollback.run_checks(migration text, tag text)
 *		returns table(check_name text, status text, detail text)
 *
 * Hands the request to this database's worker and waits for it: the
 * worker runs the checks, commits their results, then (after answering)
 * acts on a failure.  The results are then read back from
 * rollback.check_runs.  An error-severity check that failed (and is not a
 * dry run) raises an error, so that pg_cron records the job as failed.
 */
Datum
rollback_run_checks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *migration = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *tag = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		batch;
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	Tuplestorestate *ts;
	TupleDesc	desc;
	MemoryContext old;
	uint64		i;
	char	   *failed = NULL;
	char	   *failed_detail = NULL;
	int			nfailed = 0;
	char	   *error;

	rb_check_materialize(rsinfo);
	if (!rb_is_admin())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run checks"),
				 errdetail("Only superusers and members of rollback_admin may do this.")));
	if (tag != NULL && tag[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tag must not be empty")));
	if (migration != NULL && migration[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration must not be empty")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("rollback.run_checks() cannot run in a REPEATABLE READ or SERIALIZABLE transaction"),
				 errdetail("The checks run in the background worker; their results are read back with a new snapshot.")));

	/* a migration named must exist (the worker resolves it the same way) */
	if (migration != NULL)
		(void) rb_find_migration(migration);

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT pg_catalog.nextval('rollback.check_batch_seq')", 0, NULL, NULL, NULL,
				false, SPI_OK_SELECT);
	{
		bool		isnull;

		batch = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	rb_spi_finish_as_owner(&save);

	error = rb_worker_request(batch, migration, tag);
	if (error != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the rollback worker could not run the checks"),
				 errdetail("%s", error)));

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = CreateTupleDescCopy(desc);
	ts = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);

	values[0] = Int64GetDatum(batch);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT check_name, status, detail, severity = 'error' AND NOT dry_run"
				" FROM rollback.check_runs WHERE batch = $1 ORDER BY id",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	sd = SPI_tuptable->tupdesc;
		Datum		out[3];
		bool		outnull[3];
		bool		isnull;
		char	   *status = SPI_getvalue(t, sd, 2);

		out[0] = SPI_getbinval(t, sd, 1, &outnull[0]);
		out[1] = SPI_getbinval(t, sd, 2, &outnull[1]);
		out[2] = SPI_getbinval(t, sd, 3, &outnull[2]);
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		tuplestore_putvalues(ts, desc, out, outnull);
		if (strcmp(status, "failed") == 0 &&
			DatumGetBool(SPI_getbinval(t, sd, 4, &isnull)))
		{
			if (nfailed++ == 0)
			{
				failed = SPI_getvalue(t, sd, 1);
				failed_detail = SPI_getvalue(t, sd, 3);
			}
		}
		MemoryContextSwitchTo(old);
	}
	if (SPI_processed == 0)
		ereport(NOTICE,
				(errmsg("no check applies"),
				 errdetail(tag ? "No check has applies_to equal to the tag." :
						   migration ? "No check's applies_to matches the migration's label." :
						   "No migration is applied, or no check's applies_to matches the label of the last one.")));
	rb_spi_finish_as_owner(&save);
	if (nfailed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("check \"%s\" failed", failed),
				 nfailed > 1 ? errdetail("%s; %d error-severity checks failed in all (batch " INT64_FORMAT " in rollback.check_runs).",
										 failed_detail ? failed_detail : "no detail", nfailed, batch)
				 : errdetail("%s (batch " INT64_FORMAT " in rollback.check_runs).",
							 failed_detail ? failed_detail : "no detail", batch)));

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = ts;
	rsinfo->setDesc = desc;
	return (Datum) 0;
}

/* rb_check_init: settings (from _PG_init). */
void
rb_check_init(void)
{
	DefineCustomIntVariable("rollback.max_failing_rows",
							"Failing rows kept per check result.",
							NULL,
							&rollback_max_failing_rows,
							100,
							0,
							100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}
