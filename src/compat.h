/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Every difference between the PostgreSQL versions rollback supports
 *		(13 to 17) lives here, so that the other files need no #if.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ROLLBACK_COMPAT_H
#define ROLLBACK_COMPAT_H

#include "postgres.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"

#if PG_VERSION_NUM < 130000
#error "rollback needs PostgreSQL 13 or later"
#endif

/* Ownership checks were generalized in 16. */
#if PG_VERSION_NUM >= 160000
#define rb_relation_ownercheck(relid, roleid) \
	object_ownercheck(RelationRelationId, (relid), (roleid))
#define rb_namespace_ownercheck(nspid, roleid) \
	object_ownercheck(NamespaceRelationId, (nspid), (roleid))
#else
#define rb_relation_ownercheck(relid, roleid) pg_class_ownercheck((relid), (roleid))
#define rb_namespace_ownercheck(nspid, roleid) pg_namespace_ownercheck((nspid), (roleid))
#endif

/* Privilege checks on a schema: generalized in 16 too. */
#if PG_VERSION_NUM >= 160000
#define rb_namespace_aclcheck(nspid, roleid, mode) \
	object_aclcheck(NamespaceRelationId, (nspid), (roleid), (mode))
#else
#define rb_namespace_aclcheck(nspid, roleid, mode) pg_namespace_aclcheck((nspid), (roleid), (mode))
#endif

/* Ownership of any object: one function from 16, one per catalog before. */
#if PG_VERSION_NUM >= 160000
#define rb_object_ownercheck(classid, objid, roleid) \
	object_ownercheck((classid), (objid), (roleid))
#else
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
static inline bool
rb_object_ownercheck(Oid classid, Oid objid, Oid roleid)
{
	switch (classid)
	{
		case RelationRelationId:
			return pg_class_ownercheck(objid, roleid);
		case ProcedureRelationId:
			return pg_proc_ownercheck(objid, roleid);
		case TypeRelationId:
			return pg_type_ownercheck(objid, roleid);
		case NamespaceRelationId:
			return pg_namespace_ownercheck(objid, roleid);
		default:
			return superuser_arg(roleid);
	}
}
#endif

/* getObjectDescription gained missing_ok in 14. */
#if PG_VERSION_NUM >= 140000
#define rb_object_description(addr) getObjectDescription((addr), false)
#else
#define rb_object_description(addr) getObjectDescription(addr)
#endif

/*
 * This backend's own subtransaction ids, as the proc array shows them to
 * other backends: moved from PGXACT into PGPROC in 14.
 */
#if PG_VERSION_NUM >= 140000
#define RB_MY_SUBXID_COUNT()		(MyProc->subxidStatus.count)
#define RB_MY_SUBXID_OVERFLOWED()	(MyProc->subxidStatus.overflowed)
#else
#define RB_MY_SUBXID_COUNT()		(MyPgXact->nxids)
#define RB_MY_SUBXID_OVERFLOWED()	(MyPgXact->overflowed)
#endif
#define RB_MY_SUBXID(i)				(MyProc->subxids.xids[(i)])

/* The backend's local transaction id moved into MyProc->vxid in 17. */
#if PG_VERSION_NUM >= 170000
#define RB_MY_LXID					(MyProc->vxid.lxid)
#else
#define RB_MY_LXID					(MyProc->lxid)
#endif

/* The ProcessUtility hook gained readOnlyTree in 14. */
#if PG_VERSION_NUM >= 140000
#define RB_UTILITY_ARGS \
	PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, \
	ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define RB_UTILITY_CALL_ARGS \
	pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
#else
#define RB_UTILITY_ARGS \
	PlannedStmt *pstmt, const char *queryString, \
	ProcessUtilityContext context, ParamListInfo params, \
	QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc
#define RB_UTILITY_CALL_ARGS \
	pstmt, queryString, context, params, queryEnv, dest, qc
#endif



/* MarkGUCPrefixReserved is the 15 name of EmitWarningsOnPlaceholders. */
#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

/*
 * Shared memory is reserved from shmem_request_hook from 15 on (asking
 * elsewhere is an error), and directly from _PG_init before.
 */
#if PG_VERSION_NUM >= 150000
#include "storage/ipc.h"
static shmem_request_hook_type rb_prev_shmem_request_hook pg_attribute_unused() = NULL;
static void (*rb_shmem_request_fn) (void) pg_attribute_unused() = NULL;

static inline void
rb_shmem_request_trampoline(void)
{
	if (rb_prev_shmem_request_hook)
		rb_prev_shmem_request_hook();
	rb_shmem_request_fn();
}

static inline void
rb_install_shmem_request(void (*fn) (void))
{
	rb_shmem_request_fn = fn;
	rb_prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rb_shmem_request_trampoline;
}
#else
static inline void
rb_install_shmem_request(void (*fn) (void))
{
	fn();
}
#endif

/*
 * Index entries for a tuple just inserted, as COPY FROM makes them: the
 * result relation is an argument from 14 on (13 reads it from the EState),
 * and 16 added onlySummarizing.  Returns the indexes whose check is
 * deferred (none, for the callers, which refuse deferrable ones).
 */
#if PG_VERSION_NUM >= 160000
#define rb_insert_index_tuples(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL, false)
#elif PG_VERSION_NUM >= 140000
#define rb_insert_index_tuples(rri, slot, estate) \
	ExecInsertIndexTuples((rri), (slot), (estate), false, false, NULL, NIL)
#else
#define rb_insert_index_tuples(rri, slot, estate) \
	((estate)->es_result_relation_info = (rri), \
	 ExecInsertIndexTuples((slot), (estate), false, NULL, NIL))
#endif

/*
 * Rebuild every index of a table (not its TOAST table's), checking unique
 * and exclusion constraints as REINDEX does: the parameters became a struct
 * in 14 and the statement an argument in 17.
 */
#include "catalog/index.h"
#if PG_VERSION_NUM >= 170000
static inline void
rb_reindex_table(Oid relid)
{
	ReindexParams params = {0};

	(void) reindex_relation(NULL, relid, REINDEX_REL_CHECK_CONSTRAINTS, &params);
}
#elif PG_VERSION_NUM >= 140000
static inline void
rb_reindex_table(Oid relid)
{
	ReindexParams params = {0};

	(void) reindex_relation(relid, REINDEX_REL_CHECK_CONSTRAINTS, &params);
}
#else
#define rb_reindex_table(relid) \
	((void) reindex_relation((relid), REINDEX_REL_CHECK_CONSTRAINTS, 0))
#endif

#endif							/* ROLLBACK_COMPAT_H */
