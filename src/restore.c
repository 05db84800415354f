/*-------------------------------------------------------------------------
 *
 * restore.c
 *		Putting tables back to a recovery point k, in the caller's
 *		transaction:
 *
 *		1. lock the tables EXCLUSIVE (readers go on, writers wait);
 *		2. take a point "before restore to k", so the restore can itself be
 *		   undone (the deletes below are captured under it);
 *		3. per table, delete the live rows k cannot see, then insert the
 *		   stored images k needs, at the heap level (heaprestore.c) or, for
 *		   the tables that need the executor (rb_heap_restore_usable), with
 *		   SQL statements; either way under session_replication_role =
 *		   replica, so that user triggers and foreign key checks stay out of
 *		   the way of a state that was consistent when k was taken;
 *		4. set the tables' sequences back to their values at k, with ALTER
 *		   SEQUENCE ... RESTART, which is transactional like the rest.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_attribute.h"
#include "nodes/bitmapset.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_restore);

static char *pairing_sql(Oid relid);

/*
 * insert_columns: the column list for re-inserting images: every live
 * column of the table except generated columns, which the INSERT computes
 * again.
 */
static char *
insert_columns(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData cols;
	int			i;

	initStringInfo(&cols);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "",
						 quote_identifier(NameStr(att->attname)));
	}
	table_close(rel, AccessShareLock);
	return cols.data;
}

/*
 * restore_table: restore one leaf table to point k.  Returns the rows
 * deleted and restored (counted only, with dry_run).  At the heap level
 * (heaprestore.c) where nothing attached to the table needs the executor;
 * otherwise with SQL statements, whose images come through
 * rollback._images().  Either runs as the table's owner
 * (rb_become_table_owner).  The caller holds the lock and is connected to
 * SPI.
 */
static void
restore_table(Oid relid, const char *pointname, const RbSnapshot *snap,
			  bool dry_run, int64 *deleted, int64 *restored)
{
	char	   *qname = rb_qualified_name(relid);
	Relation	rel;
	List	   *tids;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *cols;
	RbOwnerSave save;

	rel = table_open(relid, NoLock);
	if (rel->rd_rel->relrowsecurity && rel->rd_rel->relforcerowsecurity)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot restore table \"%s\" under FORCE ROW LEVEL SECURITY",
						RelationGetRelationName(rel)),
				 errhint("Run ALTER TABLE ... NO FORCE ROW LEVEL SECURITY for the restore.")));
	if (!dry_run && rb_heap_restore_usable(rel))
	{
		rb_become_table_owner(relid, &save);
		rb_heap_restore(rel, snap, deleted, restored);
		rb_restore_user(&save);
		table_close(rel, NoLock);
		return;
	}
	PushActiveSnapshot(GetLatestSnapshot());
	tids = rb_new_tids(rel, snap, !dry_run);
	if (dry_run)
	{
		/* as the restore would run: the same errors */
		rb_become_table_owner(relid, &save);
		*restored = rb_count_images(rel, snap);
		rb_restore_user(&save);
	}
	PopActiveSnapshot();
	table_close(rel, NoLock);
	*deleted = list_length(tids);
	if (dry_run)
		return;

	values[0] = CStringGetTextDatum(pointname);
	rb_become_table_owner(relid, &save);
	{
		Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(tids), 1));
		ListCell   *lc;
		int			i = 0;
		Oid			types2[2] = {TIDARRAYOID, TEXTOID};
		Datum		values2[2];
		char	   *sql = tids != NIL ? pairing_sql(relid) : NULL;

		foreach(lc, tids)
			elems[i++] = PointerGetDatum(lfirst(lc));
		values2[0] = PointerGetDatum(construct_array(elems, i, TIDOID,
													 sizeof(ItemPointerData),
													 false, TYPALIGN_SHORT));
		values2[1] = values[0];

		if (sql != NULL)
		{
			HeapTuple	tup;
			TupleDesc	desc;
			bool		isnull;
			int64		ndel;
			int64		nupd;
			int64		nins;

			rb_spi_exec_latest(sql, 2, types2, values2, SPI_OK_SELECT);
			tup = SPI_tuptable->vals[0];
			desc = SPI_tuptable->tupdesc;
			ndel = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			nupd = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			nins = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));

			/* a row written over counts as one deleted and one restored */
			*deleted = ndel + nupd;
			*restored = nupd + nins;
			rb_restore_user(&save);
			return;
		}
		if (tids != NIL)
			*deleted = rb_spi_exec_latest(psprintf("DELETE FROM ONLY %s WHERE ctid = ANY ($1)", qname),
										  1, types2, values2, SPI_OK_DELETE);
	}

	cols = insert_columns(relid);
	*restored = rb_spi_exec_latest(psprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE"
											" SELECT %s FROM rollback._images(NULL::%s, $1) i",
											qname, cols, cols, qname),
								   1, argtypes, values, SPI_OK_INSERT);
	rb_restore_user(&save);
}

/*
 * pairing_sql: when a row that changed since the point can be written back
 * in place, the statement that does the whole table; NULL when it cannot.
 *
 * A row updated since the point has a new tuple and an image with the same
 * primary key.  Writing the image's values over the new tuple (an UPDATE,
 * often HOT) touches one heap page and no index, where DELETE plus INSERT
 * touches two heap pages and every index.  That needs a primary key to pair
 * them, no other unique or exclusion index (an UPDATE checks uniqueness row
 * by row, so values swapped between rows would collide midway), and no
 * GENERATED ALWAYS identity column outside the key (it cannot be SET).
 *
 * One statement, three parts on disjoint rows: delete the new rows without
 * an image (d), write images over the new rows with one (u), insert the
 * images without a row (n).  Their keys are disjoint too: an image's key
 * matches no row the point saw that is still there (the key was unique at
 * the point), so the parts cannot collide whatever order they run in.  It
 * returns the three counts.  $1 is the tid array, $2 the point's name.
 */
static char *
pairing_sql(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *qname = rb_qualified_name(relid);
	List	   *indexes = RelationGetIndexList(rel);
	Bitmapset  *keys = NULL;
	ListCell   *lc;
	StringInfoData keycond;
	StringInfoData keyret;
	StringInfoData keyu;
	StringInfoData setlist;
	StringInfoData vallist;
	char	   *cols;
	bool		ok = OidIsValid(rel->rd_pkindex);
	int			i;

	foreach(lc, indexes)
	{
		Relation	idx;

		if (!ok)
			break;
		idx = index_open(lfirst_oid(lc), AccessShareLock);
		if (lfirst_oid(lc) == rel->rd_pkindex)
		{
			for (i = 0; i < idx->rd_index->indnkeyatts; i++)
				keys = bms_add_member(keys, idx->rd_index->indkey.values[i]);
		}
		else if (idx->rd_index->indisunique || idx->rd_index->indisexclusion)
			ok = false;
		index_close(idx, AccessShareLock);
	}

	initStringInfo(&keycond);
	initStringInfo(&keyret);
	initStringInfo(&keyu);
	initStringInfo(&setlist);
	initStringInfo(&vallist);
	for (i = 0; ok && i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = quote_identifier(NameStr(att->attname));

		if (att->attisdropped || att->attgenerated)
			continue;
		if (bms_is_member(att->attnum, keys))
		{
			appendStringInfo(&keycond, "%sx.%s = i.%s", keycond.len ? " AND " : "",
							 name, name);
			appendStringInfo(&keyret, "%sx.%s", keyret.len ? ", " : "", name);
			appendStringInfo(&keyu, "%su.%s = i.%s", keyu.len ? " AND " : "",
							 name, name);
		}
		else if (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS)
			ok = false;
		else
		{
			appendStringInfo(&setlist, "%s%s", setlist.len ? ", " : "", name);
			appendStringInfo(&vallist, "%si.%s", vallist.len ? ", " : "", name);
		}
	}
	table_close(rel, AccessShareLock);
	if (!ok || setlist.len == 0)
		return NULL;

	cols = insert_columns(relid);
	return psprintf("WITH d AS (DELETE FROM ONLY %1$s x WHERE x.ctid = ANY ($1) AND NOT EXISTS"
					"   (SELECT 1 FROM rollback._images(NULL::%1$s, $2) i WHERE %2$s) RETURNING 1),"
					" u AS (UPDATE ONLY %1$s x SET (%3$s) = ROW(%4$s)"
					"   FROM rollback._images(NULL::%1$s, $2) i"
					"   WHERE x.ctid = ANY ($1) AND %2$s RETURNING %5$s),"
					" n AS (INSERT INTO %1$s (%6$s) OVERRIDING SYSTEM VALUE"
					"   SELECT %6$s FROM rollback._images(NULL::%1$s, $2) i"
					"   WHERE NOT EXISTS (SELECT 1 FROM u WHERE %7$s) RETURNING 1)"
					" SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM u),"
					" (SELECT count(*) FROM n)",
					qname, keycond.data, setlist.data, vallist.data, keyret.data,
					cols, keyu.data);
}

/*
 * rb_sequence_commands: the statements that set sequences back to the
 * values of a point_table.sequences value.  ALTER SEQUENCE ... RESTART
 * writes a new relation file, so, unlike setval, it is undone if the
 * transaction rolls back; a value that RESTART cannot express (the next
 * value would leave the sequence's range) falls back to setval.
 */
List *
rb_sequence_commands(const char *json)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	List	   *cmds = NIL;
	MemoryContext cxt = CurrentMemoryContext;
	uint64		i;

	if (json == NULL)
		return NIL;
	values[0] = CStringGetTextDatum(json);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT CASE WHEN n.next BETWEEN q.seqmin AND q.seqmax"
				"  THEN pg_catalog.format('ALTER SEQUENCE %s RESTART WITH %s', q.seqrelid::regclass, n.next)"
				"  ELSE pg_catalog.format('SELECT pg_catalog.setval(%L, %s, %s)', q.seqrelid::regclass,"
				"    s->>'last_value', s->>'is_called') END"
				" FROM pg_catalog.jsonb_array_elements($1::jsonb) s"
				" JOIN pg_catalog.pg_sequence q ON q.seqrelid = pg_catalog.to_regclass(s->>'seq'),"
				" LATERAL (SELECT (s->>'last_value')::numeric"
				"   + CASE WHEN (s->>'is_called')::bool THEN q.seqincrement ELSE 0 END AS next) n",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		cmds = lappend(cmds, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
		MemoryContextSwitchTo(old);
	}
	rb_spi_finish_as_owner(&save);
	return cmds;
}


/*
 * reset_sequences: set the sequences of a table back to their values at
 * the point.  Inside SPI, as the owner.
 */
static void
reset_sequences(int64 point_id, Oid relid)
{
	ListCell   *lc;

	foreach(lc, rb_sequence_commands(rb_point_sequences(point_id, relid)))
		rb_internal_ddl((char *) lfirst(lc));
}
/*
 * set_for_restore: set a setting until the restore's GUC nest level is
 * popped (session_replication_role needs superuser context; we are C).
 */
static void
set_for_restore(const char *name, const char *value)
{
	(void) set_config_option(name, value, PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * rb_restore_rows: restore the rows of these leaf tables (locked by the
 * caller) to point k, and with sequences their sequences; or, with dry_run,
 * only count.  Used by rollback.restore and by migration reverts.
 */
void
rb_restore_rows(int64 point_id, const char *pointname, const RbSnapshot *snap,
				Oid *oids, int ntables, bool dry_run, bool sequences,
				int64 *deleted, int64 *restored)
{
	RbOwnerSave save;
	int			nestlevel;
	int			i;

	nestlevel = NewGUCNestLevel();
	if (!dry_run)
		set_for_restore("session_replication_role", "replica");

	/*
	 * The row addresses are known: fetch them (a TID scan), never scan the
	 * table or an index for them.  The planner cannot see that: it takes
	 * rollback._images() for 1000 rows, however many it returns.  The
	 * disabled paths inflate costs past jit_above_cost: no JIT either.
	 */
	set_for_restore("enable_seqscan", "off");
	set_for_restore("enable_indexscan", "off");
	set_for_restore("enable_bitmapscan", "off");
	set_for_restore("jit", "off");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (i = 0; i < ntables; i++)
		restore_table(oids[i], pointname, snap, dry_run, &deleted[i], &restored[i]);
	rb_become_owner(&save);
	if (!dry_run && sequences)
		for (i = 0; i < ntables; i++)
			reset_sequences(point_id, oids[i]);
	rb_spi_finish_as_owner(&save);
	AtEOXact_GUC(true, nestlevel);
}

/*
 * rollback.restore(point text, tables regclass[], dry_run bool)
 *		returns table(tbl regclass, rows_deleted int8, rows_restored int8)
 */
Datum
rollback_restore(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *pointname;
	bool		dry_run;
	int64		point_id;
	List	   *covered;
	List	   *relids = NIL;
	Oid		   *oids;
	int			ntables;
	ListCell   *lc;
	RbSnapshot	snap;
	TupleDesc	tupdesc;
	Tuplestorestate *ts;
	MemoryContext oldcxt;
	int64	   *deleted;
	int64	   *restored;
	int			i = 0;

	rb_check_materialize(rsinfo);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("recovery point name must not be null")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dry_run must not be null")));
	pointname = text_to_cstring(PG_GETARG_TEXT_PP(0));
	dry_run = PG_GETARG_BOOL(2);
	point_id = rb_point_lookup(pointname, false);
	covered = rb_point_tables(point_id);

	if (PG_ARGISNULL(1))
		relids = covered;
	else
	{
		relids = rb_table_list(PG_GETARG_ARRAYTYPE_P(1));
		foreach(lc, relids)
			if (!list_member_oid(covered, lfirst_oid(lc)))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("recovery point \"%s\" does not cover table \"%s\"",
								pointname, get_rel_name(lfirst_oid(lc)))));
	}

	ntables = list_length(relids);
	oids = palloc(sizeof(Oid) * Max(ntables, 1));
	i = 0;
	foreach(lc, relids)
	{
		if (get_rel_relkind(lfirst_oid(lc)) == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("a table of recovery point \"%s\" no longer exists", pointname)));
		rb_check_admin(lfirst_oid(lc), "restore");
		oids[i++] = lfirst_oid(lc);
	}
	qsort(oids, ntables, sizeof(Oid), rb_cmp_oid);
	for (i = 0; i < ntables; i++)
		LockRelationOid(oids[i], dry_run ? AccessShareLock : ExclusiveLock);

	if (!rb_point_load(point_id, CurrentMemoryContext, &snap))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("recovery point \"%s\" does not exist", pointname)));

	if (!dry_run)
	{
		List	   *sorted = NIL;
		char	   *name;
		int			n = 1;

		for (i = 0; i < ntables; i++)
			sorted = lappend_oid(sorted, oids[i]);
		name = psprintf("before restore to %s", pointname);
		while (rb_point_lookup(name, true) != 0)
			name = psprintf("before restore to %s (%d)", pointname, ++n);
		rb_create_point_internal(name, sorted,
								 psprintf("taken by rollback.restore('%s')", pointname), false);
	}

	deleted = palloc0(sizeof(int64) * Max(ntables, 1));
	restored = palloc0(sizeof(int64) * Max(ntables, 1));
	rb_restore_rows(point_id, pointname, &snap, oids, ntables, dry_run, true,
					deleted, restored);

	oldcxt = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = CreateTupleDescCopy(tupdesc);
	ts = tuplestore_begin_heap(true, false, work_mem);
	for (i = 0; i < ntables; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = ObjectIdGetDatum(oids[i]);
		values[1] = Int64GetDatum(deleted[i]);
		values[2] = Int64GetDatum(restored[i]);
		tuplestore_putvalues(ts, tupdesc, values, nulls);
	}
	MemoryContextSwitchTo(oldcxt);

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = ts;
	rsinfo->setDesc = tupdesc;
	return (Datum) 0;
}
