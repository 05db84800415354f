/*-------------------------------------------------------------------------
 *
 * cache.c
 *		Per-backend cache of what the capture trigger needs to know about a
 *		relation: whether it is tracked, its version store and the layout of
 *		that store, and the snapshot of its latest recovery point.
 *
 * Invalidation rule: whoever changes any of these facts for a relation
 * (track, untrack, a point created or dropped, a store altered) calls
 * rb_invalidate(relid), which queues a relcache invalidation.  Other
 * backends receive it at their next lock acquisition on the relation; a
 * writer must take ROW EXCLUSIVE on the table before its first change, and
 * point creation holds SHARE until commit, so no writer can change a row of
 * the table after a point commits without first dropping its stale entry.
 * Entries are reloaded with a fresh catalog snapshot, never the
 * transaction's, so a REPEATABLE READ writer sees the newest point too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/xid8.h"

#include "rollback.h"

static HTAB *relinfo_hash = NULL;

/* rb_relcache_callback: drop one entry, or all of them for InvalidOid. */
static void
rb_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	RbRelInfo  *entry;

	if (relinfo_hash == NULL)
		return;
	if (OidIsValid(relid))
	{
		entry = hash_search(relinfo_hash, &relid, HASH_FIND, NULL);
		if (entry)
			entry->valid = false;
		return;
	}
	hash_seq_init(&status, relinfo_hash);
	while ((entry = hash_seq_search(&status)) != NULL)
		entry->valid = false;
}

/* rb_cache_init: create the hash and register the invalidation callback. */
void
rb_cache_init(void)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RbRelInfo);
	ctl.hcxt = CacheMemoryContext;
	relinfo_hash = hash_create("rollback relation info", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(rb_relcache_callback, (Datum) 0);
}

/* rb_invalidate: make every backend reload its entry for the relation. */
void
rb_invalidate(Oid relid)
{
	/* a dropped relation's own drop has already sent the invalidation */
	if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		CacheInvalidateRelcacheByRelid(relid);
}

/*
 * load_store_layout: read the store's columns "c<attnum>" into the entry,
 * in store order.
 */
static void
load_store_layout(RbRelInfo *entry)
{
	Relation	store = RelationIdGetRelation(entry->store_relid);
	TupleDesc	desc;
	int			i;

	if (!RelationIsValid(store))
		elog(ERROR, "could not open version store %u", entry->store_relid);
	desc = RelationGetDescr(store);
	entry->nstorecols = desc->natts - RB_STORE_META;
	entry->store_attnums = MemoryContextAllocZero(CacheMemoryContext,
												  sizeof(AttrNumber) * Max(entry->nstorecols, 1));
	for (i = 0; i < entry->nstorecols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i + RB_STORE_META);

		if (att->attisdropped || NameStr(att->attname)[0] != 'c')
			entry->store_attnums[i] = InvalidAttrNumber;
		else
			entry->store_attnums[i] = (AttrNumber) atoi(NameStr(att->attname) + 1);
	}
	RelationClose(store);
}

/*
 * load_entry: fill an entry from the catalog, read with a fresh snapshot
 * as the extension's owner.
 */
static void
load_entry(RbRelInfo *entry)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	int64		point_id = 0;

	values[0] = ObjectIdGetDatum(entry->relid);
	PushActiveSnapshot(GetLatestSnapshot());
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT t.store::oid,"
				" (SELECT max(pt.point_id) FROM rollback.point_table pt"
				"   WHERE pt.relid = t.relid)"
				" FROM rollback.tracked_table t"
				" WHERE t.relid = $1 AND t.store IS NOT NULL",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d;

		entry->tracked = true;
		entry->store_relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1, &isnull));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			point_id = DatumGetInt64(d);
	}
	rb_spi_finish_as_owner(&save);
	PopActiveSnapshot();

	if (entry->tracked)
		load_store_layout(entry);
	if (point_id != 0)
		rb_point_load(point_id, CacheMemoryContext, &entry->snap);
}

/*
 * rb_relinfo: the cache entry of a relation, loaded if needed.  The result
 * stays valid until the next invalidation is processed, i.e. until the
 * caller acquires a new lock or increments the command counter.
 */
RbRelInfo *
rb_relinfo(Oid relid)
{
	RbRelInfo  *entry;
	bool		found;

	if (relinfo_hash == NULL)
		rb_cache_init();
	entry = hash_search(relinfo_hash, &relid, HASH_ENTER, &found);
	if (found && entry->valid)
		return entry;
	if (found)
	{
		if (entry->store_attnums)
			pfree(entry->store_attnums);
		if (entry->snap.xip)
			pfree(entry->snap.xip);
	}
	memset(entry, 0, sizeof(RbRelInfo));
	entry->relid = relid;

	/*
	 * Mark it valid before loading: an invalidation that arrives while we
	 * read the catalog clears the flag again, and the next call reloads.
	 */
	entry->valid = true;
	PG_TRY();
	{
		load_entry(entry);
	}
	PG_CATCH();
	{
		if (entry->store_attnums)
			pfree(entry->store_attnums);
		if (entry->snap.xip)
			pfree(entry->snap.xip);
		hash_search(relinfo_hash, &relid, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return entry;
}
