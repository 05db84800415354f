/*-------------------------------------------------------------------------
 *
 * ddl.c
 *		ProcessUtility hook: refuses the utility statements that would
 *		silently break capture on a tracked table.
 *
 *		- disabling the capture triggers (by name, ALL or USER), dropping or
 *		  renaming them: a change made while they are off would have no
 *		  image, and restore would lose the row;
 *		- ENABLE TRIGGER ALL / USER is let through, then the capture triggers
 *		  are set back to ALWAYS, so that they keep firing in replica mode;
 *		- a BEFORE ROW UPDATE/DELETE trigger that would fire after the
 *		  capture trigger (see capture.c).
 *
 *		Like pg_stat_statements, it chains to the previous hook and bails out
 *		fast for every statement it does not care about.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "rollback.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* relation_oid: OID of a named relation, or InvalidOid if there is none. */
static Oid
relation_oid(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

/*
 * tracked_leaves_of: the tracked leaves among a relation and its
 * partitions (a statement on a partitioned table recurses to them).
 */
static List *
tracked_leaves_of(Oid relid)
{
	List	   *result = NIL;
	ListCell   *lc;

	if (!OidIsValid(relid))
		return NIL;
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
		if (rb_relinfo(lfirst_oid(lc))->tracked)
			result = lappend_oid(result, lfirst_oid(lc));
	return result;
}

/* is_capture_trigger: whether a trigger name is one of ours. */
static bool
is_capture_trigger(const char *name)
{
	return name && (strcmp(name, RB_TRIGGER_ROW) == 0 ||
					strcmp(name, RB_TRIGGER_TRUNCATE) == 0);
}

/* refuse_trigger_change: the error for touching a capture trigger. */
static void
refuse_trigger_change(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot disable, drop or rename the capture triggers of tracked table \"%s\"",
					get_rel_name(relid)),
			 errdetail("Changes made while they are off could not be restored."),
			 errhint("Call rollback.untrack() first, or name the other triggers one by one.")));
}

/*
 * check_alter_table: refuse trigger subcommands that would switch capture
 * off.  Returns whether the capture triggers must be set back to ALWAYS
 * afterwards.
 */
static bool
check_alter_table(AlterTableStmt *stmt, List **leaves)
{
	ListCell   *lc;
	bool		reenable = false;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_DisableTrigAll:
			case AT_DisableTrigUser:
			case AT_EnableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrig:
			case AT_EnableTrig:
			case AT_EnableReplicaTrig:
				break;
			default:
				continue;
		}
		if (*leaves == NIL)
			*leaves = tracked_leaves_of(relation_oid(stmt->relation));
		if (*leaves == NIL)
			return false;
		if (cmd->subtype == AT_EnableTrigAll || cmd->subtype == AT_EnableTrigUser)
			reenable = true;
		else if (cmd->subtype == AT_DisableTrigAll || cmd->subtype == AT_DisableTrigUser ||
				 is_capture_trigger(cmd->name))
			refuse_trigger_change(linitial_oid(*leaves));
	}
	return reenable;
}

/*
 * check_create_trigger: refuse a BEFORE ROW UPDATE or DELETE trigger on a
 * tracked table that would fire after the capture trigger (triggers fire in
 * name order): if it cancelled the change, the image already taken would
 * stand beside the unchanged row.
 */
static void
check_create_trigger(CreateTrigStmt *stmt)
{
	if (!stmt->row || !TRIGGER_FOR_BEFORE(stmt->timing) ||
		!(TRIGGER_FOR_UPDATE(stmt->events) || TRIGGER_FOR_DELETE(stmt->events)) ||
		strcmp(stmt->trigname, RB_TRIGGER_ROW) <= 0)
		return;
	if (tracked_leaves_of(relation_oid(stmt->relation)) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("BEFORE ROW trigger \"%s\" would fire after the capture trigger of tracked table \"%s\"",
						stmt->trigname, stmt->relation->relname),
				 errdetail("BEFORE triggers fire in name order, and a change cancelled after its capture would leave a wrong image."),
				 errhint("Give the trigger a name that sorts before \"%s\".", RB_TRIGGER_ROW)));
}

/* reenable_always: set the capture triggers of the leaves back to ALWAYS. */
static void
reenable_always(List *leaves)
{
	RbOwnerSave save;
	ListCell   *lc;

	rb_spi_connect_as_owner(&save);
	foreach(lc, leaves)
		rb_internal_ddl(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER " RB_TRIGGER_ROW
								 ", ENABLE ALWAYS TRIGGER " RB_TRIGGER_TRUNCATE,
								 rb_qualified_name(lfirst_oid(lc))));
	rb_spi_finish_as_owner(&save);
}

/*
 * run_journaled: run the statement, with its migration journal entry when
 * it is DDL inside a migration (journal.c).
 */
static void
run_journaled(RB_UTILITY_ARGS)
{
	bool		handled;
	JournalFrame *frame;

	frame = rb_journal_begin(pstmt, queryString, context, &handled);
	if (handled)
		return;
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(RB_UTILITY_CALL_ARGS);
		else
			standard_ProcessUtility(RB_UTILITY_CALL_ARGS);
	}
	PG_CATCH();
	{
		if (frame)
			rb_journal_abort(frame);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (frame)
		rb_journal_end(frame);
}

/*
 * rb_process_utility: the hook.  Only a few statement types are looked at,
 * and only in databases where the extension is installed.
 */
static void
rb_process_utility(RB_UTILITY_ARGS)
{
	Node	   *parsetree = pstmt->utilityStmt;
	List	   *leaves = NIL;
	bool		reenable = false;

	/*
	 * DROP DATABASE, CREATE DATABASE ... TEMPLATE, ALTER DATABASE ...
	 * RENAME and SET TABLESPACE wait for the database to have no session:
	 * stop its worker first (the launcher starts it again later).
	 */
	if (IsA(parsetree, DropdbStmt))
		rb_worker_stop_for(get_database_oid(((DropdbStmt *) parsetree)->dbname, true));
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
		rb_worker_stop_for(get_database_oid(((RenameStmt *) parsetree)->subname, true));
	else if (IsA(parsetree, AlterDatabaseStmt))
	{
		ListCell   *lc;

		foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
				rb_worker_stop_for(get_database_oid(((AlterDatabaseStmt *) parsetree)->dbname, true));
	}
	else if (IsA(parsetree, CreatedbStmt))
	{
		ListCell   *lc;

		foreach(lc, ((CreatedbStmt *) parsetree)->options)
		{
			DefElem    *opt = lfirst(lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				rb_worker_stop_for(get_database_oid(defGetString(opt), true));
		}
	}

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
		case T_DropStmt:
		case T_RenameStmt:
		case T_CreateTrigStmt:
			break;
		default:
			goto run;
	}
	if (rb_in_internal_ddl() || !IsTransactionState() ||
		!OidIsValid(get_extension_oid("rollback", true)))
		goto run;

	if (IsA(parsetree, AlterTableStmt))
		reenable = check_alter_table((AlterTableStmt *) parsetree, &leaves);
	else if (IsA(parsetree, DropStmt) &&
			 ((DropStmt *) parsetree)->removeType == OBJECT_TRIGGER)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			List	   *names = (List *) lfirst(lc);
			char	   *trigname = strVal(llast(names));
			List	   *relname = list_truncate(list_copy(names), list_length(names) - 1);
			Oid			relid = relation_oid(makeRangeVarFromNameList(relname));

			if (is_capture_trigger(trigname) && tracked_leaves_of(relid) != NIL)
				refuse_trigger_change(relid);
		}
	}
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_TRIGGER)
	{
		RenameStmt *stmt = (RenameStmt *) parsetree;
		Oid			relid = relation_oid(stmt->relation);

		if (is_capture_trigger(stmt->subname) && tracked_leaves_of(relid) != NIL)
			refuse_trigger_change(relid);
		if (strcmp(stmt->newname, RB_TRIGGER_ROW) > 0 && OidIsValid(relid) &&
			tracked_leaves_of(relid) != NIL)
		{
			/* renaming a BEFORE ROW trigger to fire after capture */
			RbOwnerSave save;
			Oid			argtypes[2] = {OIDOID, TEXTOID};
			Datum		values[2];
			CreateTrigStmt fake;
			int16		tgtype = 0;
			bool		found;

			values[0] = ObjectIdGetDatum(relid);
			values[1] = CStringGetTextDatum(stmt->subname);
			rb_spi_connect_as_owner(&save);
			rb_spi_exec("SELECT tgtype FROM pg_catalog.pg_trigger"
						" WHERE tgrelid = $1 AND tgname = $2::name",
						2, argtypes, values, NULL, true, SPI_OK_SELECT);
			found = SPI_processed > 0;
			if (found)
			{
				bool		isnull;

				tgtype = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
			}
			rb_spi_finish_as_owner(&save);
			if (found)
			{
				memset(&fake, 0, sizeof(fake));
				fake.row = TRIGGER_FOR_ROW(tgtype);
				fake.timing = tgtype & TRIGGER_TYPE_TIMING_MASK;
				fake.events = tgtype & TRIGGER_TYPE_EVENT_MASK;
				fake.trigname = stmt->newname;
				fake.relation = stmt->relation;
				check_create_trigger(&fake);
			}
		}
	}
	else if (IsA(parsetree, CreateTrigStmt))
		check_create_trigger((CreateTrigStmt *) parsetree);

run:
	/* a migration's writes outside the executor */
	if ((IsA(parsetree, TruncateStmt) || IsA(parsetree, CopyStmt)) &&
		rb_current_migration() != 0)
		rb_migration_record_xid();
	run_journaled(RB_UTILITY_CALL_ARGS);

	if (reenable)
		reenable_always(leaves);
}

/* rb_ddl_init: install the hook (from _PG_init). */
void
rb_ddl_init(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = rb_process_utility;
}
