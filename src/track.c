/*-------------------------------------------------------------------------
 *
 * track.c
 *		Tracking tables: the version store and capture triggers of each
 *		tracked table, tracked schemas and partitioned tables (whose future
 *		tables and partitions are tracked by the event triggers here), and
 *		keeping a store's columns in step with its table.
 *
 * A store is rollback_store.s<table oid>: (_rb_point int8, _rb_xmin xid8,
 * c<attnum> ...), one column per column of the table, named by attribute
 * number so that renames need no work.  A dropped column's store column
 * stays: the images taken before the drop keep their values.  Stores are
 * members of the extension, so pg_dump leaves them out (their transaction
 * ids mean nothing in another cluster) and DROP EXTENSION removes them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "catalog/catalog.h"
#include "catalog/partition.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "storage/lmgr.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_track);
PG_FUNCTION_INFO_V1(rollback_untrack);
PG_FUNCTION_INFO_V1(rollback_track_schema);
PG_FUNCTION_INFO_V1(rollback_on_ddl);
PG_FUNCTION_INFO_V1(rollback_on_drop);
PG_FUNCTION_INFO_V1(rollback_on_rewrite);

/*
 * catalog_oid: run a one-value catalog query with an OID parameter as the
 * owner; InvalidOid when it returns no row or NULL.
 */
static Oid
catalog_oid(const char *sql, Oid arg)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	Oid			result = InvalidOid;

	values[0] = ObjectIdGetDatum(arg);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec(sql, 1, argtypes, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									  1, &isnull);

		if (!isnull)
			result = DatumGetObjectId(d);
	}
	rb_spi_finish_as_owner(&save);
	return result;
}

/* rb_is_tracked: whether the table (leaf or partitioned) is tracked. */
bool
rb_is_tracked(Oid relid)
{
	return OidIsValid(catalog_oid("SELECT relid::oid FROM rollback.tracked_table"
								  " WHERE relid = $1::regclass", relid));
}

/* rb_store_of: the version store of a tracked leaf table, or InvalidOid. */
Oid
rb_store_of(Oid relid)
{
	return catalog_oid("SELECT store::oid FROM rollback.tracked_table"
					   " WHERE relid = $1::regclass", relid);
}

/*
 * check_trackable: a clear error for everything that cannot be tracked:
 * missing relations, views and other non-tables, temporary tables, system
 * catalogs, the extension's own tables, other table access methods.
 */
static void
check_trackable(Oid relid)
{
	HeapTuple	tup;
	Form_pg_class cls;
	char	   *nsp;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	cls = (Form_pg_class) GETSTRUCT(tup);
	nsp = get_namespace_name(cls->relnamespace);

	if (cls->relkind != RELKIND_RELATION && cls->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", NameStr(cls->relname)),
				 errdetail("Only ordinary and partitioned tables can be tracked.")));
	if (cls->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track temporary table \"%s\"", NameStr(cls->relname))));
	if (IsCatalogNamespace(cls->relnamespace) || IsToastNamespace(cls->relnamespace) ||
		strcmp(nsp, "information_schema") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track system catalog \"%s\"", NameStr(cls->relname))));
	if (strcmp(nsp, "rollback") == 0 || strcmp(nsp, RB_STORE_SCHEMA) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track table \"%s\" of extension \"rollback\"",
						NameStr(cls->relname))));
	if (cls->relkind == RELKIND_RELATION && cls->relam != HEAP_TABLE_AM_OID)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track table \"%s\"", NameStr(cls->relname)),
				 errdetail("Only tables of the heap access method can be tracked.")));
	ReleaseSysCache(tup);
}

/*
 * rb_expand_leaves: the leaf tables behind a table: itself, or every leaf
 * partition of a partitioned table.  With must_be_tracked, each must have a
 * store.
 */
List *
rb_expand_leaves(Oid relid, bool must_be_tracked)
{
	char		relkind = get_rel_relkind(relid);
	List	   *leaves = NIL;
	ListCell   *lc;

	if (relkind == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (relkind == RELKIND_PARTITIONED_TABLE)
	{
		foreach(lc, find_all_inheritors(relid, AccessShareLock, NULL))
			if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_RELATION)
				leaves = lappend_oid(leaves, lfirst_oid(lc));
	}
	else if (relkind == RELKIND_RELATION)
		leaves = list_make1_oid(relid);
	else
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", get_rel_name(relid))));

	if (must_be_tracked)
		foreach(lc, leaves)
			if (!OidIsValid(rb_store_of(lfirst_oid(lc))))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("table \"%s\" is not tracked", get_rel_name(lfirst_oid(lc))),
						 errhint("Call rollback.track() on it first.")));
	return leaves;
}

/*
 * rb_table_list: the tracked leaf tables named by a regclass[] argument,
 * partitioned tables expanded, duplicates removed; an error for an empty
 * array, a NULL element or a table that is not tracked.
 */
List *
rb_table_list(ArrayType *arr)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			i;
	List	   *relids = NIL;

	deconstruct_array(arr, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	if (nelems == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table list must not be empty")));
	for (i = 0; i < nelems; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("table list must not contain nulls")));
		relids = list_concat_unique_oid(relids,
										rb_expand_leaves(DatumGetObjectId(elems[i]), true));
	}
	return relids;
}

/*
 * rb_column_type_sql: the store column type for a base column: the domain's
 * base type (so that a changed domain constraint cannot reject old images),
 * with the column's collation when it is not the type's default.  Kept
 * content (journal.c) uses it too.
 */
char *
rb_column_type_sql(Form_pg_attribute att)
{
	int32		typmod = att->atttypmod;
	Oid			basetype = getBaseTypeAndTypmod(att->atttypid, &typmod);
	char	   *sql = format_type_with_typemod(basetype, typmod);

	if (OidIsValid(att->attcollation) && att->attcollation != get_typcollation(basetype))
		sql = psprintf("%s COLLATE %s", sql, generate_collation_name(att->attcollation));
	return sql;
}

/*
 * mirror_missing: give each store column the missing value of its table
 * column (ADD COLUMN ... DEFAULT with a constant: the value the rows
 * written before the column was added have without storing it).  Runs
 * inside SPI as the owner.
 *
 * DROP COLUMN throws the table's missing value away, but those rows still
 * had it as long as the column lived: the capture takes it from the store
 * column for a dropped column such a row lacks (see form_image), so that
 * its image has the value a point older than the drop saw.  It also makes
 * images taken before the column was added read it, as those rows do in
 * the table.
 */
static void
mirror_missing(Oid relid, Oid store)
{
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];
	uint64		i;

	values[0] = ObjectIdGetDatum(relid);
	values[1] = ObjectIdGetDatum(store);
	rb_spi_exec("SELECT s.attname::pg_catalog.text, a.attmissingval::pg_catalog.text"
				" FROM pg_catalog.pg_attribute a"
				" JOIN pg_catalog.pg_attribute s ON s.attrelid = $2"
				"  AND s.attname = 'c' || a.attnum AND NOT s.attisdropped"
				" WHERE a.attrelid = $1 AND a.atthasmissing AND NOT a.attisdropped"
				" AND a.attmissingval IS NOT NULL"
				" AND a.attmissingval::pg_catalog.text IS DISTINCT FROM s.attmissingval::pg_catalog.text",
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		SetAttrMissing(store, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1),
					   SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
	if (SPI_processed > 0)
		CommandCounterIncrement();
}

/*
 * sync_store: make the store of a tracked table have a column for each of
 * the table's columns, of its current type, with its missing value
 * (mirror_missing).  Runs inside SPI as the owner.
 */
static void
sync_store(Oid relid, Oid store)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Relation	srel = table_open(store, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TupleDesc	sdesc = RelationGetDescr(srel);
	char	   *sname = rb_qualified_name(store);
	bool		has_points = rb_relinfo(relid)->snap.point_id != 0;
	StringInfoData cmd;
	bool		any = false;
	int			i;

	initStringInfo(&cmd);
	appendStringInfo(&cmd, "ALTER TABLE %s", sname);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char		colname[NAMEDATALEN];
		AttrNumber	sattno;

		if (att->attisdropped)
			continue;
		snprintf(colname, sizeof(colname), "c%d", att->attnum);
		sattno = get_attnum(store, colname);
		if (sattno == InvalidAttrNumber)
		{
			appendStringInfo(&cmd, "%s ADD COLUMN %s %s", any ? "," : "",
							 colname, rb_column_type_sql(att));
			any = true;
		}
		else
		{
			Form_pg_attribute satt = TupleDescAttr(sdesc, sattno - 1);
			int32		typmod = att->atttypmod;
			Oid			basetype = getBaseTypeAndTypmod(att->atttypid, &typmod);

			if (satt->atttypid != basetype || satt->atttypmod != typmod ||
				satt->attcollation != att->attcollation)
			{
				/*
				 * This runs as the extension's owner, so it must not call a
				 * cast function that a user wrote.  With points, the table
				 * change did not rewrite (rollback._on_rewrite refuses that),
				 * so the cast is a built-in relabel or length coercion.
				 * Without points the store holds no image (they are pruned
				 * with the last point): nothing to convert.
				 */
				appendStringInfo(&cmd, "%s ALTER COLUMN %s TYPE %s USING %s",
								 any ? "," : "", colname, rb_column_type_sql(att),
								 has_points ? psprintf("%s::%s", colname,
													   format_type_with_typemod(basetype, typmod)) : "NULL");
				any = true;
			}
		}
	}
	table_close(srel, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (any)
	{
		rb_internal_ddl(cmd.data);
		rb_invalidate(relid);
	}
	mirror_missing(relid, store);
}

/*
 * rb_renumber_store: a revert has just re-added a dropped column of a
 * tracked table; it was column oldnum before the drop, it is newnum now.
 * Runs inside SPI as the owner.
 *
 * The images keep the column's values in store column c<oldnum>: those
 * taken before the drop, and those taken since of rows written before it
 * (a dropped column's value stays in the tuple, and the capture copies
 * it).  No live column of the table has that number any more, so a
 * restore to an older point, which inserts those images, would bring the
 * column back NULL.  Rename c<oldnum> to c<newnum>, in place of the store
 * column the re-add has just created: only the rest of the undo ran
 * since, which writes no row, so that column holds no value.  New numbers
 * are never reused, so the rename cannot collide.
 */
void
rb_renumber_store(Oid relid, AttrNumber oldnum, AttrNumber newnum)
{
	Oid			store = rb_store_of(relid);
	char		oldname[NAMEDATALEN];
	char		newname[NAMEDATALEN];
	char	   *sname;

	if (!OidIsValid(store) || oldnum == newnum)
		return;
	snprintf(oldname, sizeof(oldname), "c%d", oldnum);
	snprintf(newname, sizeof(newname), "c%d", newnum);
	if (get_attnum(store, oldname) == InvalidAttrNumber)
		return;
	sname = rb_qualified_name(store);
	if (get_attnum(store, newname) != InvalidAttrNumber)
		rb_internal_ddl(psprintf("ALTER TABLE %s DROP COLUMN %s", sname, newname));
	rb_internal_ddl(psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", sname, oldname, newname));
	/* the column's type as it is now, should the store's differ */
	sync_store(relid, store);
	rb_invalidate(relid);
}

/* trigger_exists: whether the table has a trigger of that name. */
static bool
trigger_exists(Oid relid, const char *name)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(name);
	return rb_spi_exec("SELECT 1 FROM pg_catalog.pg_trigger"
					   " WHERE tgrelid = $1 AND tgname = $2::name",
					   2, argtypes, values, NULL, true, SPI_OK_SELECT) > 0;
}

/*
 * check_trigger_order: refuse to track a table with a BEFORE ROW UPDATE or
 * DELETE trigger that fires after the capture trigger (see ddl.c,
 * check_create_trigger).  Inside SPI.
 */
static void
check_trigger_order(Oid relid)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(RB_TRIGGER_ROW);
	/* tgtype bits: 1 row, 2 before, 8 delete, 16 update */
	rb_spi_exec("SELECT tgname FROM pg_catalog.pg_trigger"
				" WHERE tgrelid = $1 AND NOT tgisinternal"
				" AND tgname::text COLLATE \"C\" > $2 COLLATE \"C\""
				" AND tgtype & 3 = 3 AND tgtype & 24 <> 0 LIMIT 1",
				2, argtypes, values, NULL, true, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("BEFORE ROW trigger \"%s\" of table \"%s\" would fire after the capture trigger",
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
						get_rel_name(relid)),
				 errdetail("BEFORE triggers fire in name order, and a change cancelled after its capture would leave a wrong image."),
				 errhint("Rename the trigger to sort before \"%s\".", RB_TRIGGER_ROW)));
}

/*
 * track_leaf: give an ordinary table (or partition) its store and capture
 * triggers.  Returns false if it already had them.  Runs inside SPI as the
 * owner; the caller has checked rights.
 */
static bool
track_leaf(Oid relid, Oid parent)
{
	Relation	rel;
	TupleDesc	desc;
	StringInfoData sql;
	char	   *qname = rb_qualified_name(relid);
	char		storename[NAMEDATALEN];
	Oid			store;
	ObjectAddress storeaddr;
	ObjectAddress extaddr;
	Oid			argtypes[3] = {OIDOID, OIDOID, OIDOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			i;

	if (OidIsValid(rb_store_of(relid)))
		return false;
	check_trackable(relid);
	check_trigger_order(relid);

	snprintf(storename, sizeof(storename), "s%u", relid);
	rel = table_open(relid, ShareRowExclusiveLock);
	desc = RelationGetDescr(rel);
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s.%s (_rb_point pg_catalog.int8 NOT NULL,"
					 " _rb_xmin pg_catalog.xid8 NOT NULL",
					 RB_STORE_SCHEMA, storename);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		appendStringInfo(&sql, ", c%d %s", att->attnum, rb_column_type_sql(att));
	}
	appendStringInfoString(&sql, ")");
	table_close(rel, NoLock);

	rb_internal_ddl(sql.data);
	store = get_relname_relid(storename, rb_store_namespace());
	mirror_missing(relid, store);

	/* the store belongs to the extension: see the file header */
	ObjectAddressSet(storeaddr, RelationRelationId, store);
	ObjectAddressSet(extaddr, ExtensionRelationId, rb_extension_oid());
	recordDependencyOn(&storeaddr, &extaddr, DEPENDENCY_EXTENSION);

	/*
	 * A table restored from a dump keeps its capture triggers but not its
	 * store: replace them.
	 */
	resetStringInfo(&sql);
	if (trigger_exists(relid, RB_TRIGGER_ROW))
		appendStringInfo(&sql, "DROP TRIGGER " RB_TRIGGER_ROW " ON %s;", qname);
	if (trigger_exists(relid, RB_TRIGGER_TRUNCATE))
		appendStringInfo(&sql, "DROP TRIGGER " RB_TRIGGER_TRUNCATE " ON %s;", qname);
	appendStringInfo(&sql,
					 "CREATE TRIGGER " RB_TRIGGER_ROW " BEFORE UPDATE OR DELETE ON %s"
					 " FOR EACH ROW EXECUTE FUNCTION rollback._capture();"
					 "CREATE TRIGGER " RB_TRIGGER_TRUNCATE " BEFORE TRUNCATE ON %s"
					 " FOR EACH STATEMENT EXECUTE FUNCTION rollback._capture_truncate();"
					 "ALTER TABLE %s ENABLE ALWAYS TRIGGER " RB_TRIGGER_ROW ","
					 " ENABLE ALWAYS TRIGGER " RB_TRIGGER_TRUNCATE,
					 qname, qname, qname);
	rb_internal_ddl(sql.data);

	values[0] = ObjectIdGetDatum(relid);
	values[1] = ObjectIdGetDatum(store);
	values[2] = ObjectIdGetDatum(parent);
	if (!OidIsValid(parent))
		nulls[2] = 'n';
	rb_spi_exec("INSERT INTO rollback.tracked_table (relid, store, parent, tracked_by)"
				" VALUES ($1::regclass, $2::regclass, $3::regclass, session_user)",
				3, argtypes, values, nulls, false, SPI_OK_INSERT);
	rb_invalidate(relid);
	return true;
}

/*
 * track_relation: track a table, or a partitioned table and all its leaf
 * partitions.  parent is the tracked partitioned table it is tracked
 * through, if any.  Returns how many relations were newly tracked.  The
 * caller has checked rights.
 */
static int
track_relation(Oid relid, Oid parent)
{
	RbOwnerSave save;
	int			count = 0;

	check_trackable(relid);
	rb_spi_connect_as_owner(&save);
	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1];
		ListCell   *lc;

		values[0] = ObjectIdGetDatum(relid);
		count += rb_spi_exec("INSERT INTO rollback.tracked_table (relid, tracked_by)"
							 " VALUES ($1::regclass, session_user) ON CONFLICT DO NOTHING",
							 1, argtypes, values, NULL, false, SPI_OK_INSERT);
		foreach(lc, rb_expand_leaves(relid, false))
			count += track_leaf(lfirst_oid(lc), OidIsValid(parent) ? parent : relid) ? 1 : 0;
	}
	else
		count += track_leaf(relid, parent) ? 1 : 0;
	rb_spi_finish_as_owner(&save);
	return count;
}

/* rb_track_relation: track_relation for other modules (rights checked). */
int
rb_track_relation(Oid relid)
{
	CommandCounterIncrement();	/* see what another event trigger tracked */
	if (rb_is_tracked(relid))
		return 0;
	return track_relation(relid, InvalidOid);
}

/*
 * drop_store: drop a leaf's capture triggers and store.  Runs inside SPI as
 * the owner.  The store's membership in the extension is removed first, as
 * DROP refuses to drop a member by itself.
 */
static void
drop_store(Oid relid, Oid store, bool table_exists)
{
	if (table_exists)
	{
		char	   *qname = rb_qualified_name(relid);

		if (trigger_exists(relid, RB_TRIGGER_ROW))
			rb_internal_ddl(psprintf("DROP TRIGGER " RB_TRIGGER_ROW " ON %s", qname));
		if (trigger_exists(relid, RB_TRIGGER_TRUNCATE))
			rb_internal_ddl(psprintf("DROP TRIGGER " RB_TRIGGER_TRUNCATE " ON %s", qname));
	}
	if (OidIsValid(store) && get_rel_name(store) != NULL)
	{
		deleteDependencyRecordsForSpecific(RelationRelationId, store,
										   DEPENDENCY_EXTENSION,
										   ExtensionRelationId, rb_extension_oid());
		CommandCounterIncrement();
		rb_internal_ddl(psprintf("DROP TABLE %s", rb_qualified_name(store)));
	}
}

/*
 * forget_table: remove a table from the catalog: its points' entries (and
 * points left with no table), its row, its store.  Inside SPI, as owner.
 *
 * A point that goes on covering other tables is marked incomplete with
 * `why` (e.g. "table app.t was untracked"): a migration's revert refuses
 * such a point, since what the migration did to that table could no
 * longer be undone.
 */
static void
forget_table(Oid relid, Oid store, bool table_exists, const char *why)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];

	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(why);
	rb_spi_exec("UPDATE rollback.point p"
				" SET incomplete = concat_ws('; ', p.incomplete, $2)"
				" FROM rollback.point_table pt WHERE pt.point_id = p.id AND pt.relid = $1::regclass",
				2, argtypes, values, NULL, false, SPI_OK_UPDATE);
	rb_spi_exec("DELETE FROM rollback.point_table WHERE relid = $1::regclass",
				1, argtypes, values, NULL, false, SPI_OK_DELETE);
	rb_spi_exec("DELETE FROM rollback.point p WHERE NOT EXISTS"
				" (SELECT 1 FROM rollback.point_table pt WHERE pt.point_id = p.id)",
				0, NULL, NULL, NULL, false, SPI_OK_DELETE);
	rb_spi_exec("DELETE FROM rollback.tracked_table WHERE relid = $1::regclass",
				1, argtypes, values, NULL, false, SPI_OK_DELETE);
	drop_store(relid, store, table_exists);
	rb_invalidate(relid);
}

/* rollback.track(tbl regclass) */
Datum
rollback_track(PG_FUNCTION_ARGS)
{
	Oid			relid;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table must not be null")));
	relid = PG_GETARG_OID(0);
	check_trackable(relid);
	rb_check_admin(relid, "track");
	track_relation(relid, InvalidOid);
	PG_RETURN_VOID();
}

/* rollback.untrack(tbl regclass, force bool) */
Datum
rollback_untrack(PG_FUNCTION_ARGS)
{
	Oid			relid;
	bool		force;
	RbOwnerSave save;
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	List	   *leaves = NIL;
	List	   *stores = NIL;
	ListCell   *lc;
	ListCell   *lc2;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table and force must not be null")));
	relid = PG_GETARG_OID(0);
	force = PG_GETARG_BOOL(1);
	if (get_rel_relkind(relid) == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (!rb_is_tracked(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not tracked", get_rel_name(relid))));
	rb_check_admin(relid, "untrack");

	values[0] = ObjectIdGetDatum(relid);
	rb_spi_connect_as_owner(&save);

	/* the table itself and, for a partitioned table, the leaves tracked through it */
	rb_spi_exec("SELECT relid::oid, store::oid FROM rollback.tracked_table"
				" WHERE relid = $1::regclass OR parent = $1::regclass",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	leaves = rb_spi_oid_list(1, callercxt);
	stores = rb_spi_oid_list(2, callercxt);

	if (!force)
	{
		foreach(lc, leaves)
		{
			values[0] = ObjectIdGetDatum(lfirst_oid(lc));
			rb_spi_exec("SELECT p.name FROM rollback.point_table pt"
						" JOIN rollback.point p ON p.id = pt.point_id"
						" WHERE pt.relid = $1::regclass ORDER BY p.id LIMIT 1",
						1, argtypes, values, NULL, true, SPI_OK_SELECT);
			if (SPI_processed > 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_IN_USE),
						 errmsg("recovery point \"%s\" needs the history of table \"%s\"",
								SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
								get_rel_name(lfirst_oid(lc))),
						 errhint("Drop the recovery points that cover it, or call rollback.untrack() with force => true.")));
		}
	}

	forboth(lc, leaves, lc2, stores)
	{
		LockRelationOid(lfirst_oid(lc), ShareRowExclusiveLock);
		forget_table(lfirst_oid(lc), lfirst_oid(lc2), true,
					 psprintf("table %s was untracked", rb_qualified_name(lfirst_oid(lc))));
	}
	rb_spi_finish_as_owner(&save);
	PG_RETURN_VOID();
}

/* rollback.track_schema(sch name): returns how many tables were tracked now. */
Datum
rollback_track_schema(PG_FUNCTION_ARGS)
{
	char	   *nspname;
	Oid			nspid;
	RbOwnerSave save;
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			argtypes[1] = {NAMEOID};
	Datum		values[1];
	List	   *rels = NIL;
	ListCell   *lc;
	int			count = 0;
	bool		adopt = false;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("schema must not be null")));
	nspname = NameStr(*PG_GETARG_NAME(0));
	nspid = get_namespace_oid(nspname, true);
	if (!OidIsValid(nspid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"%s\" does not exist", nspname)));
	if (IsCatalogNamespace(nspid) || IsToastNamespace(nspid) ||
		isAnyTempNamespace(nspid) || strcmp(nspname, "information_schema") == 0 ||
		strcmp(nspname, "rollback") == 0 || strcmp(nspname, RB_STORE_SCHEMA) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot track schema \"%s\"", nspname)));
	if (!rb_is_admin() && !rb_namespace_ownercheck(nspid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to track schema \"%s\"", nspname),
				 errdetail("Only the schema's owner, superusers and members of rollback_admin may do this.")));

	values[0] = NameGetDatum(PG_GETARG_NAME(0));
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("INSERT INTO rollback.tracked_schema (nspname, tracked_by)"
				" VALUES ($1, session_user) ON CONFLICT DO NOTHING",
				1, argtypes, values, NULL, false, SPI_OK_INSERT);
	/* top-level tables: partitions come with their root */
	rb_spi_exec("SELECT c.oid FROM pg_catalog.pg_class c"
				" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
				" WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')"
				" AND c.relpersistence <> 't' AND NOT c.relispartition"
				" ORDER BY c.oid",
				1, argtypes, values, NULL, true, SPI_OK_SELECT);
	rels = rb_spi_oid_list(1, callercxt);
	rb_spi_finish_as_owner(&save);

	/*
	 * The migration tools' tables are left to _adopt_history, as when they
	 * are created later: it tracks the history tables, puts the labelling
	 * trigger on them, and leaves Liquibase's lock table alone (a revert
	 * must not bring back a lock row that says LOCKED).
	 */
	foreach(lc, rels)
	{
		rb_check_admin(lfirst_oid(lc), "track");
		if (rb_is_registry_rel(lfirst_oid(lc)))
			adopt = true;
		else
			count += track_relation(lfirst_oid(lc), InvalidOid);
	}
	if (adopt)
	{
		rb_spi_connect_as_owner(&save);
		rb_spi_exec("SELECT rollback._adopt_history()", 0, NULL, NULL, NULL, false,
					SPI_OK_SELECT);
		rb_spi_finish_as_owner(&save);
	}
	PG_RETURN_INT32(count);
}

/*
 * tracked_ancestor: the tracked partitioned table that this partition
 * belongs to, or InvalidOid.
 */
static Oid
tracked_ancestor(Oid relid)
{
	ListCell   *lc;

	if (!get_rel_relispartition(relid))
		return InvalidOid;
	foreach(lc, get_partition_ancestors(relid))
		if (rb_is_tracked(lfirst_oid(lc)))
			return lfirst_oid(lc);
	return InvalidOid;
}

/*
 * rollback._on_ddl(): ddl_command_end event trigger.  Tracks tables created
 * in tracked schemas and partitions created in or attached to tracked
 * partitioned tables, and keeps stores in step with altered tables.  It
 * acts as the owner without the caller's rights: it only extends tracking
 * that an authorized role set up.
 */
Datum
rollback_on_ddl(PG_FUNCTION_ARGS)
{
	RbOwnerSave save;
	List	   *objs = NIL;
	List	   *creates = NIL;
	ListCell   *lc;
	ListCell   *lc2;
	uint64		i;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("rollback._on_ddl() must be called as an event trigger")));
	if (rb_in_internal_ddl() || !OidIsValid(get_extension_oid("rollback", true)))
		PG_RETURN_NULL();

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT DISTINCT objid, command_tag LIKE 'CREATE%' OR command_tag = 'SELECT INTO'"
				" FROM pg_catalog.pg_event_trigger_ddl_commands()"
				" WHERE object_type = 'table' AND NOT in_extension",
				0, NULL, NULL, NULL, true, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);

		objs = lappend_oid(objs, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																SPI_tuptable->tupdesc, 1, &isnull)));
		creates = lappend_int(creates, DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
																  SPI_tuptable->tupdesc, 2, &isnull)));
		MemoryContextSwitchTo(oldcxt);
	}

	forboth(lc, objs, lc2, creates)
	{
		Oid			relid = lfirst_oid(lc);
		char		relkind = get_rel_relkind(relid);
		Oid			nsp = get_rel_namespace(relid);
		Oid			store;

		if ((relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE) ||
			get_rel_persistence(relid) == RELPERSISTENCE_TEMP ||
			nsp == rb_store_namespace() || nsp == get_namespace_oid("rollback", false))
			continue;

		/*
		 * ALTER TABLE on a partitioned table changes its partitions' columns
		 * too, and only the parent is reported: their stores follow.
		 */
		if (relkind == RELKIND_PARTITIONED_TABLE)
		{
			ListCell   *lc3;

			foreach(lc3, rb_expand_leaves(relid, false))
			{
				store = rb_store_of(lfirst_oid(lc3));
				if (OidIsValid(store))
					sync_store(lfirst_oid(lc3), store);
			}
		}

		store = rb_store_of(relid);
		if (OidIsValid(store))
		{
			sync_store(relid, store);
			continue;
		}

		if (lfirst_int(lc2) && rb_is_registry_rel(relid))
		{
			/* a migration tool's history table: track it, label from it */
			rb_spi_exec("SELECT rollback._adopt_history()", 0, NULL, NULL, NULL, false,
						SPI_OK_SELECT);
			continue;
		}
		if (rb_is_tracked(relid))
			track_relation(relid, InvalidOid);	/* new partitions of a tracked table */
		else if (OidIsValid(tracked_ancestor(relid)))
			track_relation(relid, tracked_ancestor(relid));
		else if (lfirst_int(lc2))
		{
			Oid			argtypes[1] = {OIDOID};
			Datum		values[1];

			values[0] = ObjectIdGetDatum(nsp);
			rb_spi_exec("SELECT 1 FROM rollback.tracked_schema s"
						" JOIN pg_catalog.pg_namespace n ON n.nspname = s.nspname"
						" WHERE n.oid = $1",
						1, argtypes, values, NULL, true, SPI_OK_SELECT);
			if (SPI_processed > 0)
				track_relation(relid, InvalidOid);
		}
	}
	rb_spi_finish_as_owner(&save);
	PG_RETURN_NULL();
}

/*
 * rollback._on_drop(): sql_drop event trigger.  Forgets dropped tracked
 * tables (their points' entries and stores) and dropped tracked schemas.
 */
Datum
rollback_on_drop(PG_FUNCTION_ARGS)
{
	RbOwnerSave save;
	MemoryContext callercxt = CurrentMemoryContext;
	List	   *rels = NIL;
	List	   *stores = NIL;
	List	   *whys = NIL;
	ListCell   *lc;
	ListCell   *lc2;
	ListCell   *lc3;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("rollback._on_drop() must be called as an event trigger")));
	if (rb_in_internal_ddl() || !OidIsValid(get_extension_oid("rollback", true)))
		PG_RETURN_NULL();

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("DELETE FROM rollback.tracked_schema s"
				" USING pg_catalog.pg_event_trigger_dropped_objects() d"
				" WHERE d.object_type = 'schema' AND d.object_name = s.nspname",
				0, NULL, NULL, NULL, false, SPI_OK_DELETE);
	rb_spi_exec("SELECT t.relid::oid, t.store::oid, 'table ' || d.object_identity || ' was dropped'"
				" FROM pg_catalog.pg_event_trigger_dropped_objects() d"
				" JOIN rollback.tracked_table t ON t.relid::oid = d.objid"
				" WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
				" AND d.objsubid = 0",
				0, NULL, NULL, NULL, true, SPI_OK_SELECT);
	rels = rb_spi_oid_list(1, callercxt);
	stores = rb_spi_oid_list(2, callercxt);
	whys = rb_spi_text_list(3, callercxt);
	forthree(lc, rels, lc2, stores, lc3, whys)
		forget_table(lfirst_oid(lc), lfirst_oid(lc2), false, lfirst(lc3));
	rb_spi_finish_as_owner(&save);
	PG_RETURN_NULL();
}

/*
 * rollback._on_rewrite(): table_rewrite event trigger.  An ALTER TABLE that
 * rewrites a table gives every row a new xmin, so no point could tell its
 * rows apart any more: refuse it while the table has points.
 */
Datum
rollback_on_rewrite(PG_FUNCTION_ARGS)
{
	Oid			relid;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("rollback._on_rewrite() must be called as an event trigger")));
	if (rb_in_internal_ddl() || !OidIsValid(get_extension_oid("rollback", true)))
		PG_RETURN_NULL();
	relid = DatumGetObjectId(DirectFunctionCall1(pg_event_trigger_table_rewrite_oid,
												 (Datum) 0));
	if (rb_relinfo(relid)->snap.point_id != 0 && rb_current_migration() != 0 &&
		rb_journal_preserved(rb_current_migration(), relid))
	{
		RbOwnerSave save;
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1];

		/*
		 * The migration kept the table's content as of its point, and a
		 * revert loads that back.  The points can no longer read this
		 * table's past: it leaves them.
		 */
		values[0] = ObjectIdGetDatum(relid);
		rb_spi_connect_as_owner(&save);
		rb_spi_exec("DELETE FROM rollback.point_table WHERE relid = $1::regclass",
					1, argtypes, values, NULL, false, SPI_OK_DELETE);
		rb_spi_finish_as_owner(&save);
		CommandCounterIncrement();
		rb_prune_store(relid);
		rb_invalidate(relid);
		PG_RETURN_NULL();
	}
	if (rb_relinfo(relid)->snap.point_id != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot rewrite tracked table \"%s\" while it has recovery points",
						get_rel_name(relid)),
				 errdetail("A rewrite gives every row a new transaction id, so the points could no longer tell old rows from new ones."),
				 errhint("Drop or purge the table's recovery points first.")));
	PG_RETURN_NULL();
}
