/*-------------------------------------------------------------------------
 *
 * journal.c
 *		The undo journal of migrations: what each DDL statement destroys
 *		or creates, kept so that a revert can undo it (DESIGN.md, section 3).
 *
 * A DDL statement run inside a migration goes through rb_journal_begin
 * (before it runs) and rb_journal_end (after), from the ProcessUtility hook:
 *
 *	- a statement that alters existing objects (ALTER, RENAME, COMMENT,
 *	  GRANT, CREATE INDEX or TRIGGER on a table, DROP INDEX ...) has each
 *	  target's definition read before and after (rollback._rel_state,
 *	  _obj_state); rollback._undo turns the difference into statements;
 *	- a statement that creates objects has them listed by the
 *	  ddl_command_end event trigger rollback._on_ddl_journal, which queues
 *	  a DROP for each into the statement's frame;
 *	- DROP TABLE, VIEW, SEQUENCE, FUNCTION, TYPE, DOMAIN do not run: the
 *	  object moves into a holding schema of its own, through nested
 *	  CREATE SCHEMA and ALTER ... SET SCHEMA statements that are journaled
 *	  like any other (dependents dropped by CASCADE first, the same way);
 *	- a statement that would destroy rows (DROP COLUMN, ALTER COLUMN TYPE,
 *	  a rewrite) has the table's content as of the migration's point copied
 *	  first, once per migration;
 *	- anything else is irreversible: refused, or with
 *	  rollback.irreversible_ddl = warn run and the migration flagged.
 *
 * Frames nest (a statement may run others); the innermost is current.  A
 * frame lives in the memory context of the hook call that made it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "rollback.h"

PG_FUNCTION_INFO_V1(rollback_on_ddl_journal);

/* rollback.irreversible_ddl */
enum
{
	IRREVERSIBLE_ERROR,
	IRREVERSIBLE_WARN
};
static const struct config_enum_entry irreversible_options[] = {
	{"error", IRREVERSIBLE_ERROR, false},
	{"warn", IRREVERSIBLE_WARN, false},
	{NULL, 0, false}
};
int			rollback_irreversible_ddl = IRREVERSIBLE_ERROR;

/* What a statement needs from the journal. */
typedef enum
{
	J_NONE,						/* not ours to journal */
	J_DIFF,						/* compare its targets before and after */
	J_CREATE,					/* creates objects: drop them on undo */
	J_DROP,						/* DROP of movable objects */
	J_NOUNDO,					/* changes nothing a revert must undo */
	J_IRREVERSIBLE
} JKind;

struct JournalFrame
{
	int64		migration;
	const char *tag;
	char	   *statement;
	JKind		kind;
	List	   *classids;		/* targets: 0 for a relation */
	List	   *objids;
	List	   *befores;		/* jsonb text per target, or NULL */
	List	   *drops;			/* undo of created objects, newest first */
	List	   *created;		/* their identities */
	List	   *relids;			/* relations the statement touches */
	List	   *preserve;		/* relations whose content to keep first */
	List	   *holdseqs;		/* sequences a DROP COLUMN would drop */
	List	   *leafcols;		/* jsonb text: leaves' numbers of those columns */
	char	   *irreversible;
	bool		skip_creates;	/* CREATE OR REPLACE of an existing object */
	MemoryContext cxt;
	JournalFrame *outer;
};

static JournalFrame *current_frame = NULL;

/* add_target: compare this object before and after the statement. */
static void
add_target(JournalFrame *f, Oid classid, Oid objid)
{
	ListCell   *lc1;
	ListCell   *lc2;

	if (!OidIsValid(objid))
		return;
	if (classid == RelationRelationId)
		classid = InvalidOid;
	/* once each (DROP INDEX a, b names one table twice) */
	forboth(lc1, f->classids, lc2, f->objids)
		if (lfirst_oid(lc1) == classid && lfirst_oid(lc2) == objid)
			return;
	f->classids = lappend_oid(f->classids, classid);
	f->objids = lappend_oid(f->objids, objid);
	if (!OidIsValid(classid))
		f->relids = list_append_unique_oid(f->relids, objid);
}

/* rel_of_rv: the relation a RangeVar names, without locking, or InvalidOid. */
static Oid
rel_of_rv(RangeVar *rv)
{
	if (rv == NULL)
		return InvalidOid;
	return RangeVarGetRelid(rv, NoLock, true);
}

/* address_of: the object a statement names, or InvalidOid as objectId. */
static ObjectAddress
address_of(ObjectType type, Node *object, LOCKMODE lockmode)
{
	Relation	rel = NULL;
	ObjectAddress addr;

	if ((type == OBJECT_TYPE || type == OBJECT_DOMAIN) && IsA(object, List))
		object = (Node *) makeTypeNameFromNameList((List *) object);
	addr = get_object_address(type, object, &rel, lockmode, true);
	if (rel != NULL)
	{
		/* a sub-object of a relation: the relation is the target */
		addr.classId = RelationRelationId;
		addr.objectId = RelationGetRelid(rel);
		addr.objectSubId = 0;
		relation_close(rel, NoLock);
	}
	return addr;
}

/* add_address_target: a target given as an object address. */
static bool
add_address_target(JournalFrame *f, ObjectType type, Node *object, LOCKMODE lockmode)
{
	ObjectAddress addr = address_of(type, object, lockmode);

	if (!OidIsValid(addr.objectId))
		return true;			/* missing: the statement reports it */
	switch (addr.classId)
	{
		case RelationRelationId:
		case ProcedureRelationId:
		case TypeRelationId:
		case NamespaceRelationId:
			add_target(f, addr.classId, addr.objectId);
			return true;
		default:
			return false;
	}
}

/* is_relation_type: object types that are relations or their parts. */
static bool
is_relation_type(ObjectType type)
{
	switch (type)
	{
		case OBJECT_TABLE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_INDEX:
		case OBJECT_SEQUENCE:
		case OBJECT_FOREIGN_TABLE:
		case OBJECT_COLUMN:
		case OBJECT_TABCONSTRAINT:
		case OBJECT_TRIGGER:
		case OBJECT_POLICY:
		case OBJECT_RULE:
			return true;
		default:
			return false;
	}
}

/* is_object_type: non-relation object types the journal can set back. */
static bool
is_object_type(ObjectType type)
{
	switch (type)
	{
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
		case OBJECT_AGGREGATE:
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
		case OBJECT_SCHEMA:
			return true;
		default:
			return false;
	}
}

/*
 * is_constant: whether a raw default expression is a literal (possibly
 * cast), so that ADD COLUMN ... DEFAULT it does not rewrite the table.
 */
static bool
is_constant(Node *expr)
{
	if (expr == NULL)
		return true;
	if (IsA(expr, TypeCast))
		expr = ((TypeCast *) expr)->arg;
	return IsA(expr, A_Const);
}

/*
 * add_column_rewrites: whether ADD COLUMN will rewrite the table (a
 * volatile default, identity, stored generated column or serial type).
 */
static bool
add_column_rewrites(ColumnDef *def)
{
	ListCell   *lc;
	const char *typname;

	if (def->typeName != NULL)
	{
		typname = strVal(llast(def->typeName->names));
		if (strcmp(typname, "serial") == 0 || strcmp(typname, "bigserial") == 0 ||
			strcmp(typname, "smallserial") == 0 || strcmp(typname, "serial4") == 0 ||
			strcmp(typname, "serial8") == 0 || strcmp(typname, "serial2") == 0)
			return true;
	}
	if (def->identity || def->generated || !is_constant(def->raw_default))
		return true;
	foreach(lc, def->constraints)
	{
		Constraint *con = lfirst_node(Constraint, lc);

		if (con->contype == CONSTR_IDENTITY || con->contype == CONSTR_GENERATED)
			return true;
		if (con->contype == CONSTR_DEFAULT && !is_constant(con->raw_expr))
			return true;
	}
	return false;
}

/*
 * owned_sequence: the sequence that column colname of relid owns (a serial
 * column's), if nothing but that column's default uses it, else InvalidOid.
 * DROP COLUMN drops such a sequence with the column; one that something
 * else uses is left to the DROP (it refuses, or CASCADE drops the users).
 */
static Oid
owned_sequence(Oid relid, const char *colname)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	Oid			result = InvalidOid;

	if (!OidIsValid(relid) || colname == NULL)
		return InvalidOid;
	values[0] = ObjectIdGetDatum(relid);
	values[1] = CStringGetTextDatum(colname);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT d.objid FROM pg_catalog.pg_depend d"
				" JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
				" JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
				" WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
				" AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
				" AND d.refobjid = $1 AND a.attname = $2 AND d.deptype = 'a'"
				" AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend x"
				"  WHERE x.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND x.refobjid = d.objid"
				"  AND NOT (x.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND x.objid IN"
				"   (SELECT ad.oid FROM pg_catalog.pg_attrdef ad WHERE ad.adrelid = $1 AND ad.adnum = a.attnum)))",
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;

		result = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
												&isnull));
	}
	rb_spi_finish_as_owner(&save);
	return result;
}

/*
 * add_dependents: for ALTER TABLE ... DROP COLUMN or DROP CONSTRAINT with
 * CASCADE, the objects the cascade will drop that live outside the table
 * (views over the column, foreign keys of other tables that reference it
 * or the constraint's index, their triggers, policies, functions whose
 * body uses it), become targets too, their owners' states compared
 * before and after: the undo creates them again.  Nearest first, so that
 * a view is created again before the views over it.  start is the
 * dropped column (classid pg_class, relid, attnum) or the constraint.
 */
static void
add_dependents(JournalFrame *f, Oid relid, Oid classid, Oid objid, int32 subid)
{
	RbOwnerSave save;
	Oid			argtypes[4] = {OIDOID, OIDOID, INT4OID, OIDOID};
	Datum		values[4];
	uint64		i;

	values[0] = ObjectIdGetDatum(classid);
	values[1] = ObjectIdGetDatum(objid);
	values[2] = Int32GetDatum(subid);
	values[3] = ObjectIdGetDatum(relid);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("WITH RECURSIVE s(classid, objid, subid) AS ("
				"  SELECT $1, $2, $3"
				"  UNION SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, k.conindid, 0"
				"   FROM pg_catalog.pg_constraint k"
				"   WHERE $1 = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.oid = $2"
				"   AND k.conindid <> 0),"
				" d(classid, objid, depth) AS ("
				"  SELECT x.classid, x.objid, 1 FROM pg_catalog.pg_depend x JOIN s"
				"   ON x.refclassid = s.classid AND x.refobjid = s.objid"
				"   AND (s.subid = 0 OR x.refobjsubid = s.subid)"
				"   WHERE x.deptype = 'n'"
				"  UNION"
				/* what depends on a view the cascade drops goes too */
				"  SELECT x.classid, x.objid, d.depth + 1 FROM d"
				"   JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
				"    AND r.oid = d.objid AND r.ev_class <> $4"
				"   JOIN pg_catalog.pg_depend x ON x.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
				"    AND x.refobjid = r.ev_class AND x.deptype = 'n'"
				"   WHERE d.depth < 100),"
				" o(classid, objid, depth) AS ("
				"  SELECT CASE WHEN d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass THEN d.classid"
				"   ELSE 0 END,"
				"   CASE d.classid"
				"    WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN"
				"     (SELECT r.ev_class FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)"
				"    WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN"
				"     (SELECT k.conrelid FROM pg_catalog.pg_constraint k WHERE k.oid = d.objid)"
				"    WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN"
				"     (SELECT t.tgrelid FROM pg_catalog.pg_trigger t WHERE t.oid = d.objid)"
				"    WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN"
				"     (SELECT p.polrelid FROM pg_catalog.pg_policy p WHERE p.oid = d.objid)"
				"    WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN"
				"     (SELECT a.adrelid FROM pg_catalog.pg_attrdef a WHERE a.oid = d.objid)"
				"    WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN"
				"     coalesce((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = d.objid),"
				"      d.objid)"
				"    WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN d.objid END,"
				"   d.depth FROM d)"
				" SELECT o.classid, o.objid FROM o WHERE o.objid IS NOT NULL"
				"  AND NOT (o.classid = 0 AND o.objid = $4)"
				" GROUP BY o.classid, o.objid ORDER BY min(o.depth), o.objid",
				4, argtypes, values, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			cls = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
		Oid			oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 2, &isnull));
		MemoryContext old = MemoryContextSwitchTo(f->cxt);

		add_target(f, OidIsValid(cls) ? cls : RelationRelationId, oid);
		MemoryContextSwitchTo(old);
	}
	rb_spi_finish_as_owner(&save);
}

/*
 * note_leaf_columns: before DROP COLUMN on a partitioned table, the number
 * of the column in each leaf ({parent, rel, num, name}).  The content of
 * each leaf is kept with the leaf's column numbers, which may differ from
 * the parent's; the journal entry's readd lists them with the parent's,
 * so that the revert, re-adding the column to the parent, renumbers each
 * leaf's content (renumber_content in revert.c).
 */
static void
note_leaf_columns(JournalFrame *f, Oid relid, const char *colname)
{
	ListCell   *lc;

	foreach(lc, rb_expand_leaves(relid, false))
	{
		AttrNumber	num = get_attnum(lfirst_oid(lc), colname);
		StringInfoData buf;

		if (num == InvalidAttrNumber)
			continue;
		initStringInfo(&buf);
		appendStringInfo(&buf, "{\"parent\": \"%u\", \"rel\": \"%u\", \"num\": %d, \"name\": ",
						 relid, lfirst_oid(lc), num);
		escape_json(&buf, colname);
		appendStringInfoChar(&buf, '}');
		f->leafcols = lappend(f->leafcols, buf.data);
	}
}

/*
 * classify_alter_table: targets of ALTER TABLE (and INDEX, VIEW, SEQUENCE),
 * and whether it destroys rows, so that the content is kept first.
 */
static JKind
classify_alter_table(AlterTableStmt *stmt, JournalFrame *f)
{
	Oid			relid = rel_of_rv(stmt->relation);
	bool		destroys = false;
	ListCell   *lc;

	add_target(f, RelationRelationId, relid);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		switch (cmd->subtype)
		{
			case AT_AttachPartition:
			case AT_DetachPartition:
				add_target(f, RelationRelationId,
						   rel_of_rv(((PartitionCmd *) cmd->def)->name));
				break;
			case AT_DropColumn:
				{
					Oid			seq = owned_sequence(relid, cmd->name);
					AttrNumber	attnum = OidIsValid(relid) ? get_attnum(relid, cmd->name) :
						InvalidAttrNumber;

					if (OidIsValid(seq))
						f->holdseqs = list_append_unique_oid(f->holdseqs, seq);
					if (cmd->behavior == DROP_CASCADE && attnum != InvalidAttrNumber)
						add_dependents(f, relid, RelationRelationId, relid, attnum);
				}
				if (OidIsValid(relid) && get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
					note_leaf_columns(f, relid, cmd->name);
				destroys = true;
				break;
			case AT_DropConstraint:
				if (cmd->behavior == DROP_CASCADE && OidIsValid(relid))
				{
					Oid			conid = get_relation_constraint_oid(relid, cmd->name, true);

					if (OidIsValid(conid))
						add_dependents(f, relid, ConstraintRelationId, conid, 0);
				}
				break;
			case AT_AlterColumnType:
			case AT_SetLogged:
			case AT_SetUnLogged:
				destroys = true;
				break;
			case AT_AddColumn:
				if (add_column_rewrites(castNode(ColumnDef, cmd->def)))
					destroys = true;
				break;
			default:
				break;
		}
	}
	if (destroys && OidIsValid(relid))
		f->preserve = lappend_oid(f->preserve, relid);
	return J_DIFF;
}

/* schema_is_empty: whether no object lives in the schema. */
static bool
schema_is_empty(Oid nsp)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	bool		result;

	values[0] = ObjectIdGetDatum(nsp);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT 1 FROM pg_catalog.pg_depend WHERE refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass"
				" AND refobjid = $1 AND deptype = 'n' LIMIT 1",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	result = SPI_processed == 0;
	rb_spi_finish_as_owner(&save);
	return result;
}

/*
 * classify: what the journal does with a DDL statement, and its targets.
 * *nsps gets the schemas it touches, for automatic tracking.
 */
static JKind
classify(Node *stmt, JournalFrame *f, List **nsps)
{
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			return classify_alter_table((AlterTableStmt *) stmt, f);
		case T_AlterSeqStmt:
			add_target(f, RelationRelationId, rel_of_rv(((AlterSeqStmt *) stmt)->sequence));
			return J_DIFF;
		case T_RenameStmt:
			{
				RenameStmt *rs = (RenameStmt *) stmt;

				if (is_relation_type(rs->renameType) || rs->renameType == OBJECT_ATTRIBUTE)
				{
					add_target(f, RelationRelationId, rel_of_rv(rs->relation));
					return J_DIFF;
				}
				if (rs->renameType == OBJECT_SCHEMA)
				{
					add_target(f, NamespaceRelationId, get_namespace_oid(rs->subname, true));
					return J_DIFF;
				}
				if (is_object_type(rs->renameType) &&
					add_address_target(f, rs->renameType, rs->object, AccessExclusiveLock))
					return J_DIFF;
				break;
			}
		case T_IndexStmt:
			if (((IndexStmt *) stmt)->concurrent)
			{
				f->irreversible = "CREATE INDEX CONCURRENTLY commits on its own, outside the migration's transaction.";
				add_target(f, RelationRelationId, rel_of_rv(((IndexStmt *) stmt)->relation));
				return J_IRREVERSIBLE;
			}
			add_target(f, RelationRelationId, rel_of_rv(((IndexStmt *) stmt)->relation));
			return J_DIFF;
		case T_CreateTrigStmt:
			add_target(f, RelationRelationId, rel_of_rv(((CreateTrigStmt *) stmt)->relation));
			return J_DIFF;
		case T_CreatePolicyStmt:
			add_target(f, RelationRelationId, rel_of_rv(((CreatePolicyStmt *) stmt)->table));
			return J_DIFF;
		case T_AlterPolicyStmt:
			add_target(f, RelationRelationId, rel_of_rv(((AlterPolicyStmt *) stmt)->table));
			return J_DIFF;
		case T_RuleStmt:
			add_target(f, RelationRelationId, rel_of_rv(((RuleStmt *) stmt)->relation));
			return J_DIFF;
		case T_CommentStmt:
			{
				CommentStmt *cs = (CommentStmt *) stmt;

				if ((is_relation_type(cs->objtype) || is_object_type(cs->objtype)) &&
					add_address_target(f, cs->objtype, cs->object, ShareUpdateExclusiveLock))
					return J_DIFF;
				break;
			}
		case T_GrantStmt:
			{
				GrantStmt *gs = (GrantStmt *) stmt;

				if (gs->targtype == ACL_TARGET_OBJECT &&
					(gs->objtype == OBJECT_TABLE || gs->objtype == OBJECT_SEQUENCE))
				{
					foreach(lc, gs->objects)
						add_target(f, RelationRelationId, rel_of_rv(lfirst_node(RangeVar, lc)));
					return J_DIFF;
				}
				if (gs->targtype == ACL_TARGET_OBJECT && is_object_type(gs->objtype))
				{
					foreach(lc, gs->objects)
					{
						Node	   *obj = lfirst(lc);

						if (!add_address_target(f, gs->objtype, obj, AccessShareLock))
							return J_IRREVERSIBLE;
					}
					return J_DIFF;
				}
				if (gs->targtype == ACL_TARGET_ALL_IN_SCHEMA &&
					(gs->objtype == OBJECT_TABLE || gs->objtype == OBJECT_SEQUENCE))
				{
					foreach(lc, gs->objects)
					{
						Oid			nsp = get_namespace_oid(strVal(lfirst(lc)), true);
						List	   *rels;
						ListCell   *lc2;
						RbOwnerSave save;
						Oid			argtypes[2] = {OIDOID, BOOLOID};
						Datum		values[2];
						MemoryContext cxt = CurrentMemoryContext;

						if (!OidIsValid(nsp))
							continue;
						values[0] = ObjectIdGetDatum(nsp);
						values[1] = BoolGetDatum(gs->objtype == OBJECT_SEQUENCE);
						rb_spi_connect_as_owner(&save);
						rb_spi_exec("SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = $1"
									" AND CASE WHEN $2 THEN relkind = 'S'"
									" ELSE relkind IN ('r', 'v', 'm', 'f', 'p') END",
									2, argtypes, values, NULL, false, SPI_OK_SELECT);
						rels = rb_spi_oid_list(1, cxt);
						rb_spi_finish_as_owner(&save);
						foreach(lc2, rels)
							add_target(f, RelationRelationId, lfirst_oid(lc2));
						*nsps = lappend_oid(*nsps, nsp);
					}
					return J_DIFF;
				}
				break;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *as = (AlterObjectSchemaStmt *) stmt;

				if (is_relation_type(as->objectType))
				{
					add_target(f, RelationRelationId, rel_of_rv(as->relation));
					return J_DIFF;
				}
				if (is_object_type(as->objectType) &&
					add_address_target(f, as->objectType, as->object, AccessExclusiveLock))
					return J_DIFF;
				break;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *os = (AlterOwnerStmt *) stmt;

				if (is_object_type(os->objectType) &&
					add_address_target(f, os->objectType, os->object, AccessExclusiveLock))
					return J_DIFF;
				break;
			}
		case T_AlterFunctionStmt:
			{
				AlterFunctionStmt *af = (AlterFunctionStmt *) stmt;

				add_target(f, ProcedureRelationId,
						   LookupFuncWithArgs(af->objtype, af->func, true));
				return J_DIFF;
			}
		case T_CreateFunctionStmt:
			{
				CreateFunctionStmt *cf = (CreateFunctionStmt *) stmt;
				char	   *name;
				Oid			nsp;

				nsp = QualifiedNameGetCreationNamespace(cf->funcname, &name);
				*nsps = lappend_oid(*nsps, nsp);
				if (cf->replace)
				{
					ObjectWithArgs *owa = makeNode(ObjectWithArgs);
					ListCell   *lc2;

					owa->objname = cf->funcname;
					foreach(lc2, cf->parameters)
					{
						FunctionParameter *fp = lfirst_node(FunctionParameter, lc2);

						if (fp->mode != FUNC_PARAM_OUT && fp->mode != FUNC_PARAM_TABLE)
							owa->objargs = lappend(owa->objargs, fp->argType);
					}
					add_target(f, ProcedureRelationId,
							   LookupFuncWithArgs(cf->is_procedure ? OBJECT_PROCEDURE : OBJECT_FUNCTION,
												  owa, true));
					if (f->objids != NIL)
					{
						f->skip_creates = true;
						return J_DIFF;
					}
				}
				return J_CREATE;
			}
		case T_ViewStmt:
			{
				ViewStmt   *vs = (ViewStmt *) stmt;
				Oid			relid = rel_of_rv(vs->view);

				if (vs->replace && OidIsValid(relid))
				{
					add_target(f, RelationRelationId, relid);
					f->skip_creates = true;
					return J_DIFF;
				}
				*nsps = lappend_oid(*nsps, RangeVarGetCreationNamespace(vs->view));
				return J_CREATE;
			}
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			{
				RangeVar   *rv = ((CreateStmt *) stmt)->relation;

				if (rv->relpersistence == RELPERSISTENCE_TEMP)
					return J_NONE;
				if (!rb_is_registry_name(rv->relname))
					*nsps = lappend_oid(*nsps, RangeVarGetCreationNamespace(rv));
				return J_CREATE;
			}
		case T_CreateTableAsStmt:
			{
				RangeVar   *rv = ((CreateTableAsStmt *) stmt)->into->rel;

				if (rv->relpersistence == RELPERSISTENCE_TEMP)
					return J_NONE;
				*nsps = lappend_oid(*nsps, RangeVarGetCreationNamespace(rv));
				return J_CREATE;
			}
		case T_CreateSeqStmt:
			if (((CreateSeqStmt *) stmt)->sequence->relpersistence == RELPERSISTENCE_TEMP)
				return J_NONE;
			*nsps = lappend_oid(*nsps, RangeVarGetCreationNamespace(((CreateSeqStmt *) stmt)->sequence));
			return J_CREATE;
		case T_DefineStmt:
		case T_CompositeTypeStmt:
		case T_CreateEnumStmt:
		case T_CreateRangeStmt:
		case T_CreateDomainStmt:
		case T_CreateSchemaStmt:
		case T_CreateExtensionStmt:
		case T_CreateStatsStmt:
			return J_CREATE;
		case T_DropStmt:
			{
				DropStmt   *ds = (DropStmt *) stmt;

				/*
				 * A revert drops views and functions for real: they keep no
				 * data, and one moved into a holding schema would still
				 * depend on the columns and tables that the revert of an
				 * earlier migration must drop next.  The journal keeps their
				 * definition (_undo creates them again), so that the revert
				 * can be reverted.  Holding is for what must keep its OID.
				 */
				if (rb_in_revert() && !ds->concurrent &&
					(ds->removeType == OBJECT_VIEW || ds->removeType == OBJECT_MATVIEW ||
					 ds->removeType == OBJECT_FUNCTION || ds->removeType == OBJECT_PROCEDURE))
				{
					foreach(lc, ds->objects)
					{
						ObjectAddress addr = address_of(ds->removeType, lfirst(lc), AccessExclusiveLock);

						add_target(f, addr.classId, addr.objectId);
					}
					return J_DIFF;
				}
				switch (ds->removeType)
				{
					case OBJECT_TABLE:
					case OBJECT_VIEW:
					case OBJECT_MATVIEW:
					case OBJECT_SEQUENCE:
					case OBJECT_FUNCTION:
					case OBJECT_PROCEDURE:
					case OBJECT_TYPE:
					case OBJECT_DOMAIN:
						foreach(lc, ds->objects)
						{
							ObjectAddress addr = address_of(ds->removeType, lfirst(lc), AccessExclusiveLock);

							if (OidIsValid(addr.objectId))
								*nsps = lappend_oid(*nsps, get_object_namespace(&addr));
						}
						return J_DROP;
					case OBJECT_INDEX:
						if (ds->concurrent)
						{
							f->irreversible = "DROP INDEX CONCURRENTLY commits on its own, outside the migration's transaction.";
							return J_IRREVERSIBLE;
						}
						foreach(lc, ds->objects)
						{
							Oid			idx = rel_of_rv(makeRangeVarFromNameList((List *) lfirst(lc)));

							if (OidIsValid(idx))
								add_target(f, RelationRelationId, IndexGetRelation(idx, true));
						}
						return J_DIFF;
					case OBJECT_TRIGGER:
					case OBJECT_POLICY:
					case OBJECT_RULE:
						foreach(lc, ds->objects)
						{
							List	   *names = (List *) lfirst(lc);

							add_target(f, RelationRelationId,
									   rel_of_rv(makeRangeVarFromNameList(list_truncate(list_copy(names),
																					   list_length(names) - 1))));
						}
						return J_DIFF;
					case OBJECT_SCHEMA:
						foreach(lc, ds->objects)
						{
							Oid			nsp = get_namespace_oid(strVal(lfirst(lc)), true);

							if (!OidIsValid(nsp))
								continue;
							add_target(f, NamespaceRelationId, nsp);
							*nsps = lappend_oid(*nsps, nsp);
							if (ds->behavior == DROP_CASCADE && !schema_is_empty(nsp))
							{
								f->irreversible = "DROP SCHEMA ... CASCADE of a schema that holds objects cannot be undone.";
								return J_IRREVERSIBLE;
							}
						}
						return J_DIFF;
					default:
						break;
				}
				break;
			}
		case T_ClusterStmt:
		case T_RefreshMatViewStmt:
			return J_NOUNDO;
		default:
			break;
	}
	if (f->irreversible == NULL)
		f->irreversible = psprintf("The journal cannot undo %s.", f->tag);
	foreach(lc, f->relids)
		*nsps = lappend_oid(*nsps, get_rel_namespace(lfirst_oid(lc)));
	return J_IRREVERSIBLE;
}

/*
 * touches_tracked: whether one of these schemas is tracked, or holds a
 * tracked table (other than a tool's history table).
 */
static bool
touches_tracked(List *nsps, List *relids)
{
	RbOwnerSave save;
	Oid			argtypes[1] = {OIDARRAYOID};
	Datum		values[1];
	ListCell   *lc;
	bool		result;

	foreach(lc, relids)
		nsps = lappend_oid(nsps, get_rel_namespace(lfirst_oid(lc)));
	if (nsps == NIL)
		return false;
	values[0] = rb_oid_array(nsps);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT 1 FROM pg_catalog.pg_namespace s WHERE s.oid = ANY ($1)"
				" AND s.nspname NOT IN ('rollback', 'rollback_store')"
				" AND s.nspname NOT LIKE 'rollback\\_hold\\_%'"
				" AND (s.nspname IN (SELECT nspname FROM rollback.tracked_schema)"
				"  OR EXISTS (SELECT 1 FROM rollback.tracked_table t"
				"   JOIN pg_catalog.pg_class c ON c.oid = t.relid"
				"   WHERE c.relnamespace = s.oid AND NOT rollback._is_registry(c.oid)))",
				1, argtypes, values, NULL, false, SPI_OK_SELECT);
	result = SPI_processed > 0;
	rb_spi_finish_as_owner(&save);
	return result;
}

/*
 * mark_irreversible: a statement the journal cannot undo.  Refused with
 * rollback.irreversible_ddl = error; else the migration is flagged.  A
 * revert's own statements only flag it (the revert must finish).
 */
static void
mark_irreversible(int64 migration, const char *tag, const char *reason)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	if (rollback_irreversible_ddl == IRREVERSIBLE_ERROR && !rb_in_revert())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot be undone by a migration revert", tag),
				 errdetail("%s", reason),
				 errhint("Set rollback.irreversible_ddl to 'warn' to run it anyway; the migration then cannot be reverted.")));
	if (!rb_in_revert())
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("%s makes the migration irreversible", tag),
				 errdetail("%s", reason)));
	values[0] = Int64GetDatum(migration);
	values[1] = CStringGetTextDatum(psprintf("%s: %s", tag, reason));
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("UPDATE rollback.migration SET irreversible = coalesce(irreversible, $2)"
				" WHERE id = $1",
				2, argtypes, values, NULL, false, SPI_OK_UPDATE);
	rb_spi_finish_as_owner(&save);
}

/*
 * rb_journal_preserved: whether the migration already kept the content of
 * this table.
 */
bool
rb_journal_preserved(int64 migration, Oid relid)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		values[2];
	bool		result;

	values[0] = Int64GetDatum(migration);
	values[1] = ObjectIdGetDatum(relid);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT 1 FROM rollback.journal WHERE migration_id = $1 AND preserved = $2",
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
	result = SPI_processed > 0;
	rb_spi_finish_as_owner(&save);
	return result;
}

/*
 * preserve_leaf: before a statement destroys a table's content (DROP
 * COLUMN, a rewrite), keep its history in
 * rollback_store.content_<migration>_<relid>: every live row and every image
 * of its version store, each with the 64-bit id of the transaction that
 * wrote it (_rb_xmin) and, for an image, the point it was captured under
 * (_rb_point; NULL for a live row), for a live row its address (_rb_ctid,
 * which tells the revert whether it is still there, not rewritten);
 * columns named c<attnum>.
 *
 * That is what time travel reads (DESIGN.md section 2), frozen: the rows
 * at any point that covers the table now are the ones the point sees, of
 * the live rows and of the images captured under it or later.  A revert to
 * an older point than this migration's (revert_to, or the revert of an
 * earlier migration once this one was reverted) reads that point's rows
 * here, since the rewrite leaves the table's points without a history and
 * a dropped column is in no image taken after the drop; and it can tell
 * the rows other sessions wrote since that point, to quarantine them.
 * The journal entry lists the points covered, with their sequences'
 * values.  Only tables the migration's point covers; once per migration.
 */
static void
preserve_leaf(int64 migration, Oid relid)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {INT8OID, OIDOID};
	Datum		values[2];
	char	   *pointname;
	char	   *content;
	Oid			store = rb_store_of(relid);
	Relation	rel;
	TupleDesc	desc;
	StringInfoData defs;
	StringInfoData live;
	StringInfoData images;
	int			i;

	if (!rb_is_tracked(relid) || rb_journal_preserved(migration, relid))
		return;
	values[0] = Int64GetDatum(migration);
	values[1] = ObjectIdGetDatum(relid);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT p.name FROM rollback.migration m"
				" JOIN rollback.point p ON p.id = m.point_id"
				" JOIN rollback.point_table pt ON pt.point_id = p.id AND pt.relid = $2::regclass"
				" WHERE m.id = $1",
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		rb_spi_finish_as_owner(&save);
		return;
	}
	pointname = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

	rel = table_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	initStringInfo(&defs);
	initStringInfo(&live);
	initStringInfo(&images);
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char	   *colname;

		if (att->attisdropped)
			continue;
		colname = psprintf("c%d", att->attnum);
		appendStringInfo(&defs, ", %s %s", colname, rb_column_type_sql(att));
		appendStringInfo(&live, ", t.%s", quote_identifier(NameStr(att->attname)));
		if (OidIsValid(store) && get_attnum(store, colname) != InvalidAttrNumber)
			appendStringInfo(&images, ", s.%s", colname);
		else
			appendStringInfoString(&images, ", NULL");
	}
	table_close(rel, AccessShareLock);

	content = psprintf("%s.%s", RB_STORE_SCHEMA,
					   quote_identifier(psprintf("content_" INT64_FORMAT "_%u", migration, relid)));
	rb_internal_ddl(psprintf("CREATE TABLE %s (_rb_point pg_catalog.int8,"
							 " _rb_xmin pg_catalog.xid8 NOT NULL, _rb_ctid pg_catalog.tid%s)",
							 content, defs.data));
	rb_spi_exec(psprintf("INSERT INTO %s SELECT NULL, rollback._xid8(t.xmin), t.ctid%s FROM ONLY %s t",
						 content, live.data, rb_qualified_name(relid)),
				0, NULL, NULL, NULL, false, SPI_OK_INSERT);
	if (OidIsValid(store))
		rb_spi_exec(psprintf("INSERT INTO %s SELECT s._rb_point, s._rb_xmin, NULL%s FROM %s s",
							 content, images.data, rb_qualified_name(store)),
					0, NULL, NULL, NULL, false, SPI_OK_INSERT);
	{
		Oid			argtypes3[4] = {INT8OID, OIDOID, TEXTOID, TEXTOID};
		Datum		values3[4];

		values3[0] = values[0];
		values3[1] = values[1];
		values3[2] = CStringGetTextDatum(content);
		values3[3] = CStringGetTextDatum(pointname);
		rb_spi_exec("INSERT INTO rollback.journal (migration_id, command_tag, statement, relids,"
					" preserved, content, sequences, points)"
					" SELECT $1, 'PRESERVE', 'content of ' || $2::regclass::text || ' as of ' || $4,"
					" ARRAY[$2], $2, $3::regclass, pt.sequences,"
					" (SELECT pg_catalog.jsonb_object_agg(x.point_id::text, x.sequences)"
					"   FROM rollback.point_table x WHERE x.relid = $2::regclass)"
					" FROM rollback.point_table pt JOIN rollback.point p ON p.id = pt.point_id"
					" WHERE p.name = $4 AND pt.relid = $2::regclass",
					4, argtypes3, values3, NULL, false, SPI_OK_INSERT);
	}
	rb_spi_finish_as_owner(&save);
}

/* preserve: preserve_leaf for a table or every leaf of a partitioned one. */
static void
preserve(int64 migration, Oid relid)
{
	ListCell   *lc;

	if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
	{
		foreach(lc, rb_expand_leaves(relid, false))
			preserve_leaf(migration, lfirst_oid(lc));
	}
	else if (get_rel_relkind(relid) == RELKIND_RELATION)
		preserve_leaf(migration, relid);
}

/* state_of: a target's state as jsonb text, or NULL if it does not exist. */
static char *
state_of(Oid classid, Oid objid)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];
	char	   *result = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	values[0] = ObjectIdGetDatum(classid);
	values[1] = ObjectIdGetDatum(objid);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT CASE WHEN $1 = 0 THEN rollback._rel_state($2)"
				" ELSE rollback._obj_state($1, $2) END::text",
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v)
			result = MemoryContextStrdup(cxt, v);
	}
	rb_spi_finish_as_owner(&save);
	return result;
}

/* statement_text: the text of this statement within the query string. */
static char *
statement_text(PlannedStmt *pstmt, const char *queryString)
{
	int			loc = pstmt->stmt_location;
	int			len = pstmt->stmt_len;

	if (queryString == NULL)
		return NULL;
	if (loc < 0)
		loc = 0;
	if (len <= 0)
		len = strlen(queryString + loc);
	return pnstrdup(queryString + loc, len);
}

/* text_array: a List of C strings as a text[] Datum. */
static Datum
text_array(List *strs)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(strs), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, strs)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * write_entry: the journal row of a statement that has run: the undo of
 * its targets (their states now against before) and of what it created;
 * indexes and constraints the statement rebuilt under the same name are
 * linked in rollback.relocated, so that older entries naming them still
 * find them.
 * Returns the reason it cannot be undone, if _undo found one.
 */
static char *
write_entry(JournalFrame *f, const char *holding)
{
	RbOwnerSave save;
	Oid			argtypes[12] = {OIDARRAYOID, OIDARRAYOID, TEXTARRAYOID, INT8OID, TEXTOID,
	TEXTOID, OIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[12];
	char		nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	StringInfoData leafcols;
	Datum	   *befores = palloc(sizeof(Datum) * Max(list_length(f->befores), 1));
	bool	   *bnulls = palloc(sizeof(bool) * Max(list_length(f->befores), 1));
	int			dims[1];
	int			lbs[1] = {1};
	ListCell   *lc;
	int			n = 0;
	char	   *irr = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	foreach(lc, f->befores)
	{
		bnulls[n] = lfirst(lc) == NULL;
		befores[n] = bnulls[n] ? (Datum) 0 : CStringGetTextDatum((char *) lfirst(lc));
		n++;
	}
	dims[0] = n;
	values[0] = rb_oid_array(f->classids);
	values[1] = rb_oid_array(f->objids);
	values[2] = PointerGetDatum(construct_md_array(befores, bnulls, 1, dims, lbs, TEXTOID,
												   -1, false, TYPALIGN_INT));
	values[3] = Int64GetDatum(f->migration);
	values[4] = CStringGetTextDatum(f->tag);
	if (f->statement)
		values[5] = CStringGetTextDatum(f->statement);
	else
		nulls[5] = 'n';
	values[6] = rb_oid_array(f->relids);
	values[7] = text_array(f->drops);
	values[8] = text_array(f->created);
	if (holding)
		values[9] = CStringGetTextDatum(holding);
	else
		nulls[9] = 'n';
	if (f->irreversible && f->kind == J_IRREVERSIBLE)
		values[10] = CStringGetTextDatum(f->irreversible);
	else
		nulls[10] = 'n';
	initStringInfo(&leafcols);
	foreach(lc, f->leafcols)
		appendStringInfo(&leafcols, "%s%s", leafcols.len ? ", " : "[", (char *) lfirst(lc));
	values[11] = CStringGetTextDatum(leafcols.len ? psprintf("%s]", leafcols.data) : "[]");

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("WITH s AS MATERIALIZED ("
				"  SELECT u.ord, u.oid, u.cls, u.b::jsonb AS b, CASE WHEN u.cls = 0"
				"   THEN rollback._rel_state(u.oid) ELSE rollback._obj_state(u.cls, u.oid) END AS a"
				"  FROM unnest($1::oid[], $2::oid[], $3::text[]) WITH ORDINALITY AS u(cls, oid, b, ord)),"
				" t AS MATERIALIZED (SELECT s.ord, s.oid, rollback._undo(s.b, s.a) AS j FROM s),"
				/* indexes and constraints the statement rebuilt (ALTER COLUMN TYPE): same name, new OID */
				" r AS (INSERT INTO rollback.relocated (kind, old_oid, new_oid)"
				"  SELECT k.kind, (x->>'oid')::oid, (y->>'oid')::oid"
				"  FROM s, (VALUES ('r'::pg_catalog.\"char\", 'indexes'), ('c', 'constraints')) k(kind, list),"
				"   jsonb_array_elements(s.b->k.list) x, jsonb_array_elements(s.a->k.list) y"
				"  WHERE s.cls = 0 AND x->>'name' = y->>'name' AND x->'oid' <> y->'oid'"
				"   AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(s.a->k.list) z"
				"                    WHERE z->'oid' = x->'oid'))"
				" INSERT INTO rollback.journal (migration_id, command_tag, statement, relids,"
				"  undo_pre, undo_post, readd, created, holding, irreversible)"
				" SELECT $4, $5, $6, $7,"
				"  coalesce((SELECT array_agg(e.s ORDER BY t.ord, e.n) FROM t,"
				"    jsonb_array_elements_text(t.j->'pre') WITH ORDINALITY AS e(s, n)), '{}') || $8,"
				"  coalesce((SELECT array_agg(e.s ORDER BY t.ord, e.n) FROM t,"
				"    jsonb_array_elements_text(t.j->'post') WITH ORDINALITY AS e(s, n)), '{}'),"
				"  coalesce((SELECT jsonb_agg(r || jsonb_build_object('rel', t.oid)) FROM t,"
				"    jsonb_array_elements(t.j->'readd') AS r), '[]')"
				"  || coalesce((SELECT jsonb_agg(l - 'parent') FROM jsonb_array_elements($12::jsonb) l"
				"    WHERE EXISTS (SELECT 1 FROM t, jsonb_array_elements(t.j->'readd') AS r"
				"     WHERE t.oid = (l->>'parent')::oid AND r->>'name' = l->>'name')), '[]'),"
				"  $9, $10, coalesce($11, (SELECT string_agg(t.j->>'irreversible', '; ') FROM t))"
				" RETURNING irreversible, $11 IS NULL",
				12, argtypes, values, nulls, false, SPI_OK_INSERT_RETURNING);
	{
		bool		isnull;
		bool		fresh = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 2, &isnull));
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v && fresh)
			irr = MemoryContextStrdup(cxt, v);
	}
	rb_spi_exec("UPDATE rollback.migration SET applied_at = pg_catalog.clock_timestamp()"
				" WHERE id = $1 AND auto",
				1, &argtypes[3], &values[3], NULL, false, SPI_OK_UPDATE);
	rb_spi_finish_as_owner(&save);
	return irr;
}

/*
 * drop_move: run DROP of tables, views, sequences, functions, types and
 * domains as moves into holding schemas.  Returns false when the DROP must
 * run as it is: an object is missing (the DROP reports it), has dependents
 * without CASCADE (the DROP refuses), or is of a kind the journal cannot
 * hold (then *unsupported is set).
 */
static bool
drop_move(DropStmt *stmt, JournalFrame *f, bool *unsupported)
{
	List	   *addrs = NIL;
	List	   *deps = NIL;
	List	   *ownfks = NIL;
	ListCell   *lc;
	RbOwnerSave save;

	*unsupported = false;
	if (stmt->concurrent)
		return false;
	foreach(lc, stmt->objects)
	{
		ObjectAddress *addr = palloc(sizeof(ObjectAddress));
		Oid			nsp;

		*addr = address_of(stmt->removeType, lfirst(lc), AccessExclusiveLock);
		if (!OidIsValid(addr->objectId))
		{
			if (!stmt->missing_ok)
				return false;
			continue;
		}
		if (addr->classId == RelationRelationId)
		{
			char		kind = get_rel_relkind(addr->objectId);

			if (get_rel_persistence(addr->objectId) == RELPERSISTENCE_TEMP)
				return false;
			if (kind == RELKIND_PARTITIONED_TABLE || get_rel_relispartition(addr->objectId) ||
				has_subclass(addr->objectId) || kind == RELKIND_FOREIGN_TABLE)
			{
				f->irreversible = "The journal cannot hold a dropped partition, partitioned table, inheritance parent or foreign table.";
				*unsupported = true;
				return false;
			}
		}
		nsp = get_object_namespace(addr);
		if (!superuser() && !rb_object_ownercheck(addr->classId, addr->objectId, GetUserId()) &&
			!(OidIsValid(nsp) && rb_namespace_ownercheck(nsp, GetUserId())))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be owner of %s", rb_object_description(addr))));
		addrs = lappend(addrs, addr);
	}

	/* what CASCADE would drop with them */
	rb_spi_connect_as_owner(&save);
	foreach(lc, addrs)
	{
		ObjectAddress *addr = lfirst(lc);
		Oid			argtypes[2] = {OIDOID, OIDOID};
		Datum		values[2];
		uint64		i;

		values[0] = ObjectIdGetDatum(addr->classId);
		values[1] = ObjectIdGetDatum(addr->objectId);
		rb_spi_exec("SELECT stmt, stmt LIKE 'ALTER TABLE ' || $2::regclass::text || ' DROP CONSTRAINT %'"
					" AND $1 = 'pg_catalog.pg_class'::pg_catalog.regclass"
					" FROM rollback._drop_dependents($1, $2)",
					2, argtypes, values, NULL, false, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
		{
			char	   *s = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			MemoryContext old = MemoryContextSwitchTo(f->cxt);

			bool		isnull;
			bool		own = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 2, &isnull));

			if (s == NULL)
				*unsupported = true;
			else if (own)
				ownfks = list_append_unique(ownfks, makeString(pstrdup(s)));
			else
				deps = list_append_unique(deps, makeString(pstrdup(s)));
			MemoryContextSwitchTo(old);
		}
	}
	rb_spi_finish_as_owner(&save);
	if (*unsupported)
	{
		f->irreversible = "CASCADE would drop objects the journal cannot re-create.";
		return false;
	}
	if (deps != NIL && stmt->behavior != DROP_CASCADE)
		return false;

	/* the dependents first (each journaled), then the moves */
	deps = list_concat(deps, ownfks);
	rb_spi_connect_as_owner(&save);
	foreach(lc, deps)
	{
		if (SPI_execute(strVal(lfirst(lc)), false, 0) < 0)
			elog(ERROR, "could not run \"%s\"", strVal(lfirst(lc)));
	}
	foreach(lc, addrs)
	{
		ObjectAddress *addr = lfirst(lc);
		char	   *holding = psprintf("rollback_hold_" INT64_FORMAT "_%u",
									   f->migration, addr->objectId);
		Oid			argtypes[2] = {OIDOID, OIDOID};
		Datum		values[2];
		char	   *kw;
		char	   *ident;

		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(addr->objectId)) == false &&
			addr->classId == RelationRelationId)
			continue;			/* went with an earlier object's CASCADE */
		values[0] = ObjectIdGetDatum(addr->classId);
		values[1] = ObjectIdGetDatum(addr->objectId);
		rb_spi_exec("SELECT CASE o.type WHEN 'composite type' THEN 'TYPE' WHEN 'enum type' THEN 'TYPE'"
					" ELSE pg_catalog.upper(o.type) END, o.identity"
					" FROM pg_catalog.pg_identify_object($1, $2, 0) o",
					2, argtypes, values, NULL, false, SPI_OK_SELECT);
		kw = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ident = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		if (SPI_execute(psprintf("CREATE SCHEMA %s", quote_identifier(holding)), false, 0) < 0 ||
			SPI_execute(psprintf("ALTER %s %s SET SCHEMA %s", kw, ident,
								 quote_identifier(holding)), false, 0) < 0)
			elog(ERROR, "could not move %s into a holding schema", ident);

		/*
		 * A held table's rows are still restored by the reverts of later
		 * migrations, as its owner, who must reach the table's schema: the
		 * holding schema holds nothing else of anyone's.
		 */
		if (addr->classId == RelationRelationId)
		{
			Oid			owner = rb_rel_owner(addr->objectId);

			if (owner != GetUserId() && !superuser_arg(owner) &&
				SPI_execute(psprintf("GRANT USAGE ON SCHEMA %s TO %s", quote_identifier(holding),
									 quote_identifier(GetUserNameFromId(owner, false))),
							false, 0) < 0)
				elog(ERROR, "could not grant the owner of %s access to its holding schema", ident);
		}
		if (f->created == NIL)
			f->created = list_make1(holding);
	}
	rb_spi_finish_as_owner(&save);
	return true;
}

/*
 * hold_sequences: before DROP COLUMN of a serial column, which would drop
 * the column's sequence with it, disown the sequence and move it into a
 * holding schema of its own, as a dropped table is (through nested
 * statements, each journaled): the application's schema is then what the
 * DROP COLUMN gives, and the revert re-adds the column with its default
 * naming the sequence by OID wherever it is, moves it back, and owns it
 * again; its value is set back with the table's content.  Skipped for a
 * caller who does not own the table: the DROP COLUMN refuses it.
 */
static void
hold_sequences(JournalFrame *f)
{
	ListCell   *lc;
	RbOwnerSave save;

	foreach(lc, f->holdseqs)
	{
		Oid			seq = lfirst_oid(lc);
		char	   *holding = psprintf("rollback_hold_" INT64_FORMAT "_%u", f->migration, seq);
		Oid			relid;
		int32		attnum;

		if (!sequenceIsOwned(seq, DEPENDENCY_AUTO, &relid, &attnum) ||
			(!superuser() && !rb_object_ownercheck(RelationRelationId, relid, GetUserId())))
			continue;
		rb_spi_connect_as_owner(&save);
		if (SPI_execute(psprintf("ALTER SEQUENCE %s OWNED BY NONE", rb_qualified_name(seq)),
						false, 0) < 0 ||
			SPI_execute(psprintf("CREATE SCHEMA %s", quote_identifier(holding)), false, 0) < 0 ||
			SPI_execute(psprintf("ALTER SEQUENCE %s SET SCHEMA %s", rb_qualified_name(seq),
								 quote_identifier(holding)), false, 0) < 0)
			elog(ERROR, "could not move sequence %u into a holding schema", seq);
		rb_spi_finish_as_owner(&save);
	}
}

/*
 * rb_journal_begin: before a utility statement runs.  Returns the frame to
 * pass to rb_journal_end after it ran, or NULL when the statement is not
 * journaled.  *handled is set when the journal ran the statement itself
 * (a DROP done as a move): the caller must not run it.
 */
JournalFrame *
rb_journal_begin(PlannedStmt *pstmt, const char *queryString,
				 ProcessUtilityContext context, bool *handled)
{
	Node	   *stmt = pstmt->utilityStmt;
	JournalFrame *f;
	List	   *nsps = NIL;
	int64		mig;
	ListCell   *lc;

	*handled = false;
	if (context == PROCESS_UTILITY_SUBCOMMAND || rb_in_internal_ddl() || creating_extension ||
		!IsTransactionState() || GetCommandLogLevel(stmt) != LOGSTMT_DDL ||
		!OidIsValid(get_extension_oid("rollback", true)))
		return NULL;
	mig = rb_current_migration();
	if (mig == 0 && !rollback_auto_track)
		return NULL;

	f = palloc0(sizeof(JournalFrame));
	f->cxt = CurrentMemoryContext;
	f->tag = GetCommandTagName(CreateCommandTag(stmt));
	f->kind = classify(stmt, f, &nsps);
	if (f->kind == J_NONE)
		return NULL;

	if (mig == 0)
	{
		foreach(lc, f->relids)
			if (rb_is_registry_rel(lfirst_oid(lc)))
				return NULL;
		if (!touches_tracked(nsps, f->relids))
			return NULL;
		mig = rb_start_auto_migration();
	}
	f->migration = mig;
	f->statement = statement_text(pstmt, queryString);
	rb_migration_record_xid();

	if (f->kind == J_DROP)
	{
		bool		unsupported;

		if (drop_move((DropStmt *) stmt, f, &unsupported))
		{
			write_entry(f, f->created ? linitial(f->created) : NULL);
			f->created = NIL;
			*handled = true;
			return NULL;
		}
		f->kind = unsupported ? J_IRREVERSIBLE : J_NOUNDO;
	}
	if (f->kind == J_IRREVERSIBLE)
		mark_irreversible(mig, f->tag, f->irreversible);

	foreach(lc, f->preserve)
		preserve(mig, lfirst_oid(lc));
	hold_sequences(f);
	{
		ListCell   *lc2;

		forboth(lc, f->classids, lc2, f->objids)
			f->befores = lappend(f->befores, state_of(lfirst_oid(lc), lfirst_oid(lc2)));
	}
	f->outer = current_frame;
	current_frame = f;
	return f;
}

/* rb_journal_end: after the statement ran: write its journal entry. */
void
rb_journal_end(JournalFrame *f)
{
	char	   *irr;

	current_frame = f->outer;
	irr = write_entry(f, NULL);
	if (irr != NULL && f->kind != J_IRREVERSIBLE)
		mark_irreversible(f->migration, f->tag, psprintf("The journal cannot set it back: %s.", irr));
}

/* rb_journal_abort: the statement failed; forget its frame. */
void
rb_journal_abort(JournalFrame *f)
{
	current_frame = f->outer;
}

/*
 * rollback._on_ddl_journal(): ddl_command_end event trigger.  Queues the
 * undo of each object the current statement created: DROP, newest first.
 * Tables created in a migration are tracked.
 */
Datum
rollback_on_ddl_journal(PG_FUNCTION_ARGS)
{
	JournalFrame *f = current_frame;
	RbOwnerSave save;
	List	   *tables = NIL;
	ListCell   *lc;
	uint64		i;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("rollback._on_ddl_journal() must be called as an event trigger")));
	if (f == NULL || f->kind != J_CREATE || f->skip_creates || rb_in_internal_ddl() ||
		creating_extension)
		PG_RETURN_NULL();

	rb_spi_connect_as_owner(&save);
	rb_spi_exec("SELECT pg_catalog.format('DROP %s IF EXISTS %s',"
				"  CASE c.object_type WHEN 'statistics object' THEN 'STATISTICS'"
				"   WHEN 'composite type' THEN 'TYPE' WHEN 'enum type' THEN 'TYPE'"
				"   ELSE pg_catalog.upper(c.object_type) END, c.object_identity),"
				"  c.object_identity,"
				"  CASE WHEN c.object_type = 'table' THEN c.objid END"
				" FROM pg_catalog.pg_event_trigger_ddl_commands() WITH ORDINALITY AS c"
				" WHERE NOT c.in_extension AND (c.command_tag LIKE 'CREATE%' OR c.command_tag = 'SELECT INTO')"
				" AND c.object_type IN ('table', 'view', 'materialized view',"
				"  'sequence', 'function', 'procedure', 'aggregate', 'type', 'composite type',"
				"  'enum type', 'domain', 'schema', 'statistics object', 'foreign table',"
				"  'collation', 'extension')"
				" AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
				"  WHERE d.classid = c.classid AND d.objid = c.objid AND d.objsubid = 0"
				"  AND d.deptype IN ('a', 'i'))"
				" ORDER BY c.ordinality DESC",
				0, NULL, NULL, NULL, false, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext old = MemoryContextSwitchTo(f->cxt);
		bool		isnull;
		Datum		relid = SPI_getbinval(tup, desc, 3, &isnull);

		f->drops = lappend(f->drops, SPI_getvalue(tup, desc, 1));
		f->created = lappend(f->created, SPI_getvalue(tup, desc, 2));
		if (!isnull)
		{
			f->relids = lappend_oid(f->relids, DatumGetObjectId(relid));
			tables = lappend_oid(tables, DatumGetObjectId(relid));
		}
		MemoryContextSwitchTo(old);
	}
	rb_spi_finish_as_owner(&save);

	foreach(lc, tables)
	{
		Oid			nsp = get_rel_namespace(lfirst_oid(lc));
		const char *nspname = get_namespace_name(nsp);

		if (get_rel_persistence(lfirst_oid(lc)) != RELPERSISTENCE_TEMP &&
			strcmp(nspname, "rollback") != 0 && strcmp(nspname, RB_STORE_SCHEMA) != 0 &&
			strncmp(nspname, "rollback_hold_", 14) != 0)
			rb_track_relation(lfirst_oid(lc));
	}
	PG_RETURN_NULL();
}

/* rb_journal_init: the setting (from _PG_init). */
void
rb_journal_init(void)
{
	DefineCustomEnumVariable("rollback.irreversible_ddl",
							 "What to do with a statement a migration revert could not undo.",
							 "error refuses it inside a migration; warn runs it and marks the migration irreversible.",
							 &rollback_irreversible_ddl,
							 IRREVERSIBLE_ERROR,
							 irreversible_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
}
