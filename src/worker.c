/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The launcher and the per-database workers: processes, shared
 *		memory, wake-ups, and the requests of rollback.run_checks().
 *
 * The launcher is a static background worker registered from _PG_init.
 * It connects to no database; it starts one dynamic worker per database
 * that allows connections, at its start and for every database created
 * later (it looks at pg_database every minute), and again on request (the
 * extension's install script calls rollback._start_worker()).  A worker
 * that could not be started (no free background worker slot) is tried
 * again at the next look at pg_database.  A worker
 * whose database lacks the extension says so in its slot and exits; it is
 * started again only on request (at the commit of the transaction that
 * asked, so that it sees the extension).  A worker that exits otherwise
 * (an error) is started again after RB_RESTART_DELAY; after a crash the
 * postmaster restarts everything, the launcher included, and the launcher
 * starts the workers again.
 *
 * Shared memory holds one slot per database with a worker.  A worker owns
 * its slot while it runs (pid set): a second worker for the same database
 * (the postmaster may restart a dynamic worker after a crash while the
 * launcher starts another) finds the slot taken and exits.
 *
 * Locking: RbShared->mutex (a spinlock) guards every field of every slot
 * and the launcher's fields; it is held only to copy a few words, never
 * across a call that can fail.
 *
 * The worker's loop follows src/test/modules/worker_spi: wait on the latch
 * (rollback.naptime at most), reload the configuration on SIGHUP, exit on
 * SIGTERM, and do each piece of work in a transaction of its own.  A
 * backend that ends a migration sets the worker's latch at its commit, so
 * the checks start at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_worker_pid);
PG_FUNCTION_INFO_V1(rollback_start_worker);

/* how long the launcher waits before starting a worker that exited again */
#define RB_RESTART_DELAY_MS	5000
/* how often the launcher looks for new databases */
#define RB_RESCAN_MS		60000
#define RB_REQ_TEXT			256

/* settings */
int			rollback_naptime = 10;

typedef struct RbDbSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* the worker running, or 0 */
	Latch	   *latch;			/* its latch, while pid != 0 */
	bool		no_extension;	/* the worker found no extension: exited */
	bool		stopped;		/* stopped for DROP/CREATE DATABASE */
	TimestampTz stopped_at;
	bool		wanted;			/* start requested */
	bool		start_failed;	/* no free worker slot at the last start */
	TimestampTz last_start;		/* when the launcher last started it */
	/* a run_checks() request */
	bool		req_pending;
	uint64		req_seq;
	int64		req_batch;
	bool		req_has_migration;
	bool		req_has_tag;
	char		req_migration[RB_REQ_TEXT];
	char		req_tag[RB_REQ_TEXT];
	Latch	   *req_latch;
	uint64		done_seq;
	char		done_error[RB_REQ_TEXT];
} RbDbSlot;

typedef struct RbShared
{
	slock_t		mutex;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			nslots;
	RbDbSlot	slots[FLEXIBLE_ARRAY_MEMBER];
} RbShared;

static RbShared *rb_shared = NULL;
static int	my_slot = -1;

/* the slots: as many as there can be background workers */
static Size
shared_size(void)
{
	return add_size(offsetof(RbShared, slots),
					mul_size(sizeof(RbDbSlot), max_worker_processes + 1));
}

/* request_shmem: reserve the shared memory (shmem_request_hook from 15 on). */
static void
request_shmem(void)
{
	RequestAddinShmemSpace(shared_size());
}

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* shmem_startup: create or attach to the shared state. */
static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rb_shared = ShmemInitStruct("rollback worker state", shared_size(), &found);
	if (!found)
	{
		memset(rb_shared, 0, shared_size());
		SpinLockInit(&rb_shared->mutex);
		rb_shared->nslots = max_worker_processes + 1;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * slot_for: the slot of a database, creating it if asked.  -1 if there is
 * none (or no room).  Caller holds the mutex.
 */
static int
slot_for(Oid dboid, bool create)
{
	int			i;
	int			free_slot = -1;

	for (i = 0; i < rb_shared->nslots; i++)
	{
		if (rb_shared->slots[i].dboid == dboid)
			return i;
		if (free_slot < 0 && rb_shared->slots[i].dboid == InvalidOid)
			free_slot = i;
	}
	if (!create || free_slot < 0)
		return -1;
	memset(&rb_shared->slots[free_slot], 0, sizeof(RbDbSlot));
	rb_shared->slots[free_slot].dboid = dboid;
	return free_slot;
}

/*
 * rb_worker_wake: set the latch of this database's worker (a migration
 * was committed, or a history row labelled one).  Cheap; safe after
 * commit.
 */
void
rb_worker_wake(void)
{
	Latch	   *latch = NULL;
	int			i;

	if (rb_shared == NULL)
		return;
	SpinLockAcquire(&rb_shared->mutex);
	i = slot_for(MyDatabaseId, false);
	if (i >= 0 && rb_shared->slots[i].pid != 0)
		latch = rb_shared->slots[i].latch;
	SpinLockRelease(&rb_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/*
 * rb_worker_stop_for: stop the worker of a database about to be dropped
 * or copied (DROP DATABASE and CREATE DATABASE ... TEMPLATE wait for the
 * database to have no session).  The launcher starts it again at its next
 * look at pg_database if the database is still there.
 */
void
rb_worker_stop_for(Oid dboid)
{
	pid_t		pid = 0;
	int			i;

	if (rb_shared == NULL || !OidIsValid(dboid))
		return;
	SpinLockAcquire(&rb_shared->mutex);
	i = slot_for(dboid, false);
	if (i >= 0)
	{
		rb_shared->slots[i].stopped = true;
		rb_shared->slots[i].stopped_at = GetCurrentTimestamp();
		pid = rb_shared->slots[i].pid;
	}
	SpinLockRelease(&rb_shared->mutex);
	if (pid != 0)
		kill(pid, SIGTERM);
}

/*
 * start_worker: register a dynamic worker for a database.  It reports to
 * the launcher when it stops (bgw_notify_pid).
 */
static bool
start_worker(Oid dboid)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "rollback");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "rb_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "rollback worker for database %u", dboid);
	snprintf(w.bgw_type, BGW_MAXLEN, "rollback worker");
	w.bgw_main_arg = ObjectIdGetDatum(dboid);
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the rollback worker for database %u", dboid),
				 errhint("Raise max_worker_processes.")));
		return false;
	}
	return true;
}

/* database_list: the databases that allow connections (launcher, no database). */
static List *
database_list(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			result = lappend_oid(result, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return result;
}

/*
 * launcher_pass: start the workers that should run and do not.  With
 * rescan, every database of pg_database without a slot gets one (a
 * worker is tried once per database; it exits if the extension is not
 * there).  Returns how long to sleep before the next pass is due.
 */
static long
launcher_pass(bool rescan)
{
	List	   *dbs = rescan ? database_list() : NIL;
	ListCell   *lc;
	List	   *to_start = NIL;
	long		wait = RB_RESCAN_MS;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	SpinLockAcquire(&rb_shared->mutex);
	if (rescan)
	{
		/* free the slots of the databases that are gone (dropped: stopped) */
		for (i = 0; i < rb_shared->nslots; i++)
		{
			RbDbSlot   *s = &rb_shared->slots[i];

			/*
			 * A start asked for since the scan read pg_database is kept:
			 * the database may be newer than the scan.
			 */
			if (s->dboid != InvalidOid && s->pid == 0 && !s->wanted &&
				!list_member_oid(dbs, s->dboid))
				s->dboid = InvalidOid;
		}
	}
	foreach(lc, dbs)
	{
		Oid			dboid = lfirst_oid(lc);

		i = slot_for(dboid, false);
		if (i < 0)
		{
			i = slot_for(dboid, true);
			if (i >= 0)
				rb_shared->slots[i].wanted = true;
		}
		else if (rb_shared->slots[i].stopped && rb_shared->slots[i].pid == 0 &&
				 TimestampDifferenceExceeds(rb_shared->slots[i].stopped_at, now, RB_RESCAN_MS / 2))
		{
			/* stopped for DROP DATABASE, which failed: the database is still there */
			rb_shared->slots[i].stopped = false;
			rb_shared->slots[i].wanted = true;
		}
		else if (rb_shared->slots[i].start_failed && rb_shared->slots[i].pid == 0)
		{
			/* there was no free worker slot: try again */
			rb_shared->slots[i].start_failed = false;
			rb_shared->slots[i].wanted = true;
		}
	}
	for (i = 0; i < rb_shared->nslots; i++)
	{
		RbDbSlot   *s = &rb_shared->slots[i];

		if (s->dboid == InvalidOid || s->pid != 0)
			continue;
		if (s->stopped || !s->wanted)
			continue;
		if (s->last_start != 0 &&
			!TimestampDifferenceExceeds(s->last_start, now, RB_RESTART_DELAY_MS))
		{
			long		left = RB_RESTART_DELAY_MS -
				(long) ((now - s->last_start) / 1000);

			wait = Min(wait, Max(left, 10));
			continue;
		}
		s->wanted = false;
		s->last_start = now;
		to_start = lappend_oid(to_start, s->dboid);
	}
	SpinLockRelease(&rb_shared->mutex);

	foreach(lc, to_start)
	{
		Oid			dboid = lfirst_oid(lc);

		if (start_worker(dboid))
			continue;
		/* no free slot: try again at the next look at pg_database */
		SpinLockAcquire(&rb_shared->mutex);
		i = slot_for(dboid, false);
		if (i >= 0)
			rb_shared->slots[i].start_failed = true;
		SpinLockRelease(&rb_shared->mutex);
	}
	return wait;
}

/*
 * rb_launcher_main: the launcher's loop.  Woken by a start request, by a
 * worker that stops (the postmaster signals the launcher), and every
 * RB_RESCAN_MS to look for new databases.
 */
void
rb_launcher_main(Datum arg)
{
	TimestampTz last_scan;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("rollback launcher");

	SpinLockAcquire(&rb_shared->mutex);
	rb_shared->launcher_pid = MyProcPid;
	rb_shared->launcher_latch = MyLatch;
	SpinLockRelease(&rb_shared->mutex);

	(void) launcher_pass(true);
	last_scan = GetCurrentTimestamp();
	for (;;)
	{
		long		wait;
		bool		rescan;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		rescan = TimestampDifferenceExceeds(last_scan, GetCurrentTimestamp(), RB_RESCAN_MS);
		wait = launcher_pass(rescan);
		if (rescan)
			last_scan = GetCurrentTimestamp();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* wake_launcher: set the launcher's latch. */
static void
wake_launcher(void)
{
	Latch	   *latch;

	SpinLockAcquire(&rb_shared->mutex);
	latch = rb_shared->launcher_pid != 0 ? rb_shared->launcher_latch : NULL;
	SpinLockRelease(&rb_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* release_slot: the worker exits (before_shmem_exit callback). */
static void
release_slot(int code, Datum arg)
{
	bool		notify = false;

	if (my_slot < 0)
		return;
	SpinLockAcquire(&rb_shared->mutex);
	if (rb_shared->slots[my_slot].pid == MyProcPid)
	{
		rb_shared->slots[my_slot].pid = 0;
		rb_shared->slots[my_slot].latch = NULL;
		/* an exit by error: the launcher starts it again after a delay */
		if (code != 0 && !rb_shared->slots[my_slot].stopped)
		{
			rb_shared->slots[my_slot].wanted = true;
			notify = true;
		}
		/* a start was requested while it ran (see request_start) */
		else if (rb_shared->slots[my_slot].wanted && !rb_shared->slots[my_slot].stopped)
			notify = true;
	}
	SpinLockRelease(&rb_shared->mutex);
	my_slot = -1;
	if (notify)
		wake_launcher();
}

/*
 * claim_slot: take this database's slot; false if another worker holds it
 * (then this one exits).
 */
static bool
claim_slot(Oid dboid)
{
	int			i;
	bool		ok = false;

	SpinLockAcquire(&rb_shared->mutex);
	i = slot_for(dboid, true);
	if (i >= 0)
	{
		RbDbSlot   *s = &rb_shared->slots[i];

		if (s->pid == 0 || (s->pid != MyProcPid && kill(s->pid, 0) != 0))
		{
			s->pid = MyProcPid;
			s->latch = MyLatch;
			s->no_extension = false;
			s->stopped = false;
			my_slot = i;
			ok = true;
		}
	}
	SpinLockRelease(&rb_shared->mutex);
	return ok;
}

/* the name of this worker's database, for log lines */
static char dbname[NAMEDATALEN];

/*
 * extension_installed: whether this database has the extension (in a
 * transaction of its own); also notes the database's name.
 */
static bool
extension_installed(void)
{
	bool		found;
	char	   *name;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	found = OidIsValid(get_extension_oid("rollback", true));
	name = get_database_name(MyDatabaseId);
	if (name)
		strlcpy(dbname, name, NAMEDATALEN);
	CommitTransactionCommand();
	return found;
}

/*
 * rb_worker_sleep: wait ms milliseconds, answering interrupts and reloads
 * (a settle interval between two runs of a check).
 */
void
rb_worker_sleep(int ms)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left;

		CHECK_FOR_INTERRUPTS();
		left = (long) ((end - GetCurrentTimestamp()) / 1000);
		if (left <= 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * serve_request: run a pending run_checks() request, answer it, then act
 * on its outcome (rb_act_on_request may revert a migration).
 */
static void
serve_request(void)
{
	RbDbSlot   *s = &rb_shared->slots[my_slot];
	int64		batch;
	char		migration[RB_REQ_TEXT];
	char		tag[RB_REQ_TEXT];
	bool		has_migration;
	bool		has_tag;
	uint64		seq;
	Latch	   *latch;
	char	   *error = NULL;
	int64		act_on = 0;
	char	   *failed_check = NULL;

	SpinLockAcquire(&rb_shared->mutex);
	if (!s->req_pending || s->done_seq == s->req_seq)
	{
		SpinLockRelease(&rb_shared->mutex);
		return;
	}
	seq = s->req_seq;
	batch = s->req_batch;
	has_migration = s->req_has_migration;
	has_tag = s->req_has_tag;
	strlcpy(migration, s->req_migration, RB_REQ_TEXT);
	strlcpy(tag, s->req_tag, RB_REQ_TEXT);
	SpinLockRelease(&rb_shared->mutex);

	error = rb_run_requested_checks(batch, has_migration ? migration : NULL,
									has_tag ? tag : NULL, &act_on, &failed_check);

	SpinLockAcquire(&rb_shared->mutex);
	s->done_seq = seq;
	strlcpy(s->done_error, error ? error : "", RB_REQ_TEXT);
	s->req_pending = false;
	latch = s->req_latch;
	SpinLockRelease(&rb_shared->mutex);
	if (latch)
		SetLatch(latch);

	if (act_on != 0)
		rb_act_on_failure(act_on, failed_check, has_tag ? "scheduled" : "check");
}

/*
 * rb_worker_request: (backend) hand a run_checks() request to this
 * database's worker and wait for its answer.  Returns NULL, or the
 * worker's error message.  Waits for another request in flight first,
 * and up to 10 s for a worker that is starting.
 */
char *
rb_worker_request(int64 batch, const char *migration, const char *tag)
{
	uint64		seq = 0;
	int			waited = 0;
	int			i;

	if (rb_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("rollback is not loaded through shared_preload_libraries"),
				 errhint("Add rollback to shared_preload_libraries and restart the server.")));
	for (;;)
	{
		Latch	   *latch = NULL;

		SpinLockAcquire(&rb_shared->mutex);
		i = slot_for(MyDatabaseId, false);
		if (i >= 0 && rb_shared->slots[i].pid != 0 && !rb_shared->slots[i].req_pending)
		{
			RbDbSlot   *s = &rb_shared->slots[i];

			s->req_pending = true;
			seq = ++s->req_seq;
			s->req_batch = batch;
			s->req_has_migration = migration != NULL;
			s->req_has_tag = tag != NULL;
			strlcpy(s->req_migration, migration ? migration : "", RB_REQ_TEXT);
			strlcpy(s->req_tag, tag ? tag : "", RB_REQ_TEXT);
			s->req_latch = MyLatch;
			latch = s->latch;
		}
		else if (i < 0 || rb_shared->slots[i].pid == 0)
			waited++;
		SpinLockRelease(&rb_shared->mutex);
		if (latch)
		{
			SetLatch(latch);
			break;
		}
		if (waited > 100)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the rollback worker is not running in this database"),
					 errhint("Check the server log; the worker needs a free background worker slot (max_worker_processes).")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/* wait for the answer */
	for (;;)
	{
		bool		done;
		bool		gone;
		char	   *error = NULL;

		SpinLockAcquire(&rb_shared->mutex);
		done = rb_shared->slots[i].done_seq >= seq;
		gone = rb_shared->slots[i].pid == 0;
		if (done && rb_shared->slots[i].done_error[0] != '\0')
			error = pstrdup(rb_shared->slots[i].done_error);
		if (gone && !done)
			rb_shared->slots[i].req_pending = false;
		SpinLockRelease(&rb_shared->mutex);
		if (done)
			return error;
		if (gone)
			return pstrdup("the worker exited while it ran the checks");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * rb_worker_main: the per-database worker.  Each pass: the run_checks()
 * request if one waits, the migrations to check, and the retention purge.
 */
void
rb_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("rollback worker");

	if (!claim_slot(dboid))
		proc_exit(0);
	before_shmem_exit(release_slot, (Datum) 0);
	if (!extension_installed())
	{
		SpinLockAcquire(&rb_shared->mutex);
		rb_shared->slots[my_slot].no_extension = true;
		SpinLockRelease(&rb_shared->mutex);
		proc_exit(0);
	}
	ereport(LOG,
			(errmsg("rollback worker started for database \"%s\"", dbname)));

	for (;;)
	{
		long		wait;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!extension_installed())
		{
			ereport(LOG,
					(errmsg("rollback worker for database \"%s\" exits: the extension was dropped",
							dbname)));
			SpinLockAcquire(&rb_shared->mutex);
			rb_shared->slots[my_slot].no_extension = true;
			SpinLockRelease(&rb_shared->mutex);
			proc_exit(0);
		}
		serve_request();
		wait = rb_check_migrations();
		serve_request();
		rb_maybe_purge();

		if (wait < 0 || wait > rollback_naptime * 1000L)
			wait = rollback_naptime * 1000L;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* rollback._worker_pid(): this database's worker, or NULL. */
Datum
rollback_worker_pid(PG_FUNCTION_ARGS)
{
	pid_t		pid = 0;
	int			i;

	if (rb_shared == NULL)
		PG_RETURN_NULL();
	SpinLockAcquire(&rb_shared->mutex);
	i = slot_for(MyDatabaseId, false);
	if (i >= 0)
		pid = rb_shared->slots[i].pid;
	SpinLockRelease(&rb_shared->mutex);
	if (pid == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32((int32) pid);
}

/* this transaction called rollback._start_worker(): ask at its commit */
static bool start_at_commit = false;
static bool start_callback_registered = false;

/*
 * request_start: at the commit of a transaction that called
 * rollback._start_worker(), ask the launcher to start this database's
 * worker.  Not earlier: a worker started before CREATE EXTENSION commits
 * would not see the extension and exit for good.  A worker that runs now
 * may be one that is about to exit for that reason (the launcher started
 * it when it found the database): wanted makes the launcher start it
 * again when it exits (release_slot wakes the launcher), and without the
 * restart delay (last_start 0).  Nothing here can fail.
 */
static void
request_start(XactEvent event, void *arg)
{
	int			i;

	if (!start_at_commit)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		start_at_commit = false;
		return;
	}
	if (event != XACT_EVENT_COMMIT)
		return;
	start_at_commit = false;
	SpinLockAcquire(&rb_shared->mutex);
	i = slot_for(MyDatabaseId, true);
	if (i < 0)
	{
		/*
		 * Every slot is taken: take one of a database found without the
		 * extension (it is looked at again when the launcher next needs to).
		 */
		for (i = 0; i < rb_shared->nslots; i++)
			if (rb_shared->slots[i].pid == 0 && rb_shared->slots[i].no_extension)
				break;
		if (i < rb_shared->nslots)
		{
			memset(&rb_shared->slots[i], 0, sizeof(RbDbSlot));
			rb_shared->slots[i].dboid = MyDatabaseId;
		}
		else
			i = -1;
	}
	if (i >= 0)
	{
		RbDbSlot   *s = &rb_shared->slots[i];

		s->wanted = true;
		s->no_extension = false;
		s->last_start = 0;
		if (s->pid == 0)
			s->stopped = false;
	}
	SpinLockRelease(&rb_shared->mutex);
	wake_launcher();
}

/*
 * rollback._start_worker(): ask the launcher to start this database's
 * worker when the transaction commits (CREATE EXTENSION).  Does nothing
 * when the library was not preloaded: there is no launcher then.
 */
Datum
rollback_start_worker(PG_FUNCTION_ARGS)
{
	if (rb_shared == NULL)
		PG_RETURN_VOID();
	if (!start_callback_registered)
	{
		RegisterXactCallback(request_start, NULL);
		start_callback_registered = true;
	}
	start_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * rb_worker_init: settings, shared memory and the launcher (from _PG_init,
 * only when preloaded).
 */
void
rb_worker_init(void)
{
	BackgroundWorker w;

	DefineCustomIntVariable("rollback.naptime",
							"Longest time the worker sleeps between two looks for work.",
							"A migration's end wakes the worker at once; this is the fallback.",
							&rollback_naptime,
							10,
							1,
							3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;

	rb_install_shmem_request(request_shmem);
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 1;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "rollback");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "rb_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "rollback launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "rollback launcher");
	RegisterBackgroundWorker(&w);
}
