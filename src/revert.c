/*-------------------------------------------------------------------------
 *
 * revert.c
 *		Reverting migrations, schema and data, in the caller's transaction
 *		(DESIGN.md section 4, steps 1 to 5):
 *
 *		1. pre-flight: the point is there, the stores are complete since
 *		   it, nothing irreversible; locks (ACCESS EXCLUSIVE on what the DDL
 *		   touched, EXCLUSIVE on the other tables), within lock_timeout;
 *		2. the revert is itself recorded as a migration ("revert:<version>",
 *		   point "before:revert:<version>"), so its own statements are
 *		   journaled and it can be reverted in turn;
 *		3. rows written since the point by transactions that are not the
 *		   migration's are copied to rollback.quarantine;
 *		4. tables whose content the migration kept, and tables it created,
 *		   are emptied; the journal's structural undo runs newest first;
 *		   rows are restored; kept content is loaded back; constraints and
 *		   indexes are re-created (the journal's "post" undo); sequences
 *		   are set back;
 *		5. statuses, an audit entry.
 *
 *		With dry_run, the same steps are listed, with their row counts,
 *		and nothing changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/xid8.h"
#include "catalog/namespace.h"
#include "access/relation.h"
#include "utils/timestamp.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_revert_migration);
PG_FUNCTION_INFO_V1(rollback_revert_to);

/* One journal row, as the revert needs it. */
typedef struct JEntry
{
	int64		seq;
	char	   *tag;
	List	   *pre;			/* C strings */
	List	   *post;
	char	   *readd;			/* jsonb text */
	List	   *relids;
	bool		creates;
	Oid			preserved;
	char	   *content;
	Oid			content_oid;
	char	   *sequences;
	int64		kept_point;		/* for content kept by a migration reverted
								 * before: that migration's point, or 0 */
} JEntry;

/* The steps, as they are listed. */
/*
 * What started the revert under way, for its audit entry: "manual" (a
 * call of revert_migration or revert_to), "check" or "scheduled" (the
 * worker, with the check that failed).  Set by rb_auto_revert only.
 */
static const char *revert_trigger = "manual";
static const char *revert_check = NULL;

typedef struct Steps
{
	Tuplestorestate *ts;
	TupleDesc	desc;
	int			n;
	MemoryContext cxt;
} Steps;

/* emit: one line of the result. */
static void
emit(Steps *st, const char *action, const char *detail, int64 rows, bool has_rows)
{
	Datum		values[4];
	bool		nulls[4] = {false, false, false, !has_rows};
	MemoryContext old = MemoryContextSwitchTo(st->cxt);

	values[0] = Int32GetDatum(++st->n);
	values[1] = CStringGetTextDatum(action);
	values[2] = CStringGetTextDatum(detail);
	values[3] = Int64GetDatum(rows);
	tuplestore_putvalues(st->ts, st->desc, values, nulls);
	MemoryContextSwitchTo(old);
}

/* text_list: a text[] value as a List of C strings. */
static List *
text_list(Datum d)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *result = NIL;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
		if (!nulls[i])
			result = lappend(result, TextDatumGetCString(elems[i]));
	return result;
}

/* oid_list: an oid[] value as a List. */
static List *
oid_list(Datum d)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	int			n;
	int			i;
	List	   *result = NIL;

	deconstruct_array(arr, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &elems, NULL, &n);
	for (i = 0; i < n; i++)
		result = lappend_oid(result, DatumGetObjectId(elems[i]));
	return result;
}

/* int8_array: migration ids as an int8[] Datum. */
static Datum
int8_array(List *ids)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(ids), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, ids)
		elems[n++] = Int64GetDatum(*(int64 *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* xid8_array: 64-bit transaction ids as an xid8[] Datum. */
static Datum
xid8_array(const uint64 *xids, int n)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		elems[i] = FullTransactionIdGetDatum(FullTransactionIdFromU64(xids[i]));
	return PointerGetDatum(construct_array(elems, n, XID8OID, sizeof(FullTransactionId),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * The rows of kept content (see preserve_leaf in journal.c) that a point
 * sees, as time travel reads them: a live row or an image captured under
 * the point or later, written by a transaction the point sees.  $1 is the
 * point's id, $2, $3 and $4 its snapshot (snap_params).
 */
#define CONTENT_AT_POINT \
	"(c._rb_point IS NULL OR c._rb_point >= $1) AND (c._rb_xmin < $2" \
	" OR (c._rb_xmin < $3 AND c._rb_xmin <> ALL ($4)))"

/*
 * snap_params: a point's id and snapshot as the first four parameters of a
 * statement over kept content (CONTENT_AT_POINT).
 */
static void
snap_params(const RbSnapshot *snap, Oid *argtypes, Datum *values)
{
	argtypes[0] = INT8OID;
	argtypes[1] = XID8OID;
	argtypes[2] = XID8OID;
	argtypes[3] = XID8ARRAYOID;
	values[0] = Int64GetDatum(snap->point_id);
	values[1] = FullTransactionIdGetDatum(FullTransactionIdFromU64(snap->xmin));
	values[2] = FullTransactionIdGetDatum(FullTransactionIdFromU64(snap->xmax));
	values[3] = xid8_array(snap->xip, snap->nxip);
}

/* preserved_content: the content of relid to load back, or NULL. */
static char *
preserved_content(List *preserved, Oid relid)
{
	ListCell   *lc;

	foreach(lc, preserved)
		if (((JEntry *) lfirst(lc))->preserved == relid)
			return ((JEntry *) lfirst(lc))->content;
	return NULL;
}

/* is_preserved: whether relid's content is loaded back. */
static bool
is_preserved(List *preserved, Oid relid)
{
	return preserved_content(preserved, relid) != NULL;
}

/* count_rows: SELECT count(*) of a relation, for dry runs. */
static int64
count_rows(const char *relname)
{
	RbOwnerSave save;
	bool		isnull;
	int64		n;

	rb_spi_connect_as_owner(&save);
	rb_spi_exec(psprintf("SELECT count(*) FROM ONLY %s", relname), 0, NULL, NULL, NULL, false,
				SPI_OK_SELECT);
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	rb_spi_finish_as_owner(&save);
	return n;
}

/*
 * run_as_owner: run one statement as the extension's owner, through the
 * hooks (not as internal DDL), so that the revert's journal records it.
 */
static int64
run_as_owner(const char *sql)
{
	RbOwnerSave save;
	int			rc;
	int64		n;

	sql = rb_undo_render(sql, true);
	rb_spi_connect_as_owner(&save);
	rc = SPI_execute(sql, false, 0);
	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	n = (int64) SPI_processed;
	rb_spi_finish_as_owner(&save);
	return n;
}

/*
 * run_rows_as_table_owner: a row statement on one table, as its owner,
 * with user triggers and foreign keys out of the way (as in restore).
 */
static int64
run_rows_as_table_owner(Oid relid, const char *sql, int nargs, Oid *argtypes, Datum *values,
						int expected)
{
	RbOwnerSave save;
	int			nestlevel = NewGUCNestLevel();
	int64		n;

	(void) set_config_option("session_replication_role", "replica", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rb_become_table_owner(relid, &save);
	n = rb_spi_exec_latest(sql, nargs, argtypes, values, expected);
	rb_restore_user(&save);
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
	return n;
}

/*
 * quarantine_table: copy to rollback.quarantine the live rows of a table
 * that the point cannot see and that none of the migration system's
 * transactions wrote.  Returns how many (only counted with dry_run).
 *
 * With content, the table's kept content: a row that is still there as it
 * was kept (same address, same writer) is left to quarantine_content,
 * which copies it with the columns the revert brings back.
 */
static int64
quarantine_table(Oid relid, const RbSnapshot *snap, uint64 *xids, int nxids,
				 int64 revert_id, int64 migration_id, const char *content, bool dry_run)
{
	Relation	rel;
	List	   *news;
	List	   *tids = NIL;
	ListCell   *lc;
	Datum	   *t;
	Datum	   *x;
	int			n = 0;
	RbOwnerSave save;
	Oid			argtypes[5] = {TIDARRAYOID, XID8ARRAYOID, INT8OID, INT8OID, OIDOID};
	Datum		values[5];
	char	   *from;
	int64		result;

	rel = table_open(relid, NoLock);
	PushActiveSnapshot(GetLatestSnapshot());
	news = rb_new_tids(rel, snap, false);
	PopActiveSnapshot();
	table_close(rel, NoLock);
	foreach(lc, news)
	{
		RbNewTuple *nt = lfirst(lc);

		if (bsearch(&nt->xmin, xids, nxids, sizeof(uint64), rb_cmp_u64) != NULL)
			continue;
		tids = lappend(tids, nt);
	}
	if (tids == NIL || (dry_run && content == NULL))
		return list_length(tids);

	t = palloc(sizeof(Datum) * list_length(tids));
	x = palloc(sizeof(Datum) * list_length(tids));
	foreach(lc, tids)
	{
		RbNewTuple *nt = lfirst(lc);

		t[n] = PointerGetDatum(&nt->tid);
		x[n] = FullTransactionIdGetDatum(FullTransactionIdFromU64(nt->xmin));
		n++;
	}
	values[0] = PointerGetDatum(construct_array(t, n, TIDOID, sizeof(ItemPointerData),
												false, TYPALIGN_SHORT));
	values[1] = PointerGetDatum(construct_array(x, n, XID8OID, sizeof(FullTransactionId),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = Int64GetDatum(revert_id);
	values[3] = Int64GetDatum(migration_id);
	values[4] = ObjectIdGetDatum(relid);
	from = psprintf(" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS u(tid, x)"
					" JOIN ONLY %s t ON t.ctid = u.tid%s",
					rb_qualified_name(relid),
					content == NULL ? "" :
					psprintf(" WHERE NOT EXISTS (SELECT 1 FROM %s c WHERE c._rb_point IS NULL"
							 "  AND c._rb_ctid = u.tid AND c._rb_xmin = u.x)", content));
	rb_spi_connect_as_owner(&save);
	if (dry_run)
	{
		bool		isnull;

		rb_spi_exec_latest(psprintf("SELECT count(*)%s", from), 5, argtypes, values, SPI_OK_SELECT);
		result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											 &isnull));
	}
	else
		result = rb_spi_exec_latest(psprintf("INSERT INTO rollback.quarantine"
											 " (revert_id, migration_id, tbl, relid, row_data, xid)"
											 " SELECT $3, $4, $5::regclass::text, $5, pg_catalog.to_jsonb(t), u.x%s",
											 from),
									5, argtypes, values, SPI_OK_INSERT);
	rb_spi_finish_as_owner(&save);
	return result;
}

/*
 * renumber_content: the undo has just re-added dropped columns (readd:
 * [{rel, num, name}], num the column's number before the drop); rename
 * column c<num> to c<number now> in every content kept of those tables.
 *
 * Kept content names its columns by attribute number, and a re-added
 * column gets a new number.  Content that an older migration kept is
 * loaded by a later revert (the next one, or this one with revert_to),
 * when the column's old number is long gone, so the renumbering is kept
 * with the content, in this transaction, rather than only in memory.
 * New numbers are never reused, so no rename can collide.
 */
static void
renumber_content(const char *readd)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	List	   *cmds = NIL;
	ListCell   *lc;
	uint64		i;

	values[0] = CStringGetTextDatum(readd);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT pg_catalog.format('ALTER TABLE %s RENAME COLUMN %I TO %I',"
				"  j.content, c.attname, 'c' || a.attnum)"
				" FROM pg_catalog.jsonb_array_elements($1::jsonb) r"
				" JOIN pg_catalog.pg_attribute a ON a.attrelid = (r->>'rel')::oid"
				"  AND a.attname = r->>'name' AND NOT a.attisdropped"
				" JOIN rollback.journal j ON j.preserved = a.attrelid"
				" JOIN pg_catalog.pg_attribute c ON c.attrelid = j.content"
				"  AND c.attname = 'c' || (r->>'num') AND NOT c.attisdropped",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		cmds = lappend(cmds, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	foreach(lc, cmds)
		rb_internal_ddl((char *) lfirst(lc));
	rb_spi_finish_as_owner(&save);
}

/*
 * renumber_stores: the undo has just re-added dropped columns (readd, as
 * for renumber_content); the version stores of those tables keep the
 * columns' values under their old numbers: move them to the new ones
 * (rb_renumber_store), so that a restore to a point older than the drop
 * brings the values back.  This revert's own rows are restored from those
 * images, and so are a later revert's (of an older migration).
 */
static void
renumber_stores(const char *readd)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	List	   *rels = NIL;
	List	   *oldnums = NIL;
	List	   *newnums = NIL;
	ListCell   *lc1;
	ListCell   *lc2;
	ListCell   *lc3;
	uint64		i;

	values[0] = CStringGetTextDatum(readd);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT a.attrelid, (r->>'num')::pg_catalog.int4, a.attnum::pg_catalog.int4"
				" FROM pg_catalog.jsonb_array_elements($1::jsonb) r"
				" JOIN pg_catalog.pg_attribute a ON a.attrelid = (r->>'rel')::oid"
				"  AND a.attname = r->>'name' AND NOT a.attisdropped",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		rels = lappend_oid(rels, DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull)));
		oldnums = lappend_int(oldnums, DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull)));
		newnums = lappend_int(newnums, DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull)));
	}
	forthree(lc1, rels, lc2, oldnums, lc3, newnums)
		rb_renumber_store(lfirst_oid(lc1), (AttrNumber) lfirst_int(lc2),
						  (AttrNumber) lfirst_int(lc3));
	rb_spi_finish_as_owner(&save);
}

/*
 * content_columns: the columns of a table's kept content (c<attnum>,
 * renumbered by renumber_content when a column was re-added since) that
 * map to a live column of the table of that number: the table's column
 * names in *cols, the content's as "c.<name> AS <column>" in *vals, or
 * "c.<name>" with bare.  Generated columns only with generated.
 */
static void
content_columns(Oid relid, Oid content_oid, bool generated, bool bare,
				StringInfo cols, StringInfo vals)
{
	Relation	crel;
	Relation	rel;
	TupleDesc	cdesc;
	TupleDesc	desc;
	int			i;

	crel = relation_open(content_oid, AccessShareLock);
	rel = table_open(relid, NoLock);
	cdesc = RelationGetDescr(crel);
	desc = RelationGetDescr(rel);
	for (i = 0; i < cdesc->natts; i++)
	{
		Form_pg_attribute catt = TupleDescAttr(cdesc, i);
		int			num;
		Form_pg_attribute att;

		if (catt->attisdropped || NameStr(catt->attname)[0] != 'c')
			continue;
		num = atoi(NameStr(catt->attname) + 1);
		if (num < 1 || num > desc->natts)
			continue;
		att = TupleDescAttr(desc, num - 1);
		if (att->attisdropped || (att->attgenerated && !generated))
			continue;
		appendStringInfo(cols, "%s%s", cols->len ? ", " : "",
						 quote_identifier(NameStr(att->attname)));
		appendStringInfo(vals, "%sc.%s", vals->len ? ", " : "",
						 quote_identifier(NameStr(catt->attname)));
		if (!bare)
			appendStringInfo(vals, " AS %s", quote_identifier(NameStr(att->attname)));
	}
	table_close(rel, NoLock);
	relation_close(crel, AccessShareLock);
}

/*
 * lend_content: the content is read by the table's owner now (the reload
 * runs as the owner), who may not be the owner the content was kept for
 * (OWNER TO since).  With undo NULL, grant it what it lacks, USAGE on
 * rollback_store and SELECT on the content, and return those privileges;
 * else revoke the ones undo lists.  Both within the revert's transaction.
 */
static List *
lend_content(Oid relid, Oid content_oid, List *undo)
{
	Oid			owner = rb_rel_owner(relid);
	const char *role;
	List	   *granted = NIL;
	RbOwnerSave save;
	ListCell   *lc;

	if (!OidIsValid(owner))
		return NIL;
	role = quote_identifier(GetUserNameFromId(owner, false));
	if (undo == NIL)
	{
		if (rb_namespace_aclcheck(rb_store_namespace(), owner, ACL_USAGE) != ACLCHECK_OK)
			granted = lappend(granted, psprintf("USAGE ON SCHEMA rollback_store"));
		if (pg_class_aclcheck(content_oid, owner, ACL_SELECT) != ACLCHECK_OK)
			granted = lappend(granted, psprintf("SELECT ON TABLE %s", rb_qualified_name(content_oid)));
	}
	rb_spi_connect_as_owner(&save);
	foreach(lc, undo == NIL ? granted : undo)
		rb_internal_ddl(psprintf(undo == NIL ? "GRANT %s TO %s" : "REVOKE %s FROM %s",
								 (char *) lfirst(lc), role));
	rb_spi_finish_as_owner(&save);
	return granted;
}

/*
 * reload_content: insert back the rows of a table's kept content that the
 * revert's point sees (CONTENT_AT_POINT), columns mapped by number
 * (content_columns).  The content may have been kept by a later migration
 * than the one whose point this is: it holds the table's history since the
 * points that covered it then.  Returns how many (only counted with
 * dry_run).
 */
static int64
reload_content(JEntry *e, const RbSnapshot *snap, bool dry_run)
{
	StringInfoData cols;
	StringInfoData vals;
	Oid			argtypes[4];
	Datum		values[4];
	List	   *lent;
	int64		n;

	snap_params(snap, argtypes, values);
	if (dry_run)
	{
		RbOwnerSave save;
		bool		isnull;
		int64		n;

		rb_spi_connect_as_owner(&save);
		rb_spi_exec(psprintf("SELECT count(*) FROM %s c WHERE " CONTENT_AT_POINT, e->content),
					4, argtypes, values, NULL, false, SPI_OK_SELECT);
		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		rb_spi_finish_as_owner(&save);
		return n;
	}
	initStringInfo(&cols);
	initStringInfo(&vals);
	content_columns(e->preserved, e->content_oid, false, true, &cols, &vals);
	lent = lend_content(e->preserved, e->content_oid, NULL);
	if (cols.len == 0)
		n = run_rows_as_table_owner(e->preserved,
									psprintf("INSERT INTO %s SELECT FROM %s c WHERE " CONTENT_AT_POINT,
											 rb_qualified_name(e->preserved), e->content),
									4, argtypes, values, SPI_OK_INSERT);
	else
		n = run_rows_as_table_owner(e->preserved,
									psprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s c"
											 " WHERE " CONTENT_AT_POINT,
											 rb_qualified_name(e->preserved), cols.data, vals.data,
											 e->content),
									4, argtypes, values, SPI_OK_INSERT);
	lend_content(e->preserved, e->content_oid, lent);
	return n;
}

/*
 * quarantine_content: copy to rollback.quarantine the rows of a table's
 * kept content that were live when it was kept, that the revert's point
 * cannot see and that none of the migration system's transactions wrote:
 * rows other sessions wrote since the point, which the revert does not
 * load back.  A rewrite gave the table's rows new writers, and a row the
 * revert reloaded is the revert's, so the live rows no longer tell them.
 * Content that a migration reverted before kept: its revert quarantined
 * the rows its own point could not see, only the others are left.  Run
 * once the columns are back, so that the rows have their names.  Returns
 * how many (only counted with dry_run).
 */
static int64
quarantine_content(JEntry *e, const RbSnapshot *snap, uint64 *xids, int nxids,
				   int64 revert_id, int64 migration_id, bool dry_run)
{
	RbOwnerSave save;
	StringInfoData cols;
	StringInfoData vals;
	Oid			argtypes[9];
	Datum		values[9];
	const char *where = " WHERE c._rb_point IS NULL AND c._rb_xmin <> ALL ($5)"
		" AND NOT (c._rb_xmin < $2 OR (c._rb_xmin < $3 AND c._rb_xmin <> ALL ($4)))"
		" AND NOT EXISTS (SELECT 1 FROM rollback.point p WHERE p.id = $9"
		"  AND NOT (c._rb_xmin < p.snap_xmin OR (c._rb_xmin < p.snap_xmax"
		"   AND c._rb_xmin <> ALL (p.snap_xip))))";
	int64		n;

	snap_params(snap, argtypes, values);
	argtypes[4] = XID8ARRAYOID;
	argtypes[5] = INT8OID;
	argtypes[6] = INT8OID;
	argtypes[7] = OIDOID;
	argtypes[8] = INT8OID;
	values[4] = xid8_array(xids, nxids);
	values[5] = Int64GetDatum(revert_id);
	values[6] = Int64GetDatum(migration_id);
	values[7] = ObjectIdGetDatum(e->preserved);
	values[8] = Int64GetDatum(e->kept_point);
	rb_spi_connect_as_owner(&save);
	if (dry_run)
	{
		bool		isnull;

		rb_spi_exec(psprintf("SELECT count(*) FROM %s c%s", e->content, where),
					9, argtypes, values, NULL, false, SPI_OK_SELECT);
		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	else
	{
		initStringInfo(&cols);
		initStringInfo(&vals);
		content_columns(e->preserved, e->content_oid, true, false, &cols, &vals);
		n = rb_spi_exec(psprintf("INSERT INTO rollback.quarantine"
								 " (revert_id, migration_id, tbl, relid, row_data, xid)"
								 " SELECT $6, $7, $8::regclass::text, $8, pg_catalog.to_jsonb(r), c._rb_xmin"
								 " FROM %s c CROSS JOIN LATERAL (SELECT %s) r%s",
								 e->content, vals.data, where),
						9, argtypes, values, NULL, false, SPI_OK_INSERT);
	}
	rb_spi_finish_as_owner(&save);
	return n;
}

/*
 * run_undo: one "undo" step per statement of a journal entry's undo list,
 * run as the extension's owner unless this is a dry run.  Returns how many.
 */
static int
run_undo(List *stmts, bool dry_run, Steps *st)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, stmts)
	{
		const char *sql = (const char *) lfirst(lc);

		/* cancelled or moved, see undoplan.c */
		if (sql == NULL)
			continue;
		/* bookkeeping of re-created relations is no step of the plan */
		if (strncmp(rb_undo_untagged(sql), "INSERT INTO rollback.relocated ", 31) != 0)
		{
			emit(st, "undo", rb_undo_render(sql, !dry_run), 0, false);
			n++;
		}
		if (!dry_run)
			run_as_owner(sql);
	}
	return n;
}

/*
 * revert: revert these migrations (newest first) to the point of the
 * oldest.  label names the revert ("revert:<version>").
 */
static void
revert(List *migs, const char *label, const char *first_version, bool dry_run,
	   const char *reason, Steps *st)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];
	MemoryContext cxt = CurrentMemoryContext;
	int64		base_point = 0;
	char	   *pointname = NULL;
	char	   *irreversible = NULL;
	char	   *incomplete = NULL;
	RbSnapshot	snap;
	uint64	   *xids;
	int			nxids;
	List	   *entries = NIL;
	List	   *ptables;
	List	   *created = NIL;
	List	   *preserved = NIL;
	List	   *ddlrels = NIL;
	List	   *all = NIL;
	List	   *waiting = NIL;
	ListCell   *lc;
	int64		revert_id = 0;
	int64		newest = *(int64 *) linitial(migs);
	int64		nquarantined = 0;
	int64		ndeleted = 0;
	int64		nrestored = 0;
	int64		nundo = 0;
	TimestampTz started = GetCurrentTimestamp();
	uint64		i;

	values[0] = int8_array(migs);
	rb_spi_connect_as_owner(&save);

	/* the point of the oldest migration, and anything irreversible */
	rb_spi_exec("SELECT m.point_id, p.name, (SELECT string_agg(x.version || ': ' || x.irreversible, '; ')"
				"  FROM rollback.migration x WHERE x.id = ANY ($1) AND x.irreversible IS NOT NULL),"
				" p.incomplete"
				" FROM rollback.migration m LEFT JOIN rollback.point p ON p.id = m.point_id"
				" WHERE m.id = (SELECT min(id) FROM pg_catalog.unnest($1) id)",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		if (!isnull)
			base_point = DatumGetInt64(d);
		pointname = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		irreversible = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		incomplete = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
		MemoryContextSwitchTo(old);
	}
	if (irreversible != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s cannot be reverted", first_version),
				 errdetail("It is irreversible: %s", irreversible)));
	if (base_point == 0 || pointname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot revert migration %s: its recovery point no longer exists",
						first_version),
				 errdetail("The point was dropped or purged, so the state before the migration is gone.")));
	if (incomplete != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot revert migration %s: its recovery point %s no longer covers every table",
						first_version, pointname),
				 errdetail("Since the point, %s.", incomplete),
				 errhint("What the migration did to that table cannot be undone; restore the other tables with rollback.restore() if that is what you want.")));

	/*
	 * The migration system's transactions: the migrations', and those of
	 * every migration and revert since the oldest of them.  A row a revert
	 * wrote is a row it brought back (the later migrations it reverted are
	 * ours too): not another session's, to quarantine.
	 */
	rb_spi_exec("SELECT DISTINCT xid::text FROM rollback.migration_xact"
				" WHERE migration_id >= (SELECT min(id) FROM pg_catalog.unnest($1) id)",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	nxids = (int) SPI_processed;
	xids = MemoryContextAlloc(cxt, sizeof(uint64) * Max(nxids, 1));
	for (i = 0; i < SPI_processed; i++)
		xids[i] = (uint64) strtoull(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1), NULL, 10);
	qsort(xids, nxids, sizeof(uint64), rb_cmp_u64);

	/* the journal, newest first */
	rb_spi_exec("SELECT seq, command_tag, undo_pre, undo_post, readd::text, relids,"
				" cardinality(created) > 0 AND holding IS NULL, preserved, content::text, sequences::text, content::oid"
				" FROM rollback.journal WHERE migration_id = ANY ($1) ORDER BY seq DESC",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		JEntry	   *e = palloc0(sizeof(JEntry));
		bool		isnull;
		Datum		d;

		e->seq = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		e->tag = SPI_getvalue(tup, desc, 2);
		e->pre = text_list(SPI_getbinval(tup, desc, 3, &isnull));
		e->post = text_list(SPI_getbinval(tup, desc, 4, &isnull));
		e->readd = SPI_getvalue(tup, desc, 5);
		e->relids = oid_list(SPI_getbinval(tup, desc, 6, &isnull));
		e->creates = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		d = SPI_getbinval(tup, desc, 8, &isnull);
		e->preserved = isnull ? InvalidOid : DatumGetObjectId(d);
		e->content = SPI_getvalue(tup, desc, 9);
		e->sequences = SPI_getvalue(tup, desc, 10);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		e->content_oid = isnull ? InvalidOid : DatumGetObjectId(d);
		entries = lappend(entries, e);
		if (e->creates)
			created = list_concat_unique_oid(created, e->relids);
		else if (!OidIsValid(e->preserved))
			ddlrels = list_concat_unique_oid(ddlrels, e->relids);
		MemoryContextSwitchTo(old);
	}

	/*
	 * Contents to load back: per table, the oldest kept since the oldest
	 * migration that holds the history of its point.  That is the one this
	 * migration kept, or, in a revert_to, the oldest of theirs; or one that
	 * a later migration kept, when it was reverted since (its revert loaded
	 * that content back, and rows and images taken since have lost what
	 * the rewrite or the dropped column took) or is reverted too (a rewrite
	 * left the older points without a history of the table).  Its
	 * sequences are the point's.
	 */
	{
		Oid			argtypes2[2] = {INT8ARRAYOID, INT8OID};
		Datum		values2[2];

		values2[0] = values[0];
		values2[1] = Int64GetDatum(base_point);
		rb_spi_exec("SELECT DISTINCT ON (j.preserved) j.preserved, j.content::text, j.content::oid,"
					"  (j.points->($2::text))::text,"
					"  CASE WHEN j.migration_id <> ALL ($1) THEN m.point_id END"
					" FROM rollback.journal j JOIN rollback.migration m ON m.id = j.migration_id"
					" WHERE j.preserved IS NOT NULL AND j.content IS NOT NULL AND j.points ? $2::text"
					" AND j.migration_id >= (SELECT min(id) FROM pg_catalog.unnest($1) id)"
					" AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = j.preserved)"
					" AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = j.content)"
					" ORDER BY j.preserved, j.seq",
					2, argtypes2, values2, NULL, false, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			MemoryContext old = MemoryContextSwitchTo(cxt);
			JEntry	   *e = palloc0(sizeof(JEntry));
			bool		isnull;
			Datum		d;

			e->preserved = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
			e->content = SPI_getvalue(tup, desc, 2);
			e->content_oid = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
			e->sequences = SPI_getvalue(tup, desc, 4);
			d = SPI_getbinval(tup, desc, 5, &isnull);
			e->kept_point = isnull ? 0 : DatumGetInt64(d);
			preserved = lappend(preserved, e);
			MemoryContextSwitchTo(old);
		}
	}
	rb_spi_finish_as_owner(&save);

	ptables = rb_point_tables(base_point);
	if (!rb_point_load(base_point, cxt, &snap))
		elog(ERROR, "recovery point %s vanished", pointname);

	/* pre-flight: the point's tables are all still captured */
	foreach(lc, ptables)
	{
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(lfirst_oid(lc))))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("cannot revert migration %s: a table of its point no longer exists",
							first_version)));
		if (!rb_is_tracked(lfirst_oid(lc)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot revert migration %s: table \"%s\" is no longer tracked",
							first_version, get_rel_name(lfirst_oid(lc))),
					 errdetail("Its history since the point is incomplete.")));
	}
	emit(st, "check", psprintf("%s: point %s present, stores complete, nothing irreversible",
							   label + strlen("revert:"), pointname), 0, false);

	/* locks, in OID order: ACCESS EXCLUSIVE where DDL ran, else EXCLUSIVE */
	all = list_concat_unique_oid(list_copy(ptables), ddlrels);
	all = list_concat_unique_oid(all, created);
	foreach(lc, preserved)
		all = list_append_unique_oid(all, ((JEntry *) lfirst(lc))->preserved);
	{
		int			n = 0;
		Oid		   *oids = palloc(sizeof(Oid) * Max(list_length(all), 1));
		List	   *kept = NIL;

		foreach(lc, all)
			if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(lfirst_oid(lc))))
				oids[n++] = lfirst_oid(lc);
		qsort(oids, n, sizeof(Oid), rb_cmp_oid);
		for (i = 0; i < (uint64) n; i++)
		{
			bool		ael = list_member_oid(ddlrels, oids[i]) ||
				list_member_oid(created, oids[i]) || is_preserved(preserved, oids[i]);

			if (!dry_run)
				LockRelationOid(oids[i], ael ? AccessExclusiveLock : ExclusiveLock);
			emit(st, "lock", psprintf("%s on %s", ael ? "ACCESS EXCLUSIVE" : "EXCLUSIVE",
									  rb_qualified_name(oids[i])), 0, false);
			kept = lappend_oid(kept, oids[i]);
		}
		all = kept;
	}

	/* the revert is a migration of its own, with its point */
	if (!dry_run)
	{
		revert_id = rb_start_migration(label, reason, "rollback", "revert", false, migs, NULL);
		rb_set_xact_migration(revert_id, true);
	}
	emit(st, "point", psprintf("before:%s, so that the revert can be reverted", label), 0, false);

	/* rows others wrote since the point */
	foreach(lc, all)
	{
		Oid			relid = lfirst_oid(lc);
		char		kind = get_rel_relkind(relid);
		int64		n;

		if (kind != RELKIND_RELATION || !rb_is_tracked(relid))
			continue;
		n = quarantine_table(relid, &snap, xids, nxids, revert_id, newest,
							 preserved_content(preserved, relid), dry_run);
		nquarantined += n;
		if (n > 0)
			emit(st, "quarantine", psprintf("%s: rows written by other transactions since the point, copied to rollback.quarantine",
											rb_qualified_name(relid)), n, true);
	}

	/* tables whose content comes back whole, and new tables, are emptied */
	foreach(lc, all)
	{
		Oid			relid = lfirst_oid(lc);
		bool		kept = is_preserved(preserved, relid);
		int64		n;

		if ((!kept && !list_member_oid(created, relid)) ||
			get_rel_relkind(relid) != RELKIND_RELATION)
			continue;
		if (dry_run)
			n = count_rows(rb_qualified_name(relid));
		else
			n = run_rows_as_table_owner(relid, psprintf("DELETE FROM ONLY %s", rb_qualified_name(relid)),
										0, NULL, NULL, SPI_OK_DELETE);
		ndeleted += n;
		emit(st, "empty", psprintf("%s: %s", rb_qualified_name(relid),
								   kept ? "delete every row; its content as of the point is loaded back below"
								   : "delete every row of a table the migration created"), n, true);
	}

	/*
	 * Structural undo, newest first.  What each entry re-creates once the
	 * rows are back (post) waits; an older entry's undo cancels what it
	 * drops again, and renames wait behind what they name (undoplan.c).
	 */
	{
		List	   *pres = NIL;
		List	   *posts = NIL;

		foreach(lc, entries)
		{
			pres = lappend(pres, ((JEntry *) lfirst(lc))->pre);
			posts = lappend(posts, ((JEntry *) lfirst(lc))->post);
		}
		rb_undo_cancel(pres, posts);
	}
	foreach(lc, entries)
	{
		JEntry	   *e = lfirst(lc);

		rb_undo_adjust(e->pre, &waiting);
		nundo += run_undo(e->pre, dry_run, st);
		waiting = list_concat(waiting, e->post);
		/* the columns it re-added have new numbers: content and images follow */
		if (!dry_run && e->readd != NULL && strcmp(e->readd, "[]") != 0)
		{
			renumber_content(e->readd);
			renumber_stores(e->readd);
		}
	}

	/* rows, from the stores */
	{
		int			n = 0;
		Oid		   *oids = palloc(sizeof(Oid) * Max(list_length(ptables), 1));
		int64	   *del;
		int64	   *res;
		int			k;

		foreach(lc, ptables)
			if (!is_preserved(preserved, lfirst_oid(lc)))
				oids[n++] = lfirst_oid(lc);
		del = palloc0(sizeof(int64) * Max(n, 1));
		res = palloc0(sizeof(int64) * Max(n, 1));
		rb_restore_rows(base_point, pointname, &snap, oids, n, dry_run, true, del, res);
		for (k = 0; k < n; k++)
		{
			ndeleted += del[k];
			nrestored += res[k];
			if (del[k] + res[k] > 0)
				emit(st, "restore", psprintf("%s: " INT64_FORMAT " rows deleted, " INT64_FORMAT " restored as of %s",
											 rb_qualified_name(oids[k]), del[k], res[k], pointname),
					 del[k] + res[k], true);
		}
	}

	/*
	 * The sequences of those tables were set back with their rows (by
	 * rb_restore_rows); list them here, in a dry run and in a revert alike.
	 */
	foreach(lc, ptables)
	{
		ListCell   *lc2;

		if (is_preserved(preserved, lfirst_oid(lc)))
			continue;
		foreach(lc2, rb_sequence_commands(rb_point_sequences(base_point, lfirst_oid(lc))))
			emit(st, "sequence", (char *) lfirst(lc2), 0, false);
	}

	/* kept content back, after the rows of it that others wrote */
	foreach(lc, preserved)
	{
		JEntry	   *e = lfirst(lc);
		int64		n;

		n = quarantine_content(e, &snap, xids, nxids, revert_id, newest, dry_run);
		nquarantined += n;
		if (n > 0)
			emit(st, "quarantine", psprintf("%s: rows written by other transactions since the point, kept in %s, copied to rollback.quarantine",
											rb_qualified_name(e->preserved), e->content), n, true);
		n = reload_content(e, &snap, dry_run);
		nrestored += n;
		emit(st, "reload", psprintf("%s: content as of %s, kept before %s",
									rb_qualified_name(e->preserved), pointname, e->content), n, true);
	}

	/* constraints, NOT NULL, indexes: once the rows are back */
	nundo += run_undo(waiting, dry_run, st);

	/* sequences of the kept tables (the others were set with their rows) */
	foreach(lc, preserved)
	{
		JEntry	   *e = lfirst(lc);
		ListCell   *lc2;

		foreach(lc2, rb_sequence_commands(e->sequences))
		{
			emit(st, "sequence", (char *) lfirst(lc2), 0, false);
			if (!dry_run)
			{
				rb_spi_connect_as_owner(&save);
				rb_internal_ddl((char *) lfirst(lc2));
				rb_spi_finish_as_owner(&save);
			}
		}
	}
	if (dry_run)
	{
		emit(st, "record", "the migration would be marked reverted and the revert written to rollback.audit_log",
			 0, false);
		return;
	}

	/* statuses and the audit entry */
	{
		Oid			argtypes2[11] = {INT8ARRAYOID, INT8OID, TEXTOID, TEXTOID, INT8OID, INT8OID,
		INT8OID, INT8OID, FLOAT8OID, TEXTOID, TEXTOID};
		Datum		values2[11];
		char		nulls2[11] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		values2[0] = values[0];
		values2[1] = Int64GetDatum(revert_id);
		if (reason)
			values2[2] = CStringGetTextDatum(reason);
		else
			nulls2[2] = 'n';
		values2[3] = CStringGetTextDatum(pointname);
		values2[4] = Int64GetDatum(nquarantined);
		values2[5] = Int64GetDatum(ndeleted);
		values2[6] = Int64GetDatum(nrestored);
		values2[7] = Int64GetDatum(nundo);
		values2[8] = Float8GetDatum((double) (GetCurrentTimestamp() - started) / 1000.0);
		values2[9] = CStringGetTextDatum(revert_trigger);
		if (revert_check)
			values2[10] = CStringGetTextDatum(revert_check);
		else
			nulls2[10] = 'n';
		rb_spi_connect_as_owner(&save);
		rb_spi_exec("UPDATE rollback.migration SET status = 'reverted',"
					" reverted_at = pg_catalog.clock_timestamp(), reverted_by = $2"
					" WHERE id = ANY ($1)",
					2, argtypes2, values2, nulls2, false, SPI_OK_UPDATE);
		rb_spi_exec("UPDATE rollback.migration SET status = 'applied',"
					" applied_at = pg_catalog.clock_timestamp() WHERE id = $2",
					2, argtypes2, values2, nulls2, false, SPI_OK_UPDATE);
		rb_spi_exec("INSERT INTO rollback.audit_log (action, actor, migration_id, reason, detail)"
					" SELECT 'revert', CASE WHEN $10 = 'manual' THEN session_user"
					"  ELSE 'rollback worker' END, $1[1], $3, pg_catalog.jsonb_build_object("
					"  'migrations', (SELECT pg_catalog.jsonb_agg(m.version ORDER BY m.id DESC)"
					"    FROM rollback.migration m WHERE m.id = ANY ($1)),"
					"  'revert_id', $2, 'point', $4, 'quarantined', $5, 'rows_deleted', $6,"
					"  'rows_restored', $7, 'ddl_undone', $8, 'duration_ms', $9,"
					"  'trigger', $10) || CASE WHEN $11 IS NULL THEN '{}'::jsonb"
					"  ELSE pg_catalog.jsonb_build_object('check', $11) END",
					11, argtypes2, values2, nulls2, false, SPI_OK_INSERT);
		rb_spi_finish_as_owner(&save);
	}
	rb_set_xact_migration(0, false);
	emit(st, "record", psprintf("%s reverted (revert id " INT64_FORMAT "), audit entry written",
								label + strlen("revert:"), revert_id), 0, false);
}

/*
 * find_migration: the id, version, kind and status of a migration named
 * by version (the newest of that version) or by id.
 */
static int64
find_migration(const char *name, char **version, char **kind, char **status)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	int64		id = 0;
	MemoryContext cxt = CurrentMemoryContext;

	values[0] = CStringGetTextDatum(name);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT id, version, kind, status FROM rollback.migration"
				" WHERE version = $1 OR (id::text = $1 AND NOT EXISTS"
				"  (SELECT 1 FROM rollback.migration WHERE version = $1))"
				" ORDER BY id DESC LIMIT 1",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*version = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		*kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		*status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
		MemoryContextSwitchTo(old);
	}
	rb_spi_finish_as_owner(&save);
	if (id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration \"%s\" does not exist", name)));
	return id;
}

/* check_revertable: the checks that do not need the journal. */
static void
check_revertable(int64 id, const char *version, const char *kind, const char *status)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, BOOLOID};
	Datum		values[2];
	char	   *later = NULL;
	bool		later_running = false;

	if (strcmp(status, "reverted") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is already reverted", version)));
	if (strcmp(status, "running") == 0 && !rb_migration_abandoned(id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is still running", version),
				 errhint("Its session must call rollback.end_migration() first; if that session ends without it, the migration can be reverted.")));
	values[0] = Int64GetDatum(id);
	values[1] = BoolGetDatum(strcmp(kind, "revert") == 0);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT version, status = 'running' AND NOT rollback._migration_abandoned(id)"
				" FROM rollback.migration WHERE id > $1"
				" AND status NOT IN ('reverted') AND (kind = 'migration' OR $2)"
				" ORDER BY id DESC LIMIT 1",
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		later = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		later_running = strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2), "t") == 0;
	}
	rb_spi_finish_as_owner(&save);
	if (later != NULL && later_running)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is not the last one", version),
				 errdetail("Migration %s, started after it, is still running.", later),
				 errhint("Wait for it to end, then revert both with rollback.revert_to().")));
	if (later != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is not the last one applied", version),
				 errdetail("Migration %s was applied after it.", later),
				 errhint("Revert the later migrations first, or use rollback.revert_to().")));
}

/*
 * lock_migrations: lock the rows of the migrations a revert is about to
 * revert, and check again that none was reverted meanwhile.
 *
 * Two sessions reverting the same migration would both read it as applied;
 * the row lock makes the second wait for the first, and under READ
 * COMMITTED the locked row is the latest version, so the second then sees
 * "reverted" and stops (under REPEATABLE READ the lock itself fails with a
 * serialization error).  Taken before any table lock, in id order, so that
 * reverts cannot deadlock on each other.  A dry run locks nothing.
 */
static void
lock_migrations(List *ids, bool dry_run)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];
	char	   *reverted = NULL;
	char	   *running = NULL;
	uint64		i;

	if (dry_run)
		return;
	values[0] = int8_array(ids);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT version, CASE WHEN status = 'running' AND rollback._migration_abandoned(id)"
				" THEN 'abandoned' ELSE status END"
				" FROM rollback.migration WHERE id = ANY ($1) ORDER BY id FOR UPDATE",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *status = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		if (strcmp(status, "reverted") == 0 && reverted == NULL)
			reverted = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		else if (strcmp(status, "running") == 0 && running == NULL)
			running = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	}
	rb_spi_finish_as_owner(&save);
	if (reverted != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is already reverted", reverted),
				 errdetail("Another session reverted it while this revert waited.")));
	if (running != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("migration %s is still running", running)));
}

/* start_steps: the result set of a revert function. */
static Steps *
start_steps(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Steps	   *st = palloc0(sizeof(Steps));
	MemoryContext old;

	rb_check_materialize(rsinfo);
	if (!rb_is_admin())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to revert a migration"),
				 errdetail("Only superusers and members of rollback_admin may do this.")));
	if (rb_current_migration() != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot revert a migration while one is in progress in this session")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dry_run must not be null")));
	st->cxt = rsinfo->econtext->ecxt_per_query_memory;
	old = MemoryContextSwitchTo(st->cxt);
	if (get_call_result_type(fcinfo, NULL, &st->desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	st->desc = CreateTupleDescCopy(st->desc);
	st->ts = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(old);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = st->ts;
	rsinfo->setDesc = st->desc;
	return st;
}

/*
 * rollback.revert_migration(migration text, dry_run bool, reason text)
 *		returns table(step int, action text, detail text, rows int8)
 */
Datum
rollback_revert_migration(PG_FUNCTION_ARGS)
{
	Steps	   *st = start_steps(fcinfo);
	int64	   *id = palloc(sizeof(int64));
	char	   *version = NULL;
	char	   *kind = NULL;
	char	   *status = NULL;

	if (PG_ARGISNULL(0))
	{
		RbOwnerSave save;

		/* the last applied migration */
		rb_spi_connect_as_owner(&save);
		rb_spi_exec("SELECT id, version, kind, status FROM rollback.migration WHERE kind = 'migration'"
					" AND status IN ('applied', 'verified', 'failed') ORDER BY id DESC LIMIT 1",
					0, NULL, NULL, NULL, false, SPI_OK_SELECT);
		if (SPI_processed == 1)
		{
			bool		isnull;
			MemoryContext old = MemoryContextSwitchTo(st->cxt);

			*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			version = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
			kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
			status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
			MemoryContextSwitchTo(old);
		}
		rb_spi_finish_as_owner(&save);
		if (version == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("there is no applied migration to revert")));
	}
	else
		*id = find_migration(text_to_cstring(PG_GETARG_TEXT_PP(0)), &version, &kind, &status);
	check_revertable(*id, version, kind, status);
	lock_migrations(list_make1(id), PG_GETARG_BOOL(1));
	revert(list_make1(id), psprintf("revert:%s", version), version, PG_GETARG_BOOL(1),
		   PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)), st);
	return (Datum) 0;
}

/*
 * rollback.revert_to(migration text, dry_run bool, reason text)
 *		Reverts every migration applied after the named one, newest first,
 *		as one revert to the point of the oldest of them.
 */
Datum
rollback_revert_to(PG_FUNCTION_ARGS)
{
	Steps	   *st = start_steps(fcinfo);
	char	   *version = NULL;
	char	   *kind = NULL;
	char	   *status = NULL;
	int64		target;
	List	   *ids = NIL;
	char	   *newest = NULL;
	char	   *oldest = NULL;
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	uint64		i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("migration must not be null")));
	target = find_migration(text_to_cstring(PG_GETARG_TEXT_PP(0)), &version, &kind, &status);
	values[0] = Int64GetDatum(target);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT id, version, status FROM rollback.migration WHERE id > $1"
				" AND kind = 'migration' AND status <> 'reverted' ORDER BY id DESC",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(st->cxt);
		int64	   *id = palloc(sizeof(int64));
		char	   *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		if (strcmp(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3), "running") == 0 &&
			!rb_migration_abandoned(*id))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration %s is still running", v)));
		ids = lappend(ids, id);
		if (newest == NULL)
			newest = v;
		oldest = v;
		MemoryContextSwitchTo(old);
	}
	rb_spi_finish_as_owner(&save);
	if (ids == NIL)
	{
		ereport(NOTICE,
				(errmsg("no migration was applied after %s", version)));
		return (Datum) 0;
	}
	lock_migrations(ids, PG_GETARG_BOOL(1));
	revert(ids, list_length(ids) == 1 ? psprintf("revert:%s", oldest)
		   : psprintf("revert:%s..%s", oldest, newest), oldest, PG_GETARG_BOOL(1),
		   PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)), st);
	return (Datum) 0;
}

/*
 * rb_find_migration: the id of a migration named by version or id; an
 * error if there is none.
 */
int64
rb_find_migration(const char *name)
{
	char	   *version;
	char	   *kind;
	char	   *status;

	return find_migration(name, &version, &kind, &status);
}

/*
 * rb_auto_revert: the worker reverts a migration whose check failed,
 * exactly as rollback.revert_migration() does (same checks, same steps,
 * same transaction), with the trigger and the check in the audit entry.
 * The steps are discarded; the figures are in the audit entry.
 */
void
rb_auto_revert(int64 id, const char *reason, const char *trigger, const char *check)
{
	Steps	   *st = palloc0(sizeof(Steps));
	int64	   *idp = palloc(sizeof(int64));
	char	   *version = NULL;
	char	   *kind = NULL;
	char	   *status = NULL;
	RbOwnerSave save;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	MemoryContext cxt = CurrentMemoryContext;

	*idp = id;
	values[0] = Int64GetDatum(id);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT version, kind, status FROM rollback.migration WHERE id = $1",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		version = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		status = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		MemoryContextSwitchTo(old);
	}
	rb_spi_finish_as_owner(&save);
	if (version == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration " INT64_FORMAT " does not exist", id)));

	st->cxt = cxt;
	st->desc = CreateTemplateTupleDesc(4);
	TupleDescInitEntry(st->desc, 1, "step", INT4OID, -1, 0);
	TupleDescInitEntry(st->desc, 2, "action", TEXTOID, -1, 0);
	TupleDescInitEntry(st->desc, 3, "detail", TEXTOID, -1, 0);
	TupleDescInitEntry(st->desc, 4, "rows", INT8OID, -1, 0);
	st->ts = tuplestore_begin_heap(false, false, work_mem);

	check_revertable(id, version, kind, status);
	lock_migrations(list_make1(idp), false);
	revert_trigger = trigger;
	revert_check = check;
	PG_TRY();
	{
		revert(list_make1(idp), psprintf("revert:%s", version), version, false, reason, st);
	}
	PG_FINALLY();
	{
		revert_trigger = "manual";
		revert_check = NULL;
	}
	PG_END_TRY();
	tuplestore_end(st->ts);
}
