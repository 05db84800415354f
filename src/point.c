/*-------------------------------------------------------------------------
 *
 * point.c
 *		Recovery points: creation (an MVCC snapshot, O(1) in table size),
 *		lookup, drop, purge, and pruning the row images nobody needs.
 *
 * Locking rule: a point is created under a SHARE lock on every table it
 * covers, held until the creating transaction ends.  SHARE conflicts with
 * the ROW EXCLUSIVE lock of every writer, so writers in flight finish
 * before the snapshot is taken (no committed tuple of these tables can lack
 * its pre-image), and writers that come after see the new point (cache.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_create_point);
PG_FUNCTION_INFO_V1(rollback_drop_point);
PG_FUNCTION_INFO_V1(rollback_purge);
PG_FUNCTION_INFO_V1(rollback_point_rows);
PG_FUNCTION_INFO_V1(rollback_point_bytes);

/*
 * Upper bound on the transaction id range scanned when the proc array
 * cannot list every running subtransaction (more than 64 in one backend).
 */
#define RB_MAX_XID_SCAN		(4 * 1024 * 1024)

/*
 * take_snapshot: the MVCC snapshot of a new point, widened to 64 bits.
 *
 * The in-progress list holds other backends' top-level transactions and
 * subtransactions, and this transaction's own ids: a proc array snapshot
 * leaves those out (a backend sees its own changes through the command
 * counter), but a point must not see changes made after it by its creator.
 * When subtransactions overflowed the proc array cache, the ids in
 * [xmin, xmax) that have not committed are found in the commit log.
 */
static void
take_snapshot(RbSnapshot *snap)
{
	Snapshot	s = GetLatestSnapshot();
	TransactionId top = GetTopTransactionIdIfAny();
	int			nown = RB_MY_SUBXID_COUNT();
	int			cap;
	int			n = 0;
	int			i;

	snap->xmin = rb_full_xid(s->xmin);
	snap->xmax = rb_full_xid(s->xmax);
	cap = s->xcnt + (s->suboverflowed ? 0 : s->subxcnt) + nown + 1;

	if (s->suboverflowed || RB_MY_SUBXID_OVERFLOWED())
	{
		uint64		range = snap->xmax - snap->xmin;
		uint64		x;

		if (range > RB_MAX_XID_SCAN)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot create a recovery point while %llu transactions may be running",
							(unsigned long long) range),
					 errdetail("A transaction with more than 64 subtransactions is running, and the oldest running transaction is too old to list the others."),
					 errhint("Retry when long-running transactions have ended.")));
		cap += (int) range;
		snap->xip = palloc(sizeof(uint64) * cap);
		for (x = snap->xmin; x < snap->xmax; x++)
		{
			TransactionId xid = XidFromFullTransactionId(FullTransactionIdFromU64(x));

			if (TransactionIdIsNormal(xid) && !TransactionIdDidCommit(xid))
				snap->xip[n++] = x;
		}
	}
	else
	{
		snap->xip = palloc(sizeof(uint64) * cap);
		for (i = 0; i < s->xcnt; i++)
			snap->xip[n++] = rb_full_xid(s->xip[i]);
		for (i = 0; i < s->subxcnt; i++)
			snap->xip[n++] = rb_full_xid(s->subxip[i]);
	}

	if (TransactionIdIsValid(top))
	{
		snap->xip[n++] = rb_full_xid(top);
		for (i = 0; i < nown && !RB_MY_SUBXID_OVERFLOWED(); i++)
			snap->xip[n++] = rb_full_xid(RB_MY_SUBXID(i));
	}

	/* sort and remove duplicates */
	qsort(snap->xip, n, sizeof(uint64), rb_cmp_u64);
	if (n > 1)
	{
		int			j = 0;

		for (i = 1; i < n; i++)
			if (snap->xip[i] != snap->xip[j])
				snap->xip[++j] = snap->xip[i];
		n = j + 1;
	}
	snap->nxip = n;

	/*
	 * Tuples written after the point sit on pages whose LSN is past this
	 * position; restore uses that to skip untouched pages.  If this
	 * transaction already wrote (it has an xid), its earlier inserts carry
	 * an id the point cannot see but may sit on older pages: record no
	 * position, so that restore scans whole tables.
	 */
	snap->lsn = TransactionIdIsValid(top) ? InvalidXLogRecPtr : GetXLogInsertRecPtr();
}

/*
 * rb_point_lookup: id of the named point, or 0 when missing_ok and there
 * is none.
 */
int64
rb_point_lookup(const char *name, bool missing_ok)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int64		id = 0;

	values[0] = CStringGetTextDatum(name);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT id FROM rollback.point WHERE name = $1",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;

		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	}
	rb_spi_finish_as_owner(&save);

	if (id == 0 && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("recovery point \"%s\" does not exist", name)));
	return id;
}

/*
 * rb_point_load: read a point's snapshot into *snap, allocating in cxt.
 * Reads with a fresh snapshot.  Returns false if there is no such point.
 */
bool
rb_point_load(int64 point_id, MemoryContext cxt, RbSnapshot *snap)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		found = false;

	values[0] = Int64GetDatum(point_id);
	PushActiveSnapshot(GetLatestSnapshot());
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT snap_xmin, snap_xmax, snap_xip, lsn"
				" FROM rollback.point WHERE id = $1",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		ArrayType  *arr;
		Datum	   *elems;
		int			nelems;
		int			i;

		snap->point_id = point_id;
		snap->xmin = U64FromFullTransactionId(DatumGetFullTransactionId(SPI_getbinval(tup, desc, 1, &isnull)));
		snap->xmax = U64FromFullTransactionId(DatumGetFullTransactionId(SPI_getbinval(tup, desc, 2, &isnull)));
		arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull));
		deconstruct_array(arr, XID8OID, sizeof(FullTransactionId), FLOAT8PASSBYVAL,
						  TYPALIGN_DOUBLE, &elems, NULL, &nelems);
		snap->nxip = nelems;
		snap->xip = MemoryContextAlloc(cxt, sizeof(uint64) * Max(nelems, 1));
		for (i = 0; i < nelems; i++)
			snap->xip[i] = U64FromFullTransactionId(DatumGetFullTransactionId(elems[i]));
		snap->lsn = DatumGetLSN(SPI_getbinval(tup, desc, 4, &isnull));
		found = true;
	}
	rb_spi_finish_as_owner(&save);
	PopActiveSnapshot();
	return found;
}

/* rb_point_tables: OIDs of the tables a point covers, in OID order. */
List *
rb_point_tables(int64 point_id)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	List	   *result = NIL;
	MemoryContext oldcxt = CurrentMemoryContext;

	values[0] = Int64GetDatum(point_id);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT relid::oid FROM rollback.point_table"
				" WHERE point_id = $1 ORDER BY relid::oid",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	result = rb_spi_oid_list(1, oldcxt);
	rb_spi_finish_as_owner(&save);
	return result;
}

/*
 * rb_point_sequences: the sequence values a point kept for a table (a
 * point_table.sequences value as text), or NULL.
 */
char *
rb_point_sequences(int64 point_id, Oid relid)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		values[2];
	char	   *result = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	values[0] = Int64GetDatum(point_id);
	values[1] = ObjectIdGetDatum(relid);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT sequences::text FROM rollback.point_table"
				" WHERE point_id = $1 AND relid = $2::regclass",
				2, argtypes, values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed == 1)
		result = MemoryContextStrdup(cxt, SPI_getvalue(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1));
	rb_spi_finish_as_owner(&save);
	return result;
}

/* rb_point_covers: whether the point covers the table. */
bool
rb_point_covers(int64 point_id, Oid relid)
{
	return list_member_oid(rb_point_tables(point_id), relid);
}

/*
 * sequences_json: the owned sequences of a table (serial and identity) and
 * their state, as a JSON array.  Must run inside SPI, as the owner.
 */
static char *
sequences_json(Oid relid)
{
	List	   *seqs = getOwnedSequences(relid);
	ListCell   *lc;
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, seqs)
	{
		Oid			seqid = lfirst_oid(lc);
		char	   *qname = rb_qualified_name(seqid);
		char	   *sql = psprintf("SELECT last_value::text, is_called FROM %s", qname);
		bool		isnull;

		rb_spi_exec(sql, 0, NULL, NULL, NULL, true, SPI_OK_SELECT);
		if (SPI_processed != 1)
			continue;
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		appendStringInfoString(&buf, "{\"seq\": ");
		escape_json(&buf, qname);
		appendStringInfo(&buf, ", \"last_value\": %s, \"is_called\": %s}",
						 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
						 DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 2, &isnull)) ? "true" : "false");
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/*
 * rb_create_point_internal: create a point over the given tracked leaf
 * tables (the caller has checked rights).  Takes the SHARE locks, the
 * snapshot and the sequence values, writes the catalog, and tells every
 * backend's capture cache.
 *
 * With for_migration, a migration tool's history tables are covered without
 * the SHARE lock (ACCESS SHARE only, against a concurrent DROP).  The tools
 * write them from a second session while the migration's session waits for
 * that session, a wait no deadlock check sees: Sqitch holds EXCLUSIVE on
 * sqitch.changes while psql runs the deploy script, and Flyway's main
 * connection inserts the history row while the migration's transaction is
 * still open, committing it only when the insert returns.  The SHARE lock
 * keeps a writer from changing a row between the snapshot and our commit
 * without an image; those sessions only insert history rows, which need
 * none (a row inserted after the snapshot is new to the point).
 */
int64
rb_create_point_internal(const char *name, List *relids, const char *comment,
						 bool for_migration)
{
	int			ntables = list_length(relids);
	Oid		   *oids;
	ListCell   *lc;
	int			i = 0;
	RbSnapshot	snap;
	Datum	   *xipd;
	RbOwnerSave save;
	int64		id;

	rb_check_no_prior_write("create a recovery point");
	if (rb_point_lookup(name, true) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("recovery point \"%s\" already exists", name)));

	oids = palloc(sizeof(Oid) * Max(ntables, 1));
	foreach(lc, relids)
		oids[i++] = lfirst_oid(lc);
	qsort(oids, ntables, sizeof(Oid), rb_cmp_oid);
	for (i = 0; i < ntables; i++)
	{
		if (!for_migration || !rb_is_registry_rel(oids[i]))
			LockRelationOid(oids[i], ShareLock);
		else if (!ConditionalLockRelationOid(oids[i], AccessShareLock))
			continue;			/* ACCESS EXCLUSIVE by the tool: covered unlocked */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(oids[i])) ||
			!rb_is_tracked(oids[i]))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("table with OID %u was dropped or untracked concurrently",
							oids[i])));
	}

	take_snapshot(&snap);

	xipd = palloc(sizeof(Datum) * Max(snap.nxip, 1));
	for (i = 0; i < snap.nxip; i++)
		xipd[i] = FullTransactionIdGetDatum(FullTransactionIdFromU64(snap.xip[i]));

	rb_spi_connect_as_owner(&save);
	{
		Oid			argtypes[8] = {TEXTOID, TEXTOID, XID8OID, XID8OID,
		XID8ARRAYOID, LSNOID, TEXTOID, TIMESTAMPTZOID};
		Datum		values[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
		bool		isnull;

		values[0] = CStringGetTextDatum(name);
		if (comment)
			values[1] = CStringGetTextDatum(comment);
		else
			nulls[1] = 'n';
		values[2] = FullTransactionIdGetDatum(FullTransactionIdFromU64(snap.xmin));
		values[3] = FullTransactionIdGetDatum(FullTransactionIdFromU64(snap.xmax));
		values[4] = PointerGetDatum(construct_array(xipd, snap.nxip, XID8OID,
													sizeof(FullTransactionId),
													FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[5] = LSNGetDatum(snap.lsn);
		values[6] = CStringGetTextDatum(GetUserNameFromId(save.userid, false));
		values[7] = TimestampTzGetDatum(GetCurrentTimestamp());
		rb_spi_exec("INSERT INTO rollback.point"
					" (name, comment, snap_xmin, snap_xmax, snap_xip, lsn, created_by, created_at)"
					" VALUES ($1, $2, $3, $4, $5, $6, $7::name, $8) RETURNING id",
					8, argtypes, values, nulls, false, SPI_OK_INSERT_RETURNING);
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	}
	for (i = 0; i < ntables; i++)
	{
		Oid			argtypes[3] = {INT8OID, OIDOID, TEXTOID};
		Datum		values[3];

		values[0] = Int64GetDatum(id);
		values[1] = ObjectIdGetDatum(oids[i]);
		values[2] = CStringGetTextDatum(sequences_json(oids[i]));
		rb_spi_exec("INSERT INTO rollback.point_table (point_id, relid, sequences)"
					" VALUES ($1, $2::oid::regclass, $3::jsonb)",
					3, argtypes, values, NULL, false, SPI_OK_INSERT);
	}
	rb_spi_finish_as_owner(&save);

	for (i = 0; i < ntables; i++)
		rb_invalidate(oids[i]);
	CommandCounterIncrement();
	return id;
}

/*
 * rb_prune_store: delete the images of a table that no remaining point
 * needs.  An image captured under point j is needed by the points i <= j
 * (time travel to i reads images with point >= i), so images below the
 * oldest remaining point of the table can go.  DELETE, not TRUNCATE: a
 * REPEATABLE READ reader may still be reading them.
 */
void
rb_prune_store(Oid relid)
{
	Oid			store = rb_store_of(relid);
	RbOwnerSave save;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	char	   *sql;

	if (!OidIsValid(store))
		return;
	values[0] = ObjectIdGetDatum(relid);
	sql = psprintf("DELETE FROM %s s WHERE s._rb_point < coalesce("
				   " (SELECT min(pt.point_id) FROM rollback.point_table pt"
				   "   WHERE pt.relid = $1::regclass), 9223372036854775807)",
				   rb_qualified_name(store));
	rb_spi_connect_as_owner(&save);
	rb_spi_exec(sql, 1, argtypes, values, NULL, false, SPI_OK_DELETE);
	rb_spi_finish_as_owner(&save);
}

/*
 * rb_drop_point_by_id: remove a point after checking the caller's rights on
 * each of its tables, then prune their stores.
 */
void
rb_drop_point_by_id(int64 id)
{
	List	   *tables = rb_point_tables(id);
	ListCell   *lc;
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	foreach(lc, tables)
		rb_check_admin(lfirst_oid(lc), "drop a recovery point on");

	values[0] = Int64GetDatum(id);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("DELETE FROM rollback.point WHERE id = $1",
				1, argtypes, values, NULL, false, SPI_OK_DELETE);
	rb_spi_finish_as_owner(&save);
	CommandCounterIncrement();

	foreach(lc, tables)
	{
		rb_prune_store(lfirst_oid(lc));
		rb_invalidate(lfirst_oid(lc));
	}
}

/*
 * rollback.create_point(name text, tables regclass[], comment text)
 * Returns the new point's id.
 */
Datum
rollback_create_point(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *comment = NULL;
	List	   *relids = NIL;
	ListCell   *lc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recovery point name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("recovery point name must not be empty")));
	if (!PG_ARGISNULL(2))
		comment = text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (PG_ARGISNULL(1))
	{
		RbOwnerSave save;
		MemoryContext oldcxt = CurrentMemoryContext;

		rb_spi_connect_as_owner(&save);
		rb_spi_exec("SELECT relid::oid FROM rollback.tracked_table"
					" WHERE store IS NOT NULL ORDER BY relid::oid",
					0, NULL, NULL, NULL, true, SPI_OK_SELECT);
		relids = rb_spi_oid_list(1, oldcxt);
		rb_spi_finish_as_owner(&save);
		if (relids == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no table is tracked"),
					 errhint("Call rollback.track() or rollback.track_schema() first.")));
	}
	else
		relids = rb_table_list(PG_GETARG_ARRAYTYPE_P(1));

	foreach(lc, relids)
		rb_check_admin(lfirst_oid(lc), "create a recovery point on");

	PG_RETURN_INT64(rb_create_point_internal(name, relids, comment, false));
}

/* rollback.drop_point(point text) */
Datum
rollback_drop_point(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recovery point name must not be null")));
	rb_drop_point_by_id(rb_point_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), false));
	PG_RETURN_VOID();
}

/*
 * rollback.purge(older_than interval): drop the points created more than
 * older_than ago; returns how many.
 */
Datum
rollback_purge(PG_FUNCTION_ARGS)
{
	Interval   *age;
	Interval	zero;
	RbOwnerSave save;
	Oid			argtypes[1] = {INTERVALOID};
	Datum		values[1];
	List	   *ids = NIL;
	ListCell   *lc;
	MemoryContext oldcxt = CurrentMemoryContext;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("age must not be null")));
	age = PG_GETARG_INTERVAL_P(0);
	memset(&zero, 0, sizeof(zero));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(age),
										  IntervalPGetDatum(&zero))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("age must not be negative")));

	values[0] = IntervalPGetDatum(age);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT id FROM rollback.point"
				" WHERE created_at < pg_catalog.now() - $1 ORDER BY id",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	ids = rb_spi_int8_list(1, oldcxt);
	rb_spi_finish_as_owner(&save);

	foreach(lc, ids)
		rb_drop_point_by_id(*(int64 *) lfirst(lc));
	PG_RETURN_INT64(list_length(ids));
}

/*
 * point_store_stat: sum over a point's tables of a per-store statistic:
 * the images captured since the point, or the store's size.
 */
static int64
point_store_stat(int64 point_id, bool bytes)
{
	List	   *tables = rb_point_tables(point_id);
	ListCell   *lc;
	RbOwnerSave save;
	int64		total = 0;

	rb_spi_connect_as_owner(&save);
	foreach(lc, tables)
	{
		Oid			store = rb_store_of(lfirst_oid(lc));
		char	   *sql;
		bool		isnull;
		Datum		d;

		if (!OidIsValid(store))
			continue;
		if (bytes)
			sql = psprintf("SELECT pg_catalog.pg_total_relation_size(%u)", store);
		else
			sql = psprintf("SELECT count(*) FROM %s WHERE _rb_point >= " INT64_FORMAT,
						   rb_qualified_name(store), point_id);
		rb_spi_exec(sql, 0, NULL, NULL, NULL, true, SPI_OK_SELECT);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			total += DatumGetInt64(d);
	}
	rb_spi_finish_as_owner(&save);
	return total;
}

/* rollback._point_rows(point_id): images captured since the point. */
Datum
rollback_point_rows(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(point_store_stat(PG_GETARG_INT64(0), false));
}

/* rollback._point_bytes(point_id): bytes of the stores of its tables. */
Datum
rollback_point_bytes(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(point_store_stat(PG_GETARG_INT64(0), true));
}
