/*-------------------------------------------------------------------------
 *
 * heaprestore.c
 *		Putting a table's rows back to a recovery point at the heap level.
 *
 * The live tuples that the point cannot see are deleted with heap_delete,
 * after their images are kept for the latest point (the one a restore takes
 * first, so that it can be undone); then the images the point needs are
 * read from the store and inserted with heap_multi_insert, their index
 * entries made by the executor's own machinery, as COPY FROM does.  No
 * statement is planned, no join pairs an image with a row, and no trigger
 * fires: the capture a trigger would do is done here, in batches.
 *
 * That is only right when nothing attached to the table expects the rows to
 * pass through the executor: rb_heap_restore_usable says when.  restore.c
 * runs SQL statements otherwise.  What an INSERT would check is checked
 * here too: NOT NULL and CHECK constraints, the partition constraint,
 * unique and exclusion constraints (by the index insertion), and that a
 * published table can publish the deletes.
 *
 * Locking: the caller holds a lock that keeps writers out (EXCLUSIVE or
 * stronger) for the whole restore, so the tuples found live stay live until
 * they are deleted here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "optimizer/plancat.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "rollback.h"

/* Rows per heap_multi_insert batch, and tids per delete batch. */
#define RB_RESTORE_BATCH	1000

/*
 * When the rows to put back reach 1 in RB_REINDEX_FRACTION of the table's
 * (estimated) rows, and at least RB_REINDEX_MIN, they go in without index
 * entries and the indexes are rebuilt once at the end.  On the benchmark's
 * 1M-row table with a bigint primary key (bench/README.md), one entry made
 * in place cost 2 to 5 us, more as the index filled with the entries of the
 * rows' other versions, and a rebuild 0.3 to 0.8 s, about 0.3 us per row
 * version left in the heap: the break-even is near 1 in 8.
 */
#define RB_REINDEX_FRACTION	8
#define RB_REINDEX_MIN		10000

/*
 * rb_heap_restore_usable: whether rb_heap_restore may restore this leaf.
 * Not when a trigger other than ours fires under session_replication_role
 * = replica (ENABLE ALWAYS or ENABLE REPLICA): it must see the rows go, and
 * come back, through the executor.  Not with stored generated columns,
 * which an INSERT computes again.  Not with a deferrable unique or
 * exclusion constraint, whose check an INSERT queues to the commit.  Not
 * for a table access method other than heap.
 */
bool
rb_heap_restore_usable(Relation rel)
{
	TriggerDesc *trigdesc = rel->trigdesc;
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	List	   *indexes;
	ListCell   *lc;
	bool		ok = true;
	int			i;

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
		rel->rd_tableam != GetHeapamTableAmRoutine())
		return false;
	if (constr != NULL && constr->has_generated_stored)
		return false;
	for (i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
	{
		Trigger    *t = &trigdesc->triggers[i];

		if (strcmp(t->tgname, RB_TRIGGER_ROW) == 0 ||
			strcmp(t->tgname, RB_TRIGGER_TRUNCATE) == 0)
			continue;
		if (t->tgenabled == TRIGGER_FIRES_ALWAYS ||
			t->tgenabled == TRIGGER_FIRES_ON_REPLICA)
			return false;
	}
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);

		if (!idx->rd_index->indimmediate)
			ok = false;
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	return ok;
}

/*
 * delete_new_rows: delete these live tuples of rel (RbNewTuple entries, in
 * block order), keeping first, for the latest point of the table, the image
 * of each one that point saw: the capture trigger's rule, in batches.
 */
static void
delete_new_rows(Relation rel, List *tids)
{
	RbRelInfo  *info = rb_relinfo(RelationGetRelid(rel));
	RbImageBatch *batch = NULL;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ListCell   *lc;
	ListCell   *from = list_head(tids);
	int			n = 0;

	if (info->tracked && info->snap.point_id != 0)
		batch = rb_image_batch_begin(rel, info);
	foreach(lc, tids)
	{
		RbNewTuple *nt = (RbNewTuple *) lfirst(lc);

		if (batch != NULL)
		{
			HeapTuple	tup;
			bool		shouldfree;

			if (!table_tuple_fetch_row_version(rel, &nt->tid, SnapshotAny, slot))
				elog(ERROR, "could not fetch tuple (%u,%u) of relation \"%s\"",
					 ItemPointerGetBlockNumber(&nt->tid),
					 ItemPointerGetOffsetNumber(&nt->tid),
					 RelationGetRelationName(rel));
			tup = ExecFetchSlotHeapTuple(slot, false, &shouldfree);
			if (rb_tuple_visible(&info->snap, tup->t_data))
				rb_image_batch_add(batch, tup);
			if (shouldfree)
				heap_freetuple(tup);
			ExecClearTuple(slot);
		}

		/* images first, then the rows they were taken from */
		if (++n == RB_RESTORE_BATCH || lnext(tids, lc) == NULL)
		{
			ListCell   *d;

			if (batch != NULL)
				rb_image_batch_flush(batch);
			for_each_cell(d, tids, from)
			{
				simple_heap_delete(rel, &((RbNewTuple *) lfirst(d))->tid);
				if (d == lc)
					break;
			}
			from = lnext(tids, lc);
			n = 0;
		}
	}
	if (batch != NULL)
		rb_image_batch_end(batch);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * insert_batch: insert the rows gathered in slots[0..n-1] and, with
 * indexing, make their index entries.  Each row has passed the table's
 * constraints.
 */
static void
insert_batch(ResultRelInfo *rri, EState *estate, TupleTableSlot **slots, int n,
			 BulkInsertState bistate, bool indexing)
{
	MemoryContext oldcxt;
	int			i;

	/* heap_multi_insert may leak: per-tuple memory */
	oldcxt = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
	heap_multi_insert(rri->ri_RelationDesc, slots, n, estate->es_output_cid, 0, bistate);
	MemoryContextSwitchTo(oldcxt);
	for (i = 0; i < n; i++)
	{
		if (indexing && rri->ri_NumIndices > 0)
			list_free(rb_insert_index_tuples(rri, slots[i], estate));
		ExecClearTuple(slots[i]);
		ResetPerTupleExprContext(estate);
	}
}

/* reindex_context: say why an index is being built, on an error. */
static void
reindex_context(void *arg)
{
	Relation	rel = (Relation) arg;

	errcontext("rebuilding the indexes of table \"%s\" after putting its rows back",
			   RelationGetRelationName(rel));
}

/*
 * insert_images: insert the images the point needs into rel, read with the
 * active snapshot.  Returns how many.  When they are many (RB_REINDEX_FRACTION
 * of the table), the rows go in without index entries and the table's
 * indexes are rebuilt at the end, which checks the unique and exclusion
 * constraints as the entries would have.  "expected" is how many the caller
 * expects (the rows it deleted: a row updated since the point is one deleted
 * and one put back), so that a large restore rebuilds from the start; past
 * the threshold it switches anyway.  The rebuilt indexes keep entries for
 * the rows deleted just before, as for any recently dead row: older
 * snapshots still find them.
 */
static int64
insert_images(Relation rel, const RbSnapshot *snap, int64 expected)
{
	RbImageScan *scan = rb_images_begin(rel, snap, GetActiveSnapshot());
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	BulkInsertState bistate;
	TupleDesc	desc;
	bool		check = RelationGetDescr(rel)->constr != NULL;
	bool		indexing = true;
	int64		reindex_at = PG_INT64_MAX;
	int64		count = 0;
	int			n = 0;
	int			i;

	if (scan == NULL)
		return 0;
	estate = CreateExecutorState();
	estate->es_output_cid = GetCurrentCommandId(true);
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	if (rri->ri_NumIndices > 0)
	{
		BlockNumber pages;
		double		tuples;
		double		allvisfrac;

		/* the planner's estimate: also right for a table never vacuumed */
		estimate_rel_size(rel, NULL, &pages, &tuples, &allvisfrac);
		reindex_at = Max((int64) (tuples / RB_REINDEX_FRACTION), RB_REINDEX_MIN);
		indexing = expected < reindex_at;
	}
	bistate = GetBulkInsertState();
	/* slots made when first needed, on a copy of the descriptor: unpinned */
	slots = palloc0(sizeof(TupleTableSlot *) * RB_RESTORE_BATCH);
	desc = CreateTupleDescCopy(RelationGetDescr(rel));

	for (;;)
	{
		TupleTableSlot *slot = slots[n];

		if (slot == NULL)
			slot = slots[n] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
		ExecClearTuple(slot);
		if (!rb_images_next(scan, slot->tts_values, slot->tts_isnull))
			break;
		ExecStoreVirtualTuple(slot);
		/* the values point into the store's buffer: copy them */
		ExecMaterializeSlot(slot);
		if (check)
			ExecConstraints(rri, slot, estate);
		if (rel->rd_rel->relispartition)
			ExecPartitionCheck(rri, slot, estate, true);
		count++;
		if (++n == RB_RESTORE_BATCH)
		{
			insert_batch(rri, estate, slots, n, bistate, indexing);
			n = 0;
			if (count >= reindex_at)
				indexing = false;
		}
	}
	if (n > 0)
		insert_batch(rri, estate, slots, n, bistate, indexing);
	rb_images_end(scan);

	for (i = 0; i < RB_RESTORE_BATCH && slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	if (!indexing)
	{
		ErrorContextCallback errcallback;

		errcallback.callback = reindex_context;
		errcallback.arg = rel;
		errcallback.previous = error_context_stack;
		error_context_stack = &errcallback;
		rb_reindex_table(RelationGetRelid(rel));
		error_context_stack = errcallback.previous;
	}
	return count;
}

/*
 * rb_heap_restore: restore a leaf to the point whose snapshot is snap;
 * *deleted and *restored get the rows deleted and inserted.  The caller
 * has checked rb_heap_restore_usable, holds the lock, and runs this as the
 * table's owner (index expressions and CHECK constraints run its code).
 */
void
rb_heap_restore(Relation rel, const RbSnapshot *snap, int64 *deleted,
				int64 *restored)
{
	List	   *tids;

	/* see what the restore's own transaction wrote so far */
	CommandCounterIncrement();
	PushActiveSnapshot(GetLatestSnapshot());
	tids = rb_new_tids(rel, snap, true);
	*deleted = list_length(tids);
	if (tids != NIL)
	{
		CheckCmdReplicaIdentity(rel, CMD_DELETE);
		/* as the capture trigger notes a DELETE */
		rb_note_write();
		delete_new_rows(rel, tids);
	}

	/*
	 * The images taken just above are of rows the point could not see: the
	 * scan below leaves them out, whatever the snapshot.
	 */
	*restored = insert_images(rel, snap, *deleted);
	PopActiveSnapshot();
	CommandCounterIncrement();
}
