/*-------------------------------------------------------------------------
 *
 * migration.c
 *		Migrations: a change set with a recovery point before it.
 *
 * A session is in a migration from rollback.begin_migration() to
 * rollback.end_migration(); a transaction is in one by itself (auto
 * tracking) from its first DDL statement that touches a tracked schema to
 * its commit.  The state is per backend:
 *
 *	session_migration	the explicit migration, across transactions; it is
 *						forgotten if the (sub)transaction that began it
 *						aborts, and comes back if the one that ended it does;
 *	xact_migration		an automatic migration or a revert, valid only for
 *						the transaction (local id) that started it, and
 *						forgotten if the subtransaction that started it
 *						aborts.
 *
 * The state follows the (sub)transactions by their SubTransactionIds, not
 * the local transaction id: at XACT_EVENT_ABORT and XACT_EVENT_COMMIT the
 * PGPROC's local id has already been reset (ProcArrayEndTransaction runs
 * before the callbacks).
 *
 * Every (sub)transaction that writes while a migration is active is
 * recorded in rollback.migration_xact, from the ExecutorStart and
 * ProcessUtility hooks, so that a revert can tell the migration's rows from
 * rows that others wrote since its point.  The record is written in the
 * same subtransaction as the writes, so it vanishes with them on rollback.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/xid8.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_begin_migration);
PG_FUNCTION_INFO_V1(rollback_end_migration);
PG_FUNCTION_INFO_V1(rollback_current_migration);
PG_FUNCTION_INFO_V1(rollback_migration_abandoned);
PG_FUNCTION_INFO_V1(rollback_history_defer);
PG_FUNCTION_INFO_V1(rollback_wake_worker);

bool		rollback_auto_track = true;

static int64 session_migration = 0;
/* the subtransaction that began it, until its transaction commits */
static SubTransactionId session_begun_subid = InvalidSubTransactionId;
static int64 xact_migration = 0;
static LocalTransactionId xact_lxid = InvalidLocalTransactionId;
static SubTransactionId xact_subid = InvalidSubTransactionId;
static bool xact_is_revert = false;

/*
 * An end_migration() whose transaction has not committed yet: the session
 * keeps the migration's locks until the commit (others must not see it as
 * abandoned meanwhile), and is in the migration again if the end is rolled
 * back.  A list in TopMemoryContext: a transaction may begin and end more
 * than one migration.
 */
typedef struct PendingEnd
{
	int64		id;
	SubTransactionId end_subid; /* the subtransaction that ended it */
	SubTransactionId begun_subid;	/* that began it, if this transaction */
} PendingEnd;

static List *pending_ends = NIL;

/* wake the worker at commit: a migration ended or was labelled */
static bool wake_at_commit = false;

/* (sub)transaction ids already recorded in this transaction */
#define MAX_RECORDED 64
static FullTransactionId recorded[MAX_RECORDED];
static int	nrecorded = 0;
static LocalTransactionId recorded_lxid = InvalidLocalTransactionId;
static bool recording = false;	/* our own INSERT must not record itself */

static ExecutorStart_hook_type prev_ExecutorStart = NULL;

/*
 * rb_current_migration: the migration this backend's writes belong to now,
 * or 0.
 */
int64
rb_current_migration(void)
{
	if (xact_migration != 0 && xact_lxid == RB_MY_LXID)
		return xact_migration;
	return session_migration;
}

/*
 * An explicit migration spans transactions, so its catalog row says
 * "running" until end_migration().  Its session holds a session-level lock
 * on the migration's id for that time, which tells a migration still being
 * run from one whose session ended without end_migration() (a tool that
 * failed halfway and closed its connection): only the latter may be
 * reverted.  An advisory locktag with our own field4, so that no SQL-level
 * advisory lock (field4 1 or 2) can collide with it.
 */
#define RB_LOCKTAG_MIGRATION 0x5242

static void
migration_locktag(LOCKTAG *tag, int64 id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) ((uint64) id >> 32), (uint32) id,
						 RB_LOCKTAG_MIGRATION);
}

/*
 * The in-progress lock: id 0 of the same tag space, held in SHARE by every
 * backend whose migration is not yet committed as applied (an automatic
 * migration or a revert until its transaction ends; an explicit migration
 * from begin_migration() until the end of end_migration()'s transaction).
 * A history row inserted while another backend holds it may belong to that
 * migration, which its inserter cannot see yet: see rb_history_defer().
 */
static void
hold_in_progress(bool session)
{
	LOCKTAG		tag;

	migration_locktag(&tag, 0);
	(void) LockAcquire(&tag, ShareLock, session, false);
}

/*
 * release_session_locks: give up the session-level locks that
 * begin_migration() took for migration id (its own, and its share of the
 * in-progress lock), when it ends or its begin is rolled back.
 */
static void
release_session_locks(int64 id)
{
	LOCKTAG		tag;

	migration_locktag(&tag, id);
	LockRelease(&tag, ExclusiveLock, true);
	migration_locktag(&tag, 0);
	LockRelease(&tag, ShareLock, true);
}

/*
 * rb_history_defer: whether a history row inserted now must be paired with
 * its migration at commit rather than at once: the inserting transaction is
 * no migration itself and another backend has one in progress.  Flyway's
 * default mode inserts its row from its main connection while the
 * migration's transaction is open, and commits that transaction only
 * after; at the row's commit the migration is committed and visible.
 * Decided once per transaction, so that the two history triggers (one
 * immediate, one deferred, see _adopt_history) agree on every row.
 */
bool
rb_history_defer(void)
{
	static LocalTransactionId lxid = InvalidLocalTransactionId;
	static bool defer = false;
	LOCKTAG		tag;

	if (lxid == RB_MY_LXID)
		return defer;
	lxid = RB_MY_LXID;
	defer = false;
	if (rb_current_migration() != 0)
		return defer;
	migration_locktag(&tag, 0);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		defer = true;
	else
		LockRelease(&tag, ExclusiveLock, false);
	return defer;
}

/* rollback._history_defer(): rb_history_defer for the triggers' WHEN. */
Datum
rollback_history_defer(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(rb_history_defer());
}

/*
 * rb_migration_abandoned: whether a migration whose row says "running" was
 * begun by a session that has ended.  An automatic migration or a revert
 * lives in one transaction, and others see its row only once it has
 * committed, so a running one is always this transaction's own.
 */
bool
rb_migration_abandoned(int64 id)
{
	LOCKTAG		tag;

	if (id == rb_current_migration())
		return false;
	migration_locktag(&tag, id);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	LockRelease(&tag, ExclusiveLock, false);
	return true;
}

/* rollback._migration_abandoned(id bigint): rb_migration_abandoned for SQL. */
Datum
rollback_migration_abandoned(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(rb_migration_abandoned(PG_GETARG_INT64(0)));
}

/* rb_in_revert: whether the current transaction is running a revert. */
bool
rb_in_revert(void)
{
	return xact_migration != 0 && xact_lxid == RB_MY_LXID && xact_is_revert;
}

/*
 * rb_migration_record_xid: record the current (sub)transaction as one of
 * the migration's, once per (sub)transaction.
 */
void
rb_migration_record_xid(void)
{
	int64		mig = rb_current_migration();
	FullTransactionId fxid;
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, XID8OID};
	Datum		values[2];
	int			i;

	if (mig == 0 || recording || !IsTransactionState() || rb_in_internal_ddl())
		return;
	if (recorded_lxid != RB_MY_LXID)
	{
		nrecorded = 0;
		recorded_lxid = RB_MY_LXID;
	}
	fxid = GetCurrentFullTransactionId();
	for (i = 0; i < nrecorded; i++)
		if (FullTransactionIdEquals(recorded[i], fxid))
			return;

	values[0] = Int64GetDatum(mig);
	values[1] = FullTransactionIdGetDatum(fxid);
	recording = true;
	PG_TRY();
	{
		rb_spi_connect_as_owner(&save);
		rb_spi_exec("INSERT INTO rollback.migration_xact (migration_id, xid) VALUES ($1, $2)"
					" ON CONFLICT DO NOTHING",
					2, argtypes, values, NULL, false, SPI_OK_INSERT);
		rb_spi_finish_as_owner(&save);
	}
	PG_FINALLY();
	{
		recording = false;
	}
	PG_END_TRY();
	if (nrecorded < MAX_RECORDED)
		recorded[nrecorded++] = fxid;
}

/*
 * undo_session_state: a (sub)transaction aborts: subid is the aborting
 * subtransaction, or InvalidSubTransactionId for the whole transaction.  A
 * migration it began is forgotten (its catalog row is gone with it) and
 * its session locks released; one it ended is the session's again.
 */
static void
undo_session_state(SubTransactionId subid)
{
	ListCell   *lc;

	if (session_migration != 0 && session_begun_subid != InvalidSubTransactionId &&
		(subid == InvalidSubTransactionId || session_begun_subid == subid))
	{
		release_session_locks(session_migration);
		session_migration = 0;
		session_begun_subid = InvalidSubTransactionId;
	}
	foreach(lc, pending_ends)
	{
		PendingEnd *pe = lfirst(lc);

		if (pe->begun_subid != InvalidSubTransactionId &&
			(subid == InvalidSubTransactionId || pe->begun_subid == subid))
			release_session_locks(pe->id);
		else if (subid == InvalidSubTransactionId || pe->end_subid == subid)
		{
			/* the end is rolled back: the session is in it again */
			session_migration = pe->id;
			session_begun_subid = pe->begun_subid;
		}
		else
			continue;
		pending_ends = foreach_delete_current(pending_ends, lc);
		pfree(pe);
	}
}

/*
 * migration_subxact_callback: a subtransaction that aborts takes its
 * migration_xact record with it, so forget what we recorded (it is cheap
 * to record again), and undoes the begin_migration() or end_migration()
 * it ran, and the automatic migration or revert it started.  One that
 * commits hands them to its parent.
 */
static void
migration_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			nrecorded = 0;
			undo_session_state(mySubid);
			if (xact_migration != 0 && xact_subid == mySubid)
			{
				xact_migration = 0;
				xact_is_revert = false;
			}
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			if (session_begun_subid == mySubid)
				session_begun_subid = parentSubid;
			foreach(lc, pending_ends)
			{
				PendingEnd *pe = lfirst(lc);

				if (pe->end_subid == mySubid)
					pe->end_subid = parentSubid;
				if (pe->begun_subid == mySubid)
					pe->begun_subid = parentSubid;
			}
			if (xact_subid == mySubid)
				xact_subid = parentSubid;
			break;
		default:
			break;
	}
}

/*
 * migration_xact_callback: at abort, forget a migration that this
 * transaction began and take back one it ended (undo_session_state); at
 * commit, a migration begun is the session's for good and the locks of
 * one ended are released; at the end of any transaction, the
 * transaction's own migration ends.
 */
static void
migration_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			undo_session_state(InvalidSubTransactionId);
			/* FALLTHROUGH */
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			/* a migration is applied now: its checks start at once */
			if (event == XACT_EVENT_COMMIT &&
				(wake_at_commit || pending_ends != NIL ||
				 (xact_migration != 0 && !xact_is_revert)))
				rb_worker_wake();
			wake_at_commit = false;
			foreach(lc, pending_ends)
				release_session_locks(((PendingEnd *) lfirst(lc))->id);
			list_free_deep(pending_ends);
			pending_ends = NIL;
			session_begun_subid = InvalidSubTransactionId;
			xact_migration = 0;
			xact_subid = InvalidSubTransactionId;
			xact_is_revert = false;
			nrecorded = 0;
			break;
		default:
			break;
	}
}

/*
 * rb_migration_executor_start: record the transaction of a data-changing
 * statement run inside a migration, then run the executor.
 */
static void
rb_migration_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (rb_current_migration() != 0 &&
		!(eflags & EXEC_FLAG_EXPLAIN_ONLY) &&
		(queryDesc->operation != CMD_SELECT ||
		 queryDesc->plannedstmt->hasModifyingCTE))
		rb_migration_record_xid();
	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * unique_point_name: "before:<label>", or with " (n)" added when a point
 * of that name exists (a version applied again after a revert).
 */
static char *
unique_point_name(const char *label)
{
	char	   *name = psprintf("before:%s", label);
	int			n = 1;

	while (rb_point_lookup(name, true) != 0)
		name = psprintf("before:%s (%d)", label, ++n);
	return name;
}

/*
 * tracked_leaves: every tracked table that has a store, for a migration's
 * point.  The tool history tables found in the database are tracked first.
 */
static List *
tracked_leaves(void)
{
	RbOwnerSave save;
	List	   *result;
	MemoryContext cxt = CurrentMemoryContext;

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT rollback._adopt_history()", 0, NULL, NULL, NULL, false,
				SPI_OK_SELECT);
	rb_spi_exec("SELECT relid::oid FROM rollback.tracked_table"
				" WHERE store IS NOT NULL ORDER BY relid::oid",
				0, NULL, NULL, NULL, false, SPI_OK_SELECT);
	result = rb_spi_oid_list(1, cxt);
	rb_spi_finish_as_owner(&save);
	return result;
}

/*
 * rb_start_migration: create a migration row and its point.  kind is
 * 'migration' or 'revert'.  With no_point (a transaction that already
 * changed tracked rows), the migration has no point and is irreversible.
 * Returns the new id.
 */
int64
rb_start_migration(const char *version, const char *description,
				   const char *tool, const char *kind, bool is_auto,
				   List *reverts, const char *irreversible)
{
	int64		point_id = 0;
	int64		id;
	RbOwnerSave save;
	Oid			argtypes[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID,
	INT8OID, TEXTOID, INT8ARRAYOID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	if (irreversible == NULL)
		point_id = rb_create_point_internal(unique_point_name(version),
											tracked_leaves(),
											psprintf("taken by %s %s", kind, version),
											true);

	values[0] = CStringGetTextDatum(version);
	if (description)
		values[1] = CStringGetTextDatum(description);
	else
		nulls[1] = 'n';
	if (tool)
		values[2] = CStringGetTextDatum(tool);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(kind);
	values[4] = BoolGetDatum(is_auto);
	values[5] = Int64GetDatum(point_id);
	if (point_id == 0)
		nulls[5] = 'n';
	values[6] = CStringGetTextDatum(is_auto ? "applied" : "running");
	if (reverts != NIL)
	{
		Datum	   *elems = palloc(sizeof(Datum) * list_length(reverts));
		ListCell   *lc;
		int			i = 0;

		foreach(lc, reverts)
			elems[i++] = Int64GetDatum(*(int64 *) lfirst(lc));
		values[7] = PointerGetDatum(construct_array(elems, i, INT8OID, 8,
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	}
	else
		nulls[7] = 'n';
	if (irreversible)
		values[8] = CStringGetTextDatum(irreversible);
	else
		nulls[8] = 'n';

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("INSERT INTO rollback.migration (version, description, tool, kind, auto,"
				" point_id, status, reverts, irreversible, started_by, applied_at)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, session_user,"
				" CASE WHEN $5 THEN pg_catalog.clock_timestamp() END) RETURNING id",
				9, argtypes, values, nulls, false, SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	rb_spi_finish_as_owner(&save);
	CommandCounterIncrement();
	hold_in_progress(false);
	return id;
}

/*
 * rb_set_xact_migration: make the current transaction's writes and DDL
 * belong to migration id (an automatic migration or a revert).
 */
void
rb_set_xact_migration(int64 id, bool is_revert)
{
	xact_migration = id;
	xact_lxid = RB_MY_LXID;
	xact_subid = GetCurrentSubTransactionId();
	xact_is_revert = is_revert;
	rb_migration_record_xid();
}

/*
 * rb_start_auto_migration: the current transaction runs its first DDL on a
 * tracked schema: it becomes a migration labelled auto:<xid>.  The point is
 * taken before the transaction has an id where possible, so that it keeps
 * a WAL position (see take_snapshot).  If the transaction already changed
 * tracked rows, no point can be taken: the migration is irreversible.
 */
int64
rb_start_auto_migration(void)
{
	int64		id;
	char	   *irreversible = NULL;
	FullTransactionId top;
	char	   *label;
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	if (rb_wrote_in_xact())
		irreversible = "the transaction changed tracked rows before its first DDL statement";
	id = rb_start_migration(psprintf("auto:pending:%d", MyProcPid), NULL, NULL,
							"migration", true, NIL, irreversible);
	top = GetTopFullTransactionId();
	label = psprintf("auto:" UINT64_FORMAT, U64FromFullTransactionId(top));
	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(label);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("UPDATE rollback.migration SET version = $2 WHERE id = $1",
				2, argtypes, values, NULL, false, SPI_OK_UPDATE);
	rb_spi_exec("UPDATE rollback.point p SET name = 'before:' || $2"
				" FROM rollback.migration m WHERE m.id = $1 AND p.id = m.point_id",
				2, argtypes, values, NULL, false, SPI_OK_UPDATE);
	rb_spi_finish_as_owner(&save);
	if (irreversible)
		ereport(WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s cannot be reverted", label),
				 errdetail("The transaction changed tracked rows before its first DDL statement, so no recovery point could be taken before it."),
				 errhint("Start data changes after the DDL, or call rollback.begin_migration() first.")));
	rb_set_xact_migration(id, false);
	return id;
}

/*
 * rollback.begin_migration(version text, description text, tool text)
 *		returns bigint
 */
Datum
rollback_begin_migration(PG_FUNCTION_ARGS)
{
	char	   *version;
	int64		id;

	if (!rb_is_admin())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to begin a migration"),
				 errdetail("Only superusers and members of rollback_admin may do this.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration version must not be null")));
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (version[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration version must not be empty")));
	if (strncmp(version, "auto:", 5) == 0 || strncmp(version, "revert:", 7) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration version \"%s\" uses a reserved prefix", version),
				 errdetail("Versions starting with \"auto:\" and \"revert:\" are given by the extension.")));
	if (rb_current_migration() != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a migration is already in progress in this session"),
				 errhint("Call rollback.end_migration() first.")));

	id = rb_start_migration(version,
							PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
							PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
							"migration", false, NIL, NULL);
	session_migration = id;
	session_begun_subid = GetCurrentSubTransactionId();
	/* held until end_migration()'s commit, its begin's abort, or the session's end */
	{
		LOCKTAG		tag;

		migration_locktag(&tag, id);
		(void) LockAcquire(&tag, ExclusiveLock, true, false);
	}
	hold_in_progress(true);
	rb_migration_record_xid();
	PG_RETURN_INT64(id);
}

/*
 * rollback.end_migration(): the session's migration is applied.  Its
 * session locks are released when this transaction commits (it is in
 * progress until then); if the transaction or the subtransaction aborts,
 * the session is in the migration again.
 */
Datum
rollback_end_migration(PG_FUNCTION_ARGS)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	PendingEnd *pe;

	if (session_migration == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no migration is in progress in this session"),
				 errhint("Call rollback.begin_migration() first.")));
	values[0] = Int64GetDatum(session_migration);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("UPDATE rollback.migration SET status = 'applied',"
				" applied_at = pg_catalog.clock_timestamp()"
				" WHERE id = $1 AND status = 'running'",
				1, argtypes, values, NULL, false, SPI_OK_UPDATE);
	rb_spi_finish_as_owner(&save);
	pe = MemoryContextAlloc(TopMemoryContext, sizeof(PendingEnd));
	pe->id = session_migration;
	pe->end_subid = GetCurrentSubTransactionId();
	pe->begun_subid = session_begun_subid;
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pending_ends = lcons(pe, pending_ends);
		MemoryContextSwitchTo(old);
	}
	session_migration = 0;
	session_begun_subid = InvalidSubTransactionId;
	PG_RETURN_VOID();
}

/*
 * rollback._wake_worker(): wake this database's worker when the current
 * transaction commits (the history trigger labelled a migration).
 */
Datum
rollback_wake_worker(PG_FUNCTION_ARGS)
{
	wake_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * rollback._current_migration(): the migration the current transaction's
 * writes belong to, or NULL (for the history table trigger).
 */
Datum
rollback_current_migration(PG_FUNCTION_ARGS)
{
	int64		id = rb_current_migration();

	if (id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/*
 * rb_is_registry_name: whether a table of this name is a migration tool's
 * history (or lock) table.  DDL on those does not start a migration.
 */
bool
rb_is_registry_name(const char *relname)
{
	return strcmp(relname, "flyway_schema_history") == 0 ||
		strcmp(relname, "databasechangelog") == 0 ||
		strcmp(relname, "databasechangeloglock") == 0 ||
		strcmp(relname, "schema_migrations") == 0;
}

/* rb_is_registry_rel: the same for a relation, or anything in Sqitch's registry. */
bool
rb_is_registry_rel(Oid relid)
{
	char	   *name = get_rel_name(relid);
	char	   *nsp;

	if (name == NULL)
		return false;
	if (rb_is_registry_name(name))
		return true;
	nsp = get_namespace_name(get_rel_namespace(relid));
	return nsp != NULL && strcmp(nsp, "sqitch") == 0;
}

/* rb_migration_init: settings, hooks and callbacks (from _PG_init). */
void
rb_migration_init(void)
{
	DefineCustomBoolVariable("rollback.auto_track_migrations",
							 "Makes a transaction that runs DDL on a tracked schema a migration.",
							 "Its label comes from the migration tool's history row when there is one.",
							 &rollback_auto_track,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = rb_migration_executor_start;
	RegisterXactCallback(migration_xact_callback, NULL);
	RegisterSubXactCallback(migration_subxact_callback, NULL);
}
