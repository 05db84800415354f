/*-------------------------------------------------------------------------
 *
 * capture.c
 *		The capture triggers: copy-on-write of row images into the version
 *		store of a tracked table.
 *
 * The rule (DESIGN.md section 2): when a tuple is updated or deleted, and
 * its xmin is visible at the latest recovery point of its table, copy it
 * into the store as (latest point, xmin, image).  Otherwise copy nothing:
 * the tuple was written after that point, so what the point needs of this
 * row is already stored, or the row did not exist then.  Each tuple version
 * is therefore copied at most once.  INSERT needs no capture.
 *
 * The row trigger is a BEFORE ROW trigger: it sees the old tuple that the
 * executor has just locked, with its header, and costs no after-trigger
 * queue entry.  It is named so that it sorts after ordinary trigger names
 * and fires last among BEFORE triggers; a later BEFORE trigger that cancels
 * the change would leave an image of a row that did not change (see
 * docs/limits.md).  Both triggers are ENABLE ALWAYS, so they fire under
 * session_replication_role = replica too, as a restore needs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "access/xact.h"
#include "fmgr.h"
#include "storage/proc.h"
#include "storage/bufmgr.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/xid8.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_capture);
PG_FUNCTION_INFO_V1(rollback_capture_truncate);

/* The last tuple captured by this backend, to capture a tuple only once. */
static LocalTransactionId last_lxid = InvalidLocalTransactionId;
static CommandId last_cid = InvalidCommandId;
static Oid	last_relid = InvalidOid;
static ItemPointerData last_tid;

/* Images per heap_multi_insert batch when many rows are captured at once. */
#define RB_IMAGE_BATCH		1000

/*
 * form_image: build the store tuple for a base row: the point, the 64-bit
 * xmin, then the base columns the store keeps.  values/isnull are the base
 * row's deformed columns (natts of them, as desc has), hdr its header.
 *
 * A dropped column keeps its value in the rows written before the drop,
 * and that value is what a point older than the drop saw: it is copied
 * too.  A row written before the column was added has no value for it,
 * and had the column's missing value, which the drop threw away from the
 * table but the store column still has (see mirror_missing in track.c).
 */
static void
form_image(RbRelInfo *info, TupleDesc desc, Datum *values, bool *isnull,
		   HeapTupleHeader hdr, TupleDesc sdesc, Datum *svalues, bool *snulls)
{
	int			natts = desc->natts;
	int			i;

	svalues[0] = Int64GetDatum(info->snap.point_id);
	snulls[0] = false;
	svalues[1] = FullTransactionIdGetDatum(FullTransactionIdFromU64(rb_image_xid(hdr)));
	snulls[1] = false;
	for (i = 0; i < info->nstorecols; i++)
	{
		AttrNumber	attno = info->store_attnums[i];

		if (attno <= 0 || attno > natts)
		{
			svalues[i + RB_STORE_META] = (Datum) 0;
			snulls[i + RB_STORE_META] = true;
		}
		else if (attno > HeapTupleHeaderGetNatts(hdr) &&
				 TupleDescAttr(desc, attno - 1)->attisdropped)
			svalues[i + RB_STORE_META] = getmissingattr(sdesc, i + RB_STORE_META + 1,
														&snulls[i + RB_STORE_META]);
		else
		{
			svalues[i + RB_STORE_META] = values[attno - 1];
			snulls[i + RB_STORE_META] = isnull[attno - 1];
		}
	}
}

/*
 * rollback_capture: BEFORE ROW UPDATE OR DELETE trigger.  The hot path is a
 * hash lookup, a visibility test on the old tuple's header, and, on the
 * first change after a point, one heap insert into the store.
 */
Datum
rollback_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	oldtup;
	HeapTuple	rettup;
	RbRelInfo  *info;
	Relation	store;
	TupleTableSlot *slot;
	Datum	   *svalues;
	bool	   *snulls;
	HeapTuple	image;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("rollback._capture() must be a BEFORE ROW UPDATE OR DELETE trigger")));

	oldtup = trigdata->tg_trigtuple;
	rettup = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;

	rb_note_write();
	info = rb_relinfo(RelationGetRelid(trigdata->tg_relation));
	if (!info->tracked || info->snap.point_id == 0)
		return PointerGetDatum(rettup);
	if (!rb_tuple_visible(&info->snap, oldtup->t_data))
		return PointerGetDatum(rettup);

	/*
	 * An UPDATE that moves a row to another partition fires the BEFORE
	 * UPDATE and then the BEFORE DELETE triggers of the source partition
	 * for the same tuple, one right after the other: capture it once.
	 */
	if (last_lxid == RB_MY_LXID && last_cid == GetCurrentCommandId(false) &&
		last_relid == RelationGetRelid(trigdata->tg_relation) &&
		ItemPointerEquals(&last_tid, &oldtup->t_self))
		return PointerGetDatum(rettup);
	last_lxid = RB_MY_LXID;
	last_cid = GetCurrentCommandId(false);
	last_relid = RelationGetRelid(trigdata->tg_relation);
	last_tid = oldtup->t_self;

	/* First change of this tuple since the point saw it: keep its image. */
	slot = trigdata->tg_trigslot;
	slot_getallattrs(slot);
	store = table_open(info->store_relid, RowExclusiveLock);
	svalues = palloc(sizeof(Datum) * (info->nstorecols + RB_STORE_META));
	snulls = palloc(sizeof(bool) * (info->nstorecols + RB_STORE_META));
	form_image(info, slot->tts_tupleDescriptor, slot->tts_values, slot->tts_isnull,
			   oldtup->t_data, RelationGetDescr(store), svalues, snulls);
	image = heap_form_tuple(RelationGetDescr(store), svalues, snulls);
	simple_heap_insert(store, image);
	table_close(store, NoLock);
	heap_freetuple(image);
	pfree(svalues);
	pfree(snulls);

	return PointerGetDatum(rettup);
}

/*
 * A batch of images on their way into one table's store, written with
 * heap_multi_insert as COPY does: one WAL record per page instead of one
 * per row.  Used when many rows are captured at once: a TRUNCATE, and the
 * rows a restore removes (heaprestore.c).
 */
struct RbImageBatch
{
	Relation	rel;			/* the base table */
	RbRelInfo  *info;			/* its latest point, its store's layout */
	Relation	store;
	TupleDesc	sdesc;			/* a copy: slots need not pin it */
	TupleTableSlot **slots;
	int			nslots;
	BulkInsertState bistate;
	CommandId	cid;
	Datum	   *values;			/* a base row, deformed */
	bool	   *isnull;
};

/*
 * rb_image_batch_begin: start a batch for a tracked table whose latest point
 * is info->snap.  Opens the store; rb_image_batch_end closes it.
 */
RbImageBatch *
rb_image_batch_begin(Relation rel, RbRelInfo *info)
{
	RbImageBatch *b = palloc0(sizeof(RbImageBatch));

	b->rel = rel;
	b->info = info;
	b->store = table_open(info->store_relid, RowExclusiveLock);
	b->sdesc = CreateTupleDescCopy(RelationGetDescr(b->store));
	b->slots = palloc0(sizeof(TupleTableSlot *) * RB_IMAGE_BATCH);
	b->bistate = GetBulkInsertState();
	b->cid = GetCurrentCommandId(true);
	b->values = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
	b->isnull = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
	return b;
}

/*
 * rb_image_batch_flush: write the images gathered so far into the store.
 * Their values are copies (the tuples they came from may be gone), except
 * that an out-of-line TOAST value is still a pointer into the base table's
 * TOAST relation, which heap_multi_insert copies into the store's own: flush
 * before a removal of those tuples commits.
 */
void
rb_image_batch_flush(RbImageBatch *b)
{
	if (b->nslots > 0)
		heap_multi_insert(b->store, b->slots, b->nslots, b->cid, 0, b->bistate);
	b->nslots = 0;
}

/*
 * rb_image_batch_add: add the image of a tuple of the base table, which the
 * caller has found visible at the latest point.
 */
void
rb_image_batch_add(RbImageBatch *b, HeapTuple tup)
{
	TupleDesc	desc = RelationGetDescr(b->rel);
	TupleTableSlot *slot = b->slots[b->nslots];

	if (slot == NULL)
		slot = b->slots[b->nslots] = MakeSingleTupleTableSlot(b->sdesc, &TTSOpsHeapTuple);
	ExecClearTuple(slot);
	heap_deform_tuple(tup, desc, b->values, b->isnull);
	form_image(b->info, desc, b->values, b->isnull, tup->t_data,
			   RelationGetDescr(b->store), slot->tts_values, slot->tts_isnull);
	ExecStoreVirtualTuple(slot);
	/* the batch outlives the tuple's buffer pin: copy the values */
	ExecMaterializeSlot(slot);
	if (++b->nslots == RB_IMAGE_BATCH)
		rb_image_batch_flush(b);
}

/* rb_image_batch_end: flush what is left and close the store. */
void
rb_image_batch_end(RbImageBatch *b)
{
	int			i;

	rb_image_batch_flush(b);
	FreeBulkInsertState(b->bistate);
	for (i = 0; i < RB_IMAGE_BATCH && b->slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(b->slots[i]);
	table_close(b->store, NoLock);
	pfree(b->values);
	pfree(b->isnull);
	pfree(b->slots);
	pfree(b);
}

/*
 * rollback_capture_truncate: BEFORE TRUNCATE statement trigger.  Copies
 * every row the TRUNCATE removes that the latest point can see, in
 * multi-insert batches.  The table is locked ACCESS EXCLUSIVE by the
 * TRUNCATE, so a fresh snapshot sees exactly the rows it removes.
 */
Datum
rollback_capture_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	RbRelInfo  *info;
	RbImageBatch *batch;
	TableScanDesc scan;
	HeapTuple	tup;
	Snapshot	snapshot;
	bool		use_lsn;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("rollback._capture_truncate() must be a TRUNCATE trigger")));

	rb_note_write();
	rel = trigdata->tg_relation;
	info = rb_relinfo(RelationGetRelid(rel));
	if (!info->tracked || info->snap.point_id == 0)
		return PointerGetDatum(NULL);

	batch = rb_image_batch_begin(rel, info);
	use_lsn = rb_lsn_usable(rel, &info->snap);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		/* a page not written since the point holds only rows it saw */
		if (!(use_lsn &&
			  BufferGetLSNAtomic(((HeapScanDesc) scan)->rs_cbuf) <= info->snap.lsn) &&
			!rb_tuple_visible(&info->snap, tup->t_data))
			continue;
		rb_image_batch_add(batch, tup);
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	rb_image_batch_end(batch);

	return PointerGetDatum(NULL);
}
