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
#include "access/visibilitymap.h"
#include "storage/freespace.h"
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

/* Free space worth entering in the free space map for a restore: 1/8 page. */
#define RB_ROOM_WORTH_NOTING	(BLCKSZ / 8)

/*
 * untouched_since: whether heap block blkno is, by the visibility map, known
 * not to have been written since the point: its all-visible bit is set,
 * and the map page holding that bit was last set (its LSN) no later than
 * the point.  Any insert, update or delete on a heap page clears the page's
 * bit, and setting a bit WAL-logs and stamps the map page, both under the
 * map page's lock: so a bit set at or before the point and still set means
 * a page unwritten since, without reading it.  *vmbuf keeps the map page
 * pinned between calls; *stale_vmblk remembers a map page found newer than
 * the point (its LSN only grows), to skip its lock from then on.
 */
static bool
untouched_since(Relation rel, const RbSnapshot *snap, BlockNumber blkno,
				Buffer *vmbuf, BlockNumber *stale_vmblk)
{
	uint8		status = visibilitymap_get_status(rel, blkno, vmbuf);
	XLogRecPtr	lsn;

	if (!(status & VISIBILITYMAP_ALL_VISIBLE) ||
		BufferGetBlockNumber(*vmbuf) == *stale_vmblk)
		return false;
	/* read the bit again with the map page's LSN, consistently */
	LockBuffer(*vmbuf, BUFFER_LOCK_SHARE);
	status = visibilitymap_get_status(rel, blkno, vmbuf);
	lsn = PageGetLSN(BufferGetPage(*vmbuf));
	LockBuffer(*vmbuf, BUFFER_LOCK_UNLOCK);
	if (lsn > snap->lsn)
	{
		*stale_vmblk = BufferGetBlockNumber(*vmbuf);
		return false;
	}
	return (status & VISIBILITYMAP_ALL_VISIBLE) != 0;
}

/*
 * rb_new_tids: addresses of the live tuples of a leaf that the point cannot
 * see, as seen by the active snapshot.  When the point recorded a WAL
 * position and the table is WAL-logged, pages that no write has touched
 * since the point are skipped: unread when the visibility map says so
 * (untouched_since), and after a look at the page's LSN otherwise (every
 * insert and every new tuple version sets its page's LSN past the
 * position).  So after a small change to a large table, only the pages
 * written since are read, as long as no VACUUM set their bits since.
 *
 * With make_room (a restore, about to put rows back), each page read is
 * pruned first when it is worth it (heap_page_prune_opt, as any read does),
 * and a page left with room is entered in the free space map, which VACUUM
 * alone would do: the rows put back then go into the pages their earlier
 * versions left, instead of new pages at the end of the table.
 * Caller holds a lock on rel.
 */
List *
rb_new_tids(Relation rel, const RbSnapshot *snap, bool make_room)
{
	Snapshot	snapshot = GetActiveSnapshot();
	BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
	BufferAccessStrategy strategy = GetAccessStrategy(BAS_BULKREAD);
	bool		use_lsn = rb_lsn_usable(rel, snap);
	Buffer		vmbuf = InvalidBuffer;
	BlockNumber stale_vmblk = InvalidBlockNumber;
	BlockNumber first_room = InvalidBlockNumber;
	BlockNumber last_room = InvalidBlockNumber;
	List	   *result = NIL;
	BlockNumber blkno;

	for (blkno = 0; blkno < nblocks; blkno++)
	{
		Buffer		buf;
		Page		page;
		Size		room;
		OffsetNumber off,
					maxoff;

		CHECK_FOR_INTERRUPTS();
		if (use_lsn && untouched_since(rel, snap, blkno, &vmbuf, &stale_vmblk))
			continue;
		buf = ReadBufferExtended(rel, MAIN_FORKNUM, blkno, RBM_NORMAL, strategy);
		if (use_lsn && BufferGetLSNAtomic(buf) <= snap->lsn)
		{
			ReleaseBuffer(buf);
			continue;
		}
		if (make_room)
			heap_page_prune_opt(rel, buf);
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
		room = make_room ? PageGetHeapFreeSpace(page) : 0;
		UnlockReleaseBuffer(buf);
		if (room >= RB_ROOM_WORTH_NOTING)
		{
			RecordPageWithFreeSpace(rel, blkno, room);
			if (first_room == InvalidBlockNumber)
				first_room = blkno;
			last_room = blkno;
		}
	}
	/* make the upper levels of the map see the room, as VACUUM does */
	if (first_room != InvalidBlockNumber)
		FreeSpaceMapVacuumRange(rel, first_room, last_room + 1);
	if (BufferIsValid(vmbuf))
		ReleaseBuffer(vmbuf);
	FreeAccessStrategy(strategy);
	return result;
}

/*
 * A scan of the stored images of a leaf that a point needs: the images of
 * points at or after it whose xmin it saw.
 */
struct RbImageScan
{
	const RbSnapshot *snap;
	Relation	store;
	TableScanDesc scan;
	Snapshot	snapshot;
	int			natts;			/* of the base table */
	AttrNumber *attnums;		/* per store column: base attnum, or 0 */
	Datum	   *svalues;
	bool	   *snulls;
};

/*
 * rb_images_begin: start a scan of the images the point needs of a leaf,
 * or return NULL when the table has no store.  The store is read with
 * "snapshot", which must be the one the caller reads the table with: an
 * image and the row it was taken from then never both show, or both hide.
 * The caller holds a lock on rel.
 */
RbImageScan *
rb_images_begin(Relation rel, const RbSnapshot *snap, Snapshot snapshot)
{
	Oid			store_relid = rb_store_of(RelationGetRelid(rel));
	TupleDesc	desc = RelationGetDescr(rel);
	TupleDesc	sdesc;
	RbImageScan *s;
	int			i;

	if (!OidIsValid(store_relid))
		return NULL;
	s = palloc0(sizeof(RbImageScan));
	s->snap = snap;
	s->store = table_open(store_relid, AccessShareLock);
	sdesc = RelationGetDescr(s->store);
	s->natts = desc->natts;
	s->attnums = palloc(sizeof(AttrNumber) * sdesc->natts);
	for (i = RB_STORE_META; i < sdesc->natts; i++)
	{
		Form_pg_attribute satt = TupleDescAttr(sdesc, i);
		AttrNumber	a = satt->attisdropped ? 0 : atoi(NameStr(satt->attname) + 1);

		/* a column dropped from the table since the image was taken is left out */
		s->attnums[i] = (a > 0 && a <= desc->natts &&
						 !TupleDescAttr(desc, a - 1)->attisdropped) ? a : 0;
	}
	s->svalues = palloc(sizeof(Datum) * sdesc->natts);
	s->snulls = palloc(sizeof(bool) * sdesc->natts);
	s->snapshot = RegisterSnapshot(snapshot);
	s->scan = table_beginscan(s->store, s->snapshot, 0, NULL);
	return s;
}

/*
 * rb_images_next: the next image, as the columns of the base table in
 * values/isnull (a column the image lacks is null).  By-reference values
 * point into the store's buffer: valid until the next call.  Returns false
 * at the end.
 */
bool
rb_images_next(RbImageScan *s, Datum *values, bool *isnull)
{
	TupleDesc	sdesc = RelationGetDescr(s->store);
	HeapTuple	stup;
	int			i;

	while ((stup = heap_getnext(s->scan, ForwardScanDirection)) != NULL)
	{
		heap_deform_tuple(stup, sdesc, s->svalues, s->snulls);
		if (DatumGetInt64(s->svalues[0]) < s->snap->point_id ||
			!rb_xid_visible(s->snap, U64FromFullTransactionId(DatumGetFullTransactionId(s->svalues[1]))))
			continue;
		for (i = 0; i < s->natts; i++)
		{
			values[i] = (Datum) 0;
			isnull[i] = true;
		}
		for (i = RB_STORE_META; i < sdesc->natts; i++)
			if (s->attnums[i] > 0)
			{
				values[s->attnums[i] - 1] = s->svalues[i];
				isnull[s->attnums[i] - 1] = s->snulls[i];
			}
		return true;
	}
	return false;
}

/* rb_images_end: end the scan. */
void
rb_images_end(RbImageScan *s)
{
	table_endscan(s->scan);
	UnregisterSnapshot(s->snapshot);
	table_close(s->store, AccessShareLock);
	pfree(s->attnums);
	pfree(s->svalues);
	pfree(s->snulls);
	pfree(s);
}

/*
 * rb_count_images: how many rows a restore of rel to the point would put
 * back (a dry run), read with the active snapshot.
 */
int64
rb_count_images(Relation rel, const RbSnapshot *snap)
{
	RbImageScan *scan = rb_images_begin(rel, snap, GetActiveSnapshot());
	Datum	   *values = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
	bool	   *isnull = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
	int64		count = 0;

	if (scan == NULL)
		return 0;
	while (rb_images_next(scan, values, isnull))
		count++;
	rb_images_end(scan);
	return count;
}

/*
 * put_images: append to the tuplestore the stored images of a leaf that
 * the point needs, converted to the result's row type.
 */
static void
put_images(Relation rel, const RbSnapshot *snap, Tuplestorestate *ts,
		   TupleDesc outdesc)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TupleConversionMap *map = convert_tuples_by_name(desc, outdesc);
	RbImageScan *scan = rb_images_begin(rel, snap, GetActiveSnapshot());
	Datum	   *values = palloc(sizeof(Datum) * desc->natts);
	bool	   *isnull = palloc(sizeof(bool) * desc->natts);

	if (scan == NULL)
		return;
	while (rb_images_next(scan, values, isnull))
	{
		HeapTuple	tup = heap_form_tuple(desc, values, isnull);

		if (map)
			tup = execute_attr_map_tuple(tup, map);
		tuplestore_puttuple(ts, tup);
		heap_freetuple(tup);
	}
	rb_images_end(scan);
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

	rb_check_materialize(rsinfo);
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
	tids = rb_new_tids(rel, &snap, false);
	table_close(rel, NoLock);

	elems = palloc(sizeof(Datum) * Max(list_length(tids), 1));
	foreach(lc, tids)
		elems[i++] = PointerGetDatum(lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, i, TIDOID, sizeof(ItemPointerData),
										  false, TYPALIGN_SHORT));
}
