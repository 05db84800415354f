/*-------------------------------------------------------------------------
 *
 * timetravel.c
 *		Reading a table as of a recovery point k:
 *
 *		{ t in T : visible_k(t.xmin) }
 *		  plus { s in store(T) : s.point >= k and visible_k(s.xmin) }
 *
 *		and finding the live rows that k cannot see (what a restore deletes
 *		and what diff reports as new), skipping the pages that no write has
 *		touched since k.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "rewrite/rowsecurity.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"
#include "utils/xid8.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_as_of);
PG_FUNCTION_INFO_V1(rollback_images);
PG_FUNCTION_INFO_V1(rollback_new_tids);

/*
 * load_point_for: resolve a point name for reading a table's history: the
 * point must exist and cover every leaf.
 */
static void
load_point_for(const char *name, List *leaves, RbSnapshot *snap)
{
	int64		id = rb_point_lookup(name, false);
	List	   *covered = rb_point_tables(id);
	ListCell   *lc;

	foreach(lc, leaves)
		if (!list_member_oid(covered, lfirst_oid(lc)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("recovery point \"%s\" does not cover table \"%s\"",
							name, get_rel_name(lfirst_oid(lc)))));
	rb_point_load(id, CurrentMemoryContext, snap);
}

/*
 * check_history_access: the caller may read the table's history: SELECT on
 * the table, and no row-level security applying to it (the store has no
 * policies, so reading it would bypass them).
 */
static void
check_history_access(Oid relid)
{
	rb_check_select(relid);
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot read the history of table \"%s\" under row-level security",
						get_rel_name(relid)),
				 errhint("Read it as a role that bypasses row-level security, or as its owner.")));
}

/*
 * rb_lsn_usable: whether page LSNs tell which pages of the table were
 * written since the point: the point recorded a WAL position, and every
 * write to the table is WAL-logged (not unlogged, not wal_level = minimal,
 * where a table created or truncated in a transaction skips WAL).
 */
bool
rb_lsn_usable(Relation rel, const RbSnapshot *snap)
{
	return snap->lsn != InvalidXLogRecPtr && RelationNeedsWAL(rel) && XLogIsNeeded();
}

/*
 * rb_new_tids: addresses of the live tuples of a leaf that the point cannot
 * see, as seen by the active snapshot.  When the point recorded a WAL
 * position and the table is WAL-logged, a page whose LSN is not past that
 * position was not written since the point and is skipped unread: every
 * insert and every new tuple version sets its page's LSN past the position.
 * Caller holds a lock on rel.
 */
List *
rb_new_tids(Relation rel, const RbSnapshot *snap)
{
	Snapshot	snapshot = GetActiveSnapshot();
	BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
	BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);
	bool		use_lsn = rb_lsn_usable(rel, snap);
	List	   *result = NIL;
	BlockNumber blkno;

	for (blkno = 0; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;
		OffsetNumber off,
					maxoff;

		CHECK_FOR_INTERRUPTS();
		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		if (use_lsn && BufferGetLSNAtomic(buf) <= snap->lsn)
		{
			ReleaseBuffer(buf);
			continue;
		}
		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		maxoff = PageGetMaxOffsetNumber(page);
		for (off = FirstOffsetNumber; off <= maxoff; off++)
		{
			ItemId		lp = PageGetItemId(page, off);
			HeapTupleData tup;

			if (!ItemIdIsNormal(lp))
				continue;
			tup.t_data = (HeapTupleHeader) PageGetItem(page, lp);
			tup.t_len = ItemIdGetLength(lp);
			tup.t_tableOid = RelationGetRelid(rel);
			ItemPointerSet(&tup.t_self, blkno, off);
			if (!HeapTupleSatisfiesVisibility(&tup, snapshot, buf))
				continue;
			if (!rb_tuple_visible(snap, tup.t_data))
			{
				RbNewTuple *nt = palloc(sizeof(RbNewTuple));

				nt->tid = tup.t_self;
				nt->xmin = rb_full_xid(HeapTupleHeaderGetRawXmin(tup.t_data));
				result = lappend(result, nt);
			}
		}
		UnlockReleaseBuffer(buf);
	}
	FreeAccessStrategy(strategy);
	return result;
}

/*
 * put_images: append to the tuplestore the stored images of a leaf that
 * the point needs, converted to the result's row type.
 */
static void
put_images(Relation rel, const RbSnapshot *snap, Tuplestorestate *ts,
		   TupleDesc outdesc)
{
	Oid			store_relid = rb_store_of(RelationGetRelid(rel));
	Relation	store;
	TupleDesc	sdesc;
	TupleDesc	desc = RelationGetDescr(rel);
	TupleConversionMap *map = convert_tuples_by_name(desc, outdesc);
	AttrNumber *attnums;
	TableScanDesc scan;
	HeapTuple	stup;
	Datum	   *svalues;
	bool	   *snulls;
	Datum	   *values;
	bool	   *isnull;
	int			i;

	if (!OidIsValid(store_relid))
		return;
	store = table_open(store_relid, AccessShareLock);
	sdesc = RelationGetDescr(store);
	attnums = palloc(sizeof(AttrNumber) * sdesc->natts);
	for (i = RB_STORE_META; i < sdesc->natts; i++)
	{
		Form_pg_attribute satt = TupleDescAttr(sdesc, i);
		AttrNumber	a = satt->attisdropped ? 0 : atoi(NameStr(satt->attname) + 1);

		/* a column dropped from the table since the image was taken is left out */
		attnums[i] = (a > 0 && a <= desc->natts &&
					  !TupleDescAttr(desc, a - 1)->attisdropped) ? a : 0;
	}
	svalues = palloc(sizeof(Datum) * sdesc->natts);
	snulls = palloc(sizeof(bool) * sdesc->natts);
	values = palloc(sizeof(Datum) * desc->natts);
	isnull = palloc(sizeof(bool) * desc->natts);

	scan = table_beginscan(store, GetActiveSnapshot(), 0, NULL);
	while ((stup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		HeapTuple	tup;

		heap_deform_tuple(stup, sdesc, svalues, snulls);
		if (DatumGetInt64(svalues[0]) < snap->point_id ||
			!rb_xid_visible(snap, U64FromFullTransactionId(DatumGetFullTransactionId(svalues[1]))))
			continue;
		for (i = 0; i < desc->natts; i++)
		{
			values[i] = (Datum) 0;
			isnull[i] = true;
		}
		for (i = RB_STORE_META; i < sdesc->natts; i++)
			if (attnums[i] > 0)
			{
				values[attnums[i] - 1] = svalues[i];
				isnull[attnums[i] - 1] = snulls[i];
			}
		tup = heap_form_tuple(desc, values, isnull);
		if (map)
			tup = execute_attr_map_tuple(tup, map);
		tuplestore_puttuple(ts, tup);
		heap_freetuple(tup);
	}
	table_endscan(scan);
	table_close(store, AccessShareLock);
}

/*
 * put_visible_rows: append to the tuplestore the live rows of a leaf that
 * the point can see.
 */
static void
put_visible_rows(Relation rel, const RbSnapshot *snap, Tuplestorestate *ts,
				 TupleDesc outdesc)
{
	TupleConversionMap *map = convert_tuples_by_name(RelationGetDescr(rel), outdesc);
	TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	bool		use_lsn = rb_lsn_usable(rel, snap);
	HeapTuple	tup;

	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		/* a page not written since the point holds only rows it saw */
		if (!(use_lsn &&
			  BufferGetLSNAtomic(((HeapScanDesc) scan)->rs_cbuf) <= snap->lsn) &&
			!rb_tuple_visible(snap, tup->t_data))
			continue;
		if (map)
		{
			HeapTuple	conv = execute_attr_map_tuple(tup, map);

			tuplestore_puttuple(ts, conv);
			heap_freetuple(conv);
		}
		else
			tuplestore_puttuple(ts, tup);
	}
	table_endscan(scan);
}

/*
 * history_srf: the body of as_of() (with_live) and _images(): a
 * materialized set of rows of the argument's row type.
 */
static Datum
history_srf(FunctionCallInfo fcinfo, bool with_live)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtype = get_fn_expr_argtype(fcinfo->flinfo, 0);
	Oid			relid;
	char	   *pointname;
	List	   *leaves;
	ListCell   *lc;
	RbSnapshot	snap;
	TupleDesc	outdesc;
	Tuplestorestate *ts;
	MemoryContext oldcxt;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recovery point name must not be null")));
	relid = OidIsValid(argtype) ? typeidTypeRelid(argtype) : InvalidOid;
	if (!OidIsValid(relid) ||
		(get_rel_relkind(relid) != RELKIND_RELATION &&
		 get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("first argument must be a row of a table"),
				 errhint("Pass a typed NULL, as in rollback.as_of(NULL::my_schema.my_table, 'point').")));
	pointname = text_to_cstring(PG_GETARG_TEXT_PP(1));

	check_history_access(relid);
	leaves = rb_expand_leaves(relid, true);
	load_point_for(pointname, leaves, &snap);

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	outdesc = lookup_rowtype_tupdesc_copy(argtype, -1);
	ts = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(oldcxt);

	foreach(lc, leaves)
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);

		if (with_live)
			put_visible_rows(rel, &snap, ts, outdesc);
		put_images(rel, &snap, ts, outdesc);
		table_close(rel, NoLock);
	}

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = ts;
	rsinfo->setDesc = outdesc;
	return (Datum) 0;
}

/* rollback.as_of(anyelement, point text): the table as it was at the point. */
Datum
rollback_as_of(PG_FUNCTION_ARGS)
{
	return history_srf(fcinfo, true);
}

/* rollback._images(anyelement, point text): rows of the point that changed since. */
Datum
rollback_images(PG_FUNCTION_ARGS)
{
	return history_srf(fcinfo, false);
}

/*
 * rollback._new_tids(tbl regclass, point text): the live rows of a leaf
 * table that the point cannot see, as a tid array.
 */
Datum
rollback_new_tids(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	char	   *pointname = text_to_cstring(PG_GETARG_TEXT_PP(1));
	RbSnapshot	snap;
	Relation	rel;
	List	   *tids;
	Datum	   *elems;
	ListCell   *lc;
	int			i = 0;

	if (get_rel_relkind(relid) != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not an ordinary table or partition",
						get_rel_name(relid) ? get_rel_name(relid) : "?")));
	check_history_access(relid);
	load_point_for(pointname, rb_expand_leaves(relid, true), &snap);

	rel = table_open(relid, AccessShareLock);
	tids = rb_new_tids(rel, &snap);
	table_close(rel, NoLock);

	elems = palloc(sizeof(Datum) * Max(list_length(tids), 1));
	foreach(lc, tids)
		elems[i++] = PointerGetDatum(lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, i, TIDOID, sizeof(ItemPointerData),
										  false, TYPALIGN_SHORT));
}
