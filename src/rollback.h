/*-------------------------------------------------------------------------
 *
 * rollback.h
 *		Declarations shared by the modules of the rollback extension.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ROLLBACK_H
#define ROLLBACK_H

#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "storage/bufpage.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "nodes/plannodes.h"
#include "tcop/utility.h"

#include "compat.h"

#define RB_STORE_SCHEMA		"rollback_store"
#define RB_TRIGGER_ROW		"zz_rollback_capture"
#define RB_TRIGGER_TRUNCATE	"zz_rollback_capture_truncate"

/* Store layout: two meta columns, then one column "c<attnum>" per base column. */
#define RB_STORE_META		2
#define RB_STORE_ATT_POINT	1
#define RB_STORE_ATT_XMIN	2

/* GUCs (rollback.c) */
extern int	rollback_retention;

/* A check, as the worker runs it (check.c, autorevert.c). */
typedef struct RbCheck
{
	int64		id;
	char	   *name;
	char	   *sql;
	char	   *severity;		/* error, warning, info */
	int			timeout_ms;
	int			settle_count;
	int			settle_ms;
	int			failure_limit;
	bool		dry_run;
	Oid			owner;			/* runs as this role */
} RbCheck;

/* The outcome of a check over its settle window. */
typedef struct RbCheckResult
{
	const char *status;			/* passed, failed, inconclusive */
	int			runs;
	int			failures;
	char	   *detail;			/* or NULL */
	char	   *failing_rows;	/* JSON array text, or NULL */
	TimestampTz started;
	TimestampTz finished;
} RbCheckResult;

/*
 * The MVCC snapshot of a recovery point, in 64-bit transaction ids.
 * An id is visible at the point when it is below xmin, or below xmax and
 * not in xip (sorted ascending).
 */
typedef struct RbSnapshot
{
	int64		point_id;
	uint64		xmin;
	uint64		xmax;
	int			nxip;
	uint64	   *xip;
	XLogRecPtr	lsn;			/* WAL insert position at the point, or 0 */
} RbSnapshot;

/*
 * Per-relation state that the capture trigger needs, cached per backend and
 * dropped on relcache invalidation of the relation (cache.c).
 */
typedef struct RbRelInfo
{
	Oid			relid;			/* hash key */
	bool		valid;
	bool		tracked;		/* has a version store */
	Oid			store_relid;
	int			nstorecols;		/* columns after the two meta columns */
	AttrNumber *store_attnums;	/* base attnum of each such column */
	RbSnapshot	snap;			/* latest point of the table; point_id 0: none */
} RbRelInfo;

/* util.c */
extern Oid	rb_extension_oid(void);
extern void rb_lock_extension(void);
extern Oid	rb_extension_owner(void);
extern Oid	rb_store_namespace(void);
/* What rb_become_owner saves, for rb_restore_user. */
typedef struct RbOwnerSave
{
	Oid			userid;
	int			sec;
	int			nestlevel;
} RbOwnerSave;

extern void rb_become_owner(RbOwnerSave *save);
extern Oid	rb_rel_owner(Oid relid);
extern void rb_become_table_owner(Oid relid, RbOwnerSave *save);
extern void rb_restore_user(RbOwnerSave *save);
extern uint64 rb_full_xid(TransactionId xid);
extern bool rb_xid_visible(const RbSnapshot *snap, uint64 fxid);
extern bool rb_tuple_visible(const RbSnapshot *snap, HeapTupleHeader tup);
extern uint64 rb_image_xid(HeapTupleHeader tup);
extern void rb_check_admin(Oid relid, const char *action);
extern void rb_check_select(Oid relid);
extern bool rb_is_admin(void);
extern char *rb_qualified_name(Oid relid);
extern void rb_spi_connect_as_owner(RbOwnerSave *save);
extern void rb_spi_finish_as_owner(RbOwnerSave *save);
extern int	rb_spi_exec(const char *sql, int nargs, Oid *argtypes,
						Datum *values, const char *nulls, bool read_only,
						int expected);
extern int	rb_spi_exec_latest(const char *sql, int nargs, Oid *argtypes,
							   Datum *values, int expected);
extern List *rb_spi_oid_list(int col, MemoryContext cxt);
extern List *rb_spi_text_list(int col, MemoryContext cxt);
extern List *rb_spi_int8_list(int col, MemoryContext cxt);
extern void rb_internal_ddl(const char *sql);
extern bool rb_in_internal_ddl(void);
extern void rb_note_write(void);
extern void rb_check_no_prior_write(const char *action);
extern bool rb_wrote_in_xact(void);
extern int	rb_cmp_u64(const void *a, const void *b);
extern int	rb_cmp_oid(const void *a, const void *b);
extern Datum rb_oid_array(List *oids);
struct ReturnSetInfo;
extern void rb_check_materialize(struct ReturnSetInfo *rsinfo);

/* cache.c */
extern void rb_cache_init(void);
extern RbRelInfo *rb_relinfo(Oid relid);
extern void rb_invalidate(Oid relid);

/* point.c */
extern int64 rb_point_lookup(const char *name, bool missing_ok);
extern bool rb_point_load(int64 point_id, MemoryContext cxt, RbSnapshot *snap);
extern bool rb_point_covers(int64 point_id, Oid relid);
extern List *rb_point_tables(int64 point_id);
extern char *rb_point_sequences(int64 point_id, Oid relid);
extern void rb_drop_point_by_id(int64 id);
extern int64 rb_create_point_internal(const char *name, List *relids,
									  const char *comment, bool for_migration);
extern void rb_prune_store(Oid relid);

/* track.c */
extern bool rb_is_tracked(Oid relid);
extern List *rb_expand_leaves(Oid relid, bool must_be_tracked);
extern List *rb_table_list(ArrayType *arr);
extern int	rb_track_relation(Oid relid);
extern Oid	rb_store_of(Oid relid);
extern char *rb_column_type_sql(Form_pg_attribute att);
extern void rb_renumber_store(Oid relid, AttrNumber oldnum, AttrNumber newnum);

/* timetravel.c */
extern bool rb_lsn_usable(Relation rel, const RbSnapshot *snap);
/* what rb_new_tids returns per tuple (usable as an ItemPointer) */
typedef struct RbNewTuple
{
	ItemPointerData tid;
	uint64		xmin;			/* 64-bit raw xmin */
} RbNewTuple;
extern List *rb_new_tids(Relation rel, const RbSnapshot *snap, bool make_room);
typedef struct RbImageScan RbImageScan;
extern RbImageScan *rb_images_begin(Relation rel, const RbSnapshot *snap,
									Snapshot snapshot);
extern bool rb_images_next(RbImageScan *s, Datum *values, bool *isnull);
extern void rb_images_end(RbImageScan *s);
extern int64 rb_count_images(Relation rel, const RbSnapshot *snap);

/* capture.c */
typedef struct RbImageBatch RbImageBatch;
extern RbImageBatch *rb_image_batch_begin(Relation rel, RbRelInfo *info);
extern void rb_image_batch_add(RbImageBatch *b, HeapTuple tup);
extern void rb_image_batch_flush(RbImageBatch *b);
extern void rb_image_batch_end(RbImageBatch *b);

/* heaprestore.c */
extern bool rb_heap_restore_usable(Relation rel);
extern void rb_heap_restore(Relation rel, const RbSnapshot *snap,
							int64 *deleted, int64 *restored);

/* restore.c */
extern List *rb_sequence_commands(const char *json);
extern void rb_restore_rows(int64 point_id, const char *pointname, const RbSnapshot *snap,
							Oid *oids, int ntables, bool dry_run, bool sequences,
							int64 *deleted, int64 *restored);

/* ddl.c */
extern void rb_ddl_init(void);

/* undoplan.c */
extern const char *rb_undo_untagged(const char *sql);
extern char *rb_undo_render(const char *sql, bool strict);
extern void rb_undo_cancel(List *pres, List *posts);
extern void rb_undo_adjust(List *pre, List **waiting);

/* migration.c */
extern bool rollback_auto_track;
extern void rb_migration_init(void);
extern int64 rb_current_migration(void);
extern bool rb_migration_abandoned(int64 id);
extern bool rb_history_defer(void);
extern bool rb_in_revert(void);
extern void rb_migration_record_xid(void);
extern int64 rb_start_migration(const char *version, const char *description,
								const char *tool, const char *kind, bool is_auto,
								List *reverts, const char *irreversible);
extern int64 rb_start_auto_migration(void);
extern void rb_set_xact_migration(int64 id, bool is_revert);
extern bool rb_is_registry_name(const char *relname);
extern bool rb_is_registry_rel(Oid relid);

/* journal.c */
extern int	rollback_irreversible_ddl;
extern void rb_journal_init(void);
typedef struct JournalFrame JournalFrame;
extern JournalFrame *rb_journal_begin(PlannedStmt *pstmt, const char *queryString,
									  ProcessUtilityContext context, bool *handled);
extern void rb_journal_end(JournalFrame *frame);
extern void rb_journal_abort(JournalFrame *frame);
extern bool rb_journal_preserved(int64 migration, Oid relid);

/* revert.c */
extern int64 rb_find_migration(const char *name);
extern void rb_auto_revert(int64 id, const char *reason, const char *trigger, const char *check);

/* check.c */
extern int	rollback_max_failing_rows;
extern void rb_check_init(void);
extern void rb_run_check(const RbCheck *c, const char *pointname, MemoryContext cxt,
						 RbCheckResult *res);

/* audit.c */
extern void rb_audit(const char *action, const char *actor, int64 migration_id,
					 const char *reason, const char *detail);
extern void rb_notify_revert(int64 migration_id);

/* autorevert.c */
extern bool rollback_auto_revert;
extern void rb_autorevert_init(void);
extern long rb_check_migrations(void);
extern char *rb_run_requested_checks(int64 batch, const char *migration, const char *tag,
									 int64 *act_on, char **failed_check);
extern void rb_act_on_failure(int64 id, const char *check, const char *trigger);
extern void rb_maybe_purge(void);

/* worker.c */
extern int	rollback_naptime;
extern void rb_worker_init(void);
extern void rb_worker_wake(void);
extern void rb_worker_stop_for(Oid dboid);
extern void rb_worker_sleep(int ms);
extern char *rb_worker_request(int64 batch, const char *migration, const char *tag);
extern PGDLLEXPORT void rb_launcher_main(Datum arg);
extern PGDLLEXPORT void rb_worker_main(Datum arg);

#endif							/* ROLLBACK_H */
