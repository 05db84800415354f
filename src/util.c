/*-------------------------------------------------------------------------
 *
 * util.c
 *		Helpers shared by the modules: the extension's owner and schemas,
 *		running internal SQL as that owner, privilege checks, and the
 *		64-bit transaction id arithmetic behind point visibility.
 *
 * Internal SQL (catalog reads and writes, store DDL) runs as the role that
 * owns the extension, because the catalog and the stores are not readable
 * by ordinary roles.  Every entry point checks the caller's own rights
 * first, with the caller's identity, and only then switches.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/xid8.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_xid8);

/* Depth of internal DDL in progress: our own hooks let it through. */
static int	internal_ddl_depth = 0;

/* The local transaction in which this backend last changed a tracked table. */
static LocalTransactionId wrote_lxid = InvalidLocalTransactionId;

/*
 * rb_extension_oid: the OID of the installed extension; an error if it is
 * not installed in this database (the library can be loaded without it).
 */
Oid
rb_extension_oid(void)
{
	Oid			extoid = get_extension_oid("rollback", true);

	if (!OidIsValid(extoid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"rollback\" is not installed in this database")));
	return extoid;
}

/*
 * rb_lock_extension: the background worker's transactions take a share
 * lock on the extension object before they touch any of its tables.  DROP
 * EXTENSION takes that lock (exclusive) before it locks the extension's
 * tables, so it and the worker wait for each other in one order and never
 * deadlock on the tables.  An error if the extension was dropped while
 * this waited.
 */
void
rb_lock_extension(void)
{
	Oid			extoid = rb_extension_oid();

	LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	if (get_extension_oid("rollback", true) != extoid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"rollback\" was dropped")));
}

/*
 * rb_extension_owner: the role that owns the extension, and so the catalog
 * and the version stores.  Read from pg_extension each time: it is cheap
 * next to the work it guards, and an ALTER EXTENSION OWNER takes effect at
 * once.
 */
Oid
rb_extension_owner(void)
{
	Oid			extoid = rb_extension_oid();
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(owner))
		elog(ERROR, "could not find the owner of extension \"rollback\"");
	return owner;
}

/* rb_store_namespace: OID of the schema that holds the version stores. */
Oid
rb_store_namespace(void)
{
	return get_namespace_oid(RB_STORE_SCHEMA, false);
}

/*
 * become_role: switch to a role with the given security flags and pin
 * search_path; the state to go back is saved in *save.
 */
static void
become_role(Oid role, int flags, RbOwnerSave *save)
{
	GetUserIdAndSecContext(&save->userid, &save->sec);
	SetUserIdAndSecContext(role, save->sec | flags);
	save->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
}

/*
 * rb_become_owner: switch to the extension's owner for internal work, with
 * the security restrictions of a SECURITY DEFINER function, and pin
 * search_path to pg_catalog, pg_temp so that no function or operator of the
 * caller's schemas can stand in for a built-in one in our queries.  The
 * caller must pass the saved state to rb_restore_user; an error unwinds the
 * switch by itself at (sub)transaction abort.
 */
void
rb_become_owner(RbOwnerSave *save)
{
	become_role(rb_extension_owner(), SECURITY_LOCAL_USERID_CHANGE, save);
}

/* rb_rel_owner: the owner of a relation, or InvalidOid if it is gone. */
Oid
rb_rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * rb_become_table_owner: switch to a table's owner, as a security-restricted
 * operation, for statements that may run code attached to the table (ALWAYS
 * triggers, defaults): that code must never run with more rights than the
 * table's owner has.  This is what VACUUM and REINDEX do.  An owner that
 * cannot use the table's schema could not name it: a clear error first.
 */
void
rb_become_table_owner(Oid relid, RbOwnerSave *save)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;
	Oid			nsp;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	nsp = ((Form_pg_class) GETSTRUCT(tup))->relnamespace;
	ReleaseSysCache(tup);
	/* the statements name the table: its owner must reach its schema */
	if (rb_namespace_aclcheck(nsp, owner, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the owner of table %s has no access to its schema", rb_qualified_name(relid)),
				 errdetail("Rows of a table are restored as the table's owner, role %s, which lacks USAGE on schema %s.",
						   GetUserNameFromId(owner, false), get_namespace_name(nsp)),
				 errhint("Grant it: GRANT USAGE ON SCHEMA %s TO %s;",
						 quote_identifier(get_namespace_name(nsp)),
						 quote_identifier(GetUserNameFromId(owner, false)))));
	become_role(owner, SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION,
				save);
}

/* rb_restore_user: undo rb_become_owner. */
void
rb_restore_user(RbOwnerSave *save)
{
	AtEOXact_GUC(true, save->nestlevel);
	SetUserIdAndSecContext(save->userid, save->sec);
}

/* rb_spi_connect_as_owner: SPI_connect, then become the extension's owner. */
void
rb_spi_connect_as_owner(RbOwnerSave *save)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rb_become_owner(save);
}

/* rb_spi_finish_as_owner: undo rb_spi_connect_as_owner. */
void
rb_spi_finish_as_owner(RbOwnerSave *save)
{
	rb_restore_user(save);
	SPI_finish();
}

/*
 * rb_spi_exec: run one internal statement with parameters; "expected" is the
 * SPI result code it must return.  Returns SPI_processed.
 */
int
rb_spi_exec(const char *sql, int nargs, Oid *argtypes, Datum *values,
			const char *nulls, bool read_only, int expected)
{
	int			rc;

	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls,
							   read_only, 0);
	if (rc != expected)
		elog(ERROR, "internal query failed (%s): %s",
			 SPI_result_code_string(rc), sql);
	return (int) SPI_processed;
}

/*
 * rb_spi_oid_list: one OID column of the last SPI result, as a list built
 * in cxt (the caller's context, which outlives SPI_finish).  A NULL is
 * InvalidOid.
 */
List *
rb_spi_oid_list(int col, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	List	   *result = NIL;
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
									  col, &isnull);

		result = lappend_oid(result, isnull ? InvalidOid : DatumGetObjectId(d));
	}
	MemoryContextSwitchTo(oldcxt);
	return result;
}

/*
 * rb_spi_text_list: one column of the last SPI result as C strings, in a
 * list built in cxt (see rb_spi_oid_list).  A NULL is a NULL pointer.
 */
List *
rb_spi_text_list(int col, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	List	   *result = NIL;
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
		result = lappend(result, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, col));
	MemoryContextSwitchTo(oldcxt);
	return result;
}

/*
 * rb_spi_int8_list: one bigint column of the last SPI result, as a list of
 * palloc'd int64 built in cxt (see rb_spi_oid_list).  NULLs are skipped.
 */
List *
rb_spi_int8_list(int col, MemoryContext cxt)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	List	   *result = NIL;
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, col, &isnull);

		if (!isnull)
		{
			int64	   *p = palloc(sizeof(int64));

			*p = DatumGetInt64(d);
			result = lappend(result, p);
		}
	}
	MemoryContextSwitchTo(oldcxt);
	return result;
}

/*
 * rb_spi_exec_latest: like rb_spi_exec for a data-changing statement, but
 * run with a fresh snapshot rather than the transaction's.  A restore holds
 * EXCLUSIVE locks and must see and change every committed row, also when
 * its transaction is REPEATABLE READ and its snapshot is older.
 */
int
rb_spi_exec_latest(const char *sql, int nargs, Oid *argtypes, Datum *values,
				   int expected)
{
	SPIPlanPtr	plan;
	int			rc;

	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "internal query could not be prepared (%s): %s",
			 SPI_result_code_string(SPI_result), sql);
	rc = SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(),
							  InvalidSnapshot, false, true, 0);
	if (rc != expected)
		elog(ERROR, "internal query failed (%s): %s",
			 SPI_result_code_string(rc), sql);
	SPI_freeplan(plan);
	return (int) SPI_processed;
}

/*
 * rb_internal_ddl: run a DDL statement of our own (store tables, capture
 * triggers) through SPI.  Our ProcessUtility hook and event triggers let
 * these through untouched.  Must be called inside SPI, as the owner.
 */
void
rb_internal_ddl(const char *sql)
{
	internal_ddl_depth++;
	PG_TRY();
	{
		if (SPI_execute(sql, false, 0) < 0)
			elog(ERROR, "internal statement failed: %s", sql);
	}
	PG_FINALLY();
	{
		internal_ddl_depth--;
	}
	PG_END_TRY();
}

/* rb_in_internal_ddl: whether we are running one of our own statements. */
bool
rb_in_internal_ddl(void)
{
	return internal_ddl_depth > 0;
}

/*
 * rb_note_write: remember that this transaction changed a tracked table.
 * Called by the capture triggers; cheap enough for every row.
 */
void
rb_note_write(void)
{
	wrote_lxid = RB_MY_LXID;
}

/* rb_wrote_in_xact: whether this transaction changed a tracked table. */
bool
rb_wrote_in_xact(void)
{
	return wrote_lxid == RB_MY_LXID;
}

/*
 * rb_check_no_prior_write: a recovery point cannot be taken after this
 * transaction changed a tracked table.  Its snapshot cannot tell this
 * transaction's earlier changes from its later ones (both carry the same
 * transaction id), and the rows it already replaced would be missing from
 * the point.
 */
void
rb_check_no_prior_write(const char *action)
{
	if (wrote_lxid == RB_MY_LXID)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("cannot %s after changing tracked tables in the same transaction",
						action),
				 errhint("Run it at the start of a transaction, before any UPDATE, DELETE or TRUNCATE of a tracked table.")));
}

/*
 * rb_full_xid: widen a 32-bit transaction id found in a tuple header or a
 * snapshot to 64 bits.  The next transaction id is read once per command
 * (keeping XidGenLock off the per-row path) and the id is taken to be at
 * most 2^28 newer than that (ids assigned while the command runs) or up to
 * 2^32 - 2^28 older.  That covers every id PostgreSQL can leave unfrozen,
 * and every frozen row younger than that; an older row's raw xmin may wrap
 * (see rb_tuple_visible).  Permanent ids map to themselves.
 */
uint64
rb_full_xid(TransactionId xid)
{
	static LocalTransactionId base_lxid = InvalidLocalTransactionId;
	static CommandId base_cid = InvalidCommandId;
	static FullTransactionId base;
	uint32		behind;

	if (!TransactionIdIsNormal(xid))
		return (uint64) xid;
	if (base_lxid != RB_MY_LXID || base_cid != GetCurrentCommandId(false) ||
		base_lxid == InvalidLocalTransactionId)
	{
		base = ReadNextFullTransactionId();
		base_lxid = RB_MY_LXID;
		base_cid = GetCurrentCommandId(false);
	}
	behind = XidFromFullTransactionId(base) - xid;
	if (behind > (uint32) 0xF0000000)	/* newer than base, by less than 2^28 */
		return U64FromFullTransactionId(base) + (uint32) (xid - XidFromFullTransactionId(base));
	if ((uint64) behind > U64FromFullTransactionId(base))
		return FrozenTransactionId;		/* older than the cluster: can only be frozen */
	return U64FromFullTransactionId(base) - behind;
}

/*
 * rollback._xid8(xid): a tuple's raw xmin (the system column xmin) widened
 * as rb_full_xid does it, so that kept content (journal.c) stores the same
 * 64-bit ids as the version stores and the points' snapshots.
 */
Datum
rollback_xid8(PG_FUNCTION_ARGS)
{
	PG_RETURN_FULLTRANSACTIONID(FullTransactionIdFromU64(rb_full_xid(PG_GETARG_TRANSACTIONID(0))));
}

/* rb_xid_visible: whether a 64-bit transaction id is visible at a point. */
bool
rb_xid_visible(const RbSnapshot *snap, uint64 fxid)
{
	int			lo,
				hi;

	if (fxid < FirstNormalTransactionId)
		return fxid != InvalidTransactionId;
	if (fxid < snap->xmin)
		return true;
	if (fxid >= snap->xmax)
		return false;
	lo = 0;
	hi = snap->nxip - 1;
	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (snap->xip[mid] == fxid)
			return false;
		if (snap->xip[mid] < fxid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return true;
}

/*
 * rb_image_xid: the 64-bit id under which a row image is stored: its raw
 * xmin, widened.
 */
uint64
rb_image_xid(HeapTupleHeader tup)
{
	return rb_full_xid(HeapTupleHeaderGetRawXmin(tup));
}

/*
 * rb_tuple_visible: whether the tuple's inserting transaction is visible at
 * the point.  As DESIGN.md section 2 asks, the raw xmin is used, not the
 * frozen marker: VACUUM freezes rows written after a point as readily as
 * older ones (after vacuum_freeze_min_age, or at once with FREEZE), and
 * keeps their raw xmin.  A raw xmin is only ambiguous for a row that no one
 * has written for about 2^32 transactions, whose xmin may have wrapped
 * around; callers that can see the page use its LSN first (a page not
 * written since the point holds only rows the point saw), and
 * docs/limits.md states the rest.
 */
bool
rb_tuple_visible(const RbSnapshot *snap, HeapTupleHeader tup)
{
	return rb_xid_visible(snap, rb_full_xid(HeapTupleHeaderGetRawXmin(tup)));
}

/* rb_is_admin: superuser or member of rollback_admin. */
bool
rb_is_admin(void)
{
	Oid			admin;

	if (superuser())
		return true;
	admin = get_role_oid("rollback_admin", true);
	return OidIsValid(admin) && has_privs_of_role(GetUserId(), admin);
}

/*
 * rb_check_admin: the caller may change what is kept of this table: its
 * owner, a superuser, or a member of rollback_admin.
 */
void
rb_check_admin(Oid relid, const char *action)
{
	if (rb_is_admin() || rb_relation_ownercheck(relid, GetUserId()))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s table \"%s\"", action,
					get_rel_name(relid)),
			 errdetail("Only the table's owner, superusers and members of rollback_admin may do this.")));
}

/*
 * rb_check_select: the caller may read this table's history only when it
 * may read the table.
 */
void
rb_check_select(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid))));
}

/* rb_qualified_name: schema-qualified, quoted name of a relation. */
char *
rb_qualified_name(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *nspname;

	if (relname == NULL)
		elog(ERROR, "cache lookup failed for relation %u", relid);
	nspname = get_namespace_name(get_rel_namespace(relid));
	return quote_qualified_identifier(nspname, relname);
}

/* rb_cmp_u64: qsort and bsearch comparator for 64-bit transaction ids. */
int
rb_cmp_u64(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return (x > y) - (x < y);
}

/* rb_cmp_oid: qsort comparator for OIDs, to lock tables in a fixed order. */
int
rb_cmp_oid(const void *a, const void *b)
{
	Oid			x = *(const Oid *) a;
	Oid			y = *(const Oid *) b;

	return (x > y) - (x < y);
}

/* rb_oid_array: a List of OIDs as an oid[] Datum. */
Datum
rb_oid_array(List *oids)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, oids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/*
 * rb_check_materialize: a set-returning function of ours fills a
 * tuplestore: refuse a caller that cannot take one.
 */
void
rb_check_materialize(ReturnSetInfo *rsinfo)
{
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
}
