/*-------------------------------------------------------------------------
 *
 * undoplan.c
 *		The order of a revert's undo statements, and their placeholders.
 *
 * A revert runs the undo of its journal entries newest first: each entry's
 * "pre" statements at once, its "post" statements (constraints, NOT NULL,
 * indexes, which need the rows) after the rows are back, in a waiting
 * list.  Two things break that order, and are planned for here:
 *
 *	- an object an older entry created and a newer one dropped: the newer
 *	  undo re-creates it (post, waiting), the older one drops it (pre, now,
 *	  before it exists).  The pair cancels (rb_undo_cancel).
 *	- an older entry's undo of a change to what waits to be created again
 *	  (a rename, a comment) waits behind it; a column rename is applied to
 *	  the waiting statements' text (rb_undo_adjust).
 *
 * Statements that drop, create again or rename an index or a constraint
 * carry a tag, a leading comment "rb:idx:<index OID>" or
 * "rb:con:<constraint OID>"; so do a column's drop and what is set back on
 * it, "rb:col:<table OID>:<column number>", and DROP NOT NULL and SET NOT
 * NULL, "rb:nn:<table OID>:<column number>" (rollback._undo writes them).
 * Relations are
 * named by placeholders, {r:<oid>} and {q:<oid>}, filled in when the
 * statement runs (rb_undo_render).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "rollback.h"

/*
 * relocated_pick: run pick, a query over g(oid), the OIDs that
 * rollback.relocated links to oid, directly or not, in either direction
 * (oid itself among them): the incarnations of one relation (kind 'r') or
 * constraint (kind 'c'), one existing at a time.  Returns the OID of pick's
 * first row, or InvalidOid.
 */
static Oid
relocated_pick(Oid oid, char kind, const char *pick)
{
	RbOwnerSave save;
	Oid			argtypes[2] = {OIDOID, CHAROID};
	Datum		values[2];
	List	   *result;

	values[0] = ObjectIdGetDatum(oid);
	values[1] = CharGetDatum(kind);
	rb_spi_connect_as_owner(&save);
	rb_spi_exec(psprintf("WITH RECURSIVE g(oid) AS (SELECT $1 UNION"
						 "  SELECT CASE WHEN x.old_oid = g.oid THEN x.new_oid ELSE x.old_oid END"
						 "  FROM g JOIN rollback.relocated x ON g.oid IN (x.old_oid, x.new_oid)"
						 "  AND x.kind = $2)"
						 " %s", pick),
				2, argtypes, values, NULL, false, SPI_OK_SELECT);
	result = rb_spi_oid_list(1, CurrentMemoryContext);
	rb_spi_finish_as_owner(&save);
	return result != NIL ? linitial_oid(result) : InvalidOid;
}

/*
 * relocated_oid: the relation that stands now for one dropped and created
 * again (a view, an index), or InvalidOid: the incarnation that exists
 * (the newest link, should a gone OID have been reused).
 */
static Oid
relocated_oid(Oid oid)
{
	return relocated_pick(oid, 'r',
						  "SELECT g.oid FROM g JOIN pg_catalog.pg_class c ON c.oid = g.oid"
						  " WHERE g.oid <> $1 ORDER BY (SELECT max(x.seq) FROM rollback.relocated x"
						  "  WHERE x.new_oid = g.oid AND x.kind = $2) DESC NULLS LAST LIMIT 1");
}

/*
 * relocated_root: the smallest OID of a relation's (kind 'r') or a
 * constraint's (kind 'c') incarnations (oid itself when it has no other):
 * one name for all of them.
 */
static Oid
relocated_root(Oid oid, char kind)
{
	return relocated_pick(oid, kind, "SELECT min(g.oid) FROM g");
}

/*
 * rb_undo_untagged: the statement without its leading tag, the comment
 * "rb:<key>" that _undo puts before statements that drop or create an
 * index or a constraint (see rb_undo_cancel).
 */
const char *
rb_undo_untagged(const char *sql)
{
	const char *end;

	if (strncmp(sql, "/*rb:", 5) != 0 || (end = strstr(sql, "*/")) == NULL)
		return sql;
	end += 2;
	while (*end == ' ')
		end++;
	return end;
}

/*
 * undo_key: the key of a tagged statement, or NULL.  An index or a
 * constraint is keyed by the oldest OID rollback.relocated links to its
 * OID, so that it has one key before and after a rebuild or a re-creation
 * (a revert's, which a later migration may drop again).
 */
static char *
undo_key(const char *sql)
{
	const char *end;
	char	   *key;

	if (strncmp(sql, "/*rb:", 5) != 0 || (end = strstr(sql, "*/")) == NULL)
		return NULL;
	key = pnstrdup(sql + 5, end - (sql + 5));
	if (strncmp(key, "idx:", 4) == 0)
		key = psprintf("idx:%u", relocated_root((Oid) strtoul(key + 4, NULL, 10), 'r'));
	else if (strncmp(key, "con:", 4) == 0)
		key = psprintf("con:%u", relocated_root((Oid) strtoul(key + 4, NULL, 10), 'c'));
	return key;
}

/*
 * is_drop: whether an undo statement drops its object (rather than rename
 * it): an index, a constraint, a column, a NOT NULL.
 */
static bool
is_drop(const char *sql)
{
	sql = rb_undo_untagged(sql);
	return strncmp(sql, "DROP INDEX ", 11) == 0 || strstr(sql, " DROP CONSTRAINT IF EXISTS ") != NULL ||
		strstr(sql, " DROP COLUMN IF EXISTS ") != NULL || strstr(sql, " DROP NOT NULL") != NULL;
}

/*
 * goes_with: whether a waiting statement keyed k goes with the drop keyed
 * key: it re-creates or sets back the same object, or, for the drop of a
 * column, it sets the column's NOT NULL back.
 */
static bool
goes_with(const char *k, const char *key)
{
	if (k == NULL)
		return false;
	if (strcmp(k, key) == 0)
		return true;
	return strncmp(key, "col:", 4) == 0 && strncmp(k, "nn:", 3) == 0 &&
		strcmp(k + 3, key + 4) == 0;
}

/*
 * waits: whether a statement that goes with the drop keyed key is in the
 * list (the re-creation of that object, waiting for the rows).
 */
static bool
waits(List *stmts, const char *key)
{
	ListCell   *lc;

	foreach(lc, stmts)
	{
		if (lfirst(lc) && goes_with(undo_key(lfirst(lc)), key))
			return true;
	}
	return false;
}

/*
 * cancel_between: cancel the statements keyed key in the entries strictly
 * between newer (the one whose undo would have re-created the object) and
 * older (the one whose undo would have dropped it), as rb_undo_cancel has
 * them in pres and posts: what they set back on the object (a comment, a
 * rename) would name an object that the revert, which neither re-creates
 * nor drops it, never has.  Not newer's own pre list: when newer rebuilt
 * the object (ALTER COLUMN TYPE), its undo drops the rebuilt one there.
 */
static void
cancel_between(List *pres, List *posts, int newer, int older, const char *key)
{
	int			i;

	for (i = newer + 1; i < older; i++)
	{
		List	   *lists[2] = {list_nth(pres, i), list_nth(posts, i)};
		int			k;

		for (k = 0; k < 2; k++)
		{
			ListCell   *lq;

			foreach(lq, lists[k])
			{
				if (lfirst(lq) && goes_with(undo_key(lfirst(lq)), key))
					lfirst(lq) = NULL;
			}
		}
	}
}

/*
 * rb_undo_cancel: in a revert over several journal entries (newest first;
 * pres and posts hold each entry's undo lists), an entry's undo may
 * re-create an index or a constraint (post, once the rows are back) that
 * the undo of an older entry drops (pre): the older entry created it, the
 * newer one dropped it.  The drop would run first, before the object
 * exists, and the re-creation would then leave it in place; neither must
 * run.  Both are set to NULL in their lists (run_undo skips them), with the
 * statements of the re-creation's group (its comment, its relocated link).
 * The same for a NOT NULL that the older entry set and the newer one
 * dropped: the older undo's DROP NOT NULL would run first, the newer one's
 * SET NOT NULL after it, and the column would stay NOT NULL.  A column an
 * older entry's undo drops keeps its drop; what newer ones set back on it
 * (NOT NULL, comment, privileges) is cancelled.
 */
void
rb_undo_cancel(List *pres, List *posts)
{
	ListCell   *lc;
	ListCell   *lpost;

	forboth(lc, pres, lpost, posts)
	{
		List	   *pre = lfirst(lc);
		ListCell   *lp;

		foreach(lp, pre)
		{
			char	   *key = lfirst(lp) && is_drop(lfirst(lp)) ? undo_key(lfirst(lp)) : NULL;
			ListCell   *ln;

			if (key == NULL)
				continue;
			/*
			 * the newer entry whose post re-creates it; for a column, every
			 * newer entry that sets something back on it
			 */
			foreach(ln, posts)
			{
				List	   *post = lfirst(ln);
				ListCell   *lq;

				if (ln == lpost)
					break;
				if (!waits(post, key))
					continue;
				foreach(lq, post)
				{
					if (lfirst(lq) && goes_with(undo_key(lfirst(lq)), key))
						lfirst(lq) = NULL;
				}
				/* a column's drop stays: what waited only set it back */
				if (strncmp(key, "col:", 4) == 0)
					continue;
				lfirst(lp) = NULL;
				/* the object never exists during the revert: nothing on it runs */
				cancel_between(pres, posts, foreach_current_index(ln),
							   foreach_current_index(lc), key);
				break;
			}
		}
	}
}

/*
 * rb_undo_render: fill in the placeholders of a journaled statement:
 * {r:<oid>} is the relation's name now (it may have been renamed since the statement
 * was journaled, and renamed back by the undo since; a view dropped and
 * created again by a revert is found through rollback.relocated), {q:<oid>}
 * the same name as a string literal (a regclass constant in a column
 * default, see rollback._rel_placeholders: a serial column's sequence may
 * be in a holding schema or another schema when the default is set back).
 * A relation that no longer exists is an error when strict; a dry run
 * (not strict) shows "<not there now>": an earlier step, which the dry
 * run does not run, may create it, or the revert will stop there.
 */
char *
rb_undo_render(const char *sql, bool strict)
{
	StringInfoData buf;
	const char *p = rb_undo_untagged(sql);

	initStringInfo(&buf);
	while (*p)
	{
		if (p[0] == '{' && (p[1] == 'r' || p[1] == 'q') && p[2] == ':')
		{
			char	   *end;
			Oid			oid = (Oid) strtoul(p + 3, &end, 10);

			if (*end == '}' && get_rel_name(oid) == NULL)
				oid = relocated_oid(oid);
			if (*end == '}' && OidIsValid(oid) && get_rel_name(oid) != NULL)
			{
				if (p[1] == 'q')
					appendStringInfoString(&buf, quote_literal_cstr(rb_qualified_name(oid)));
				else
					appendStringInfoString(&buf, rb_qualified_name(oid));
				p = end + 1;
				continue;
			}
			if (*end == '}' && !strict)
			{
				appendStringInfoString(&buf, "<not there now>");
				p = end + 1;
				continue;
			}
			if (*end == '}')
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("a relation the migration journal names no longer exists"),
						 errdetail("The undo statement \"%s\" names it by its OID, %s.",
								   rb_undo_untagged(sql), pnstrdup(p + 3, end - (p + 3))),
						 errhint("It was dropped or replaced by a statement outside the tracked migrations.")));
		}
		appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/*
 * ident_char: whether c continues an identifier.
 */
static bool
ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '$' || IS_HIGHBIT_SET(c);
}

/*
 * token_end: the end of the token at p, an identifier as quote_ident writes
 * it (bare, or in double quotes), or p itself if there is none.
 */
static const char *
token_end(const char *p)
{
	if (*p == '"')
	{
		for (p++; *p; p++)
			if (*p == '"' && p[1] != '"')
				return p + 1;
			else if (*p == '"')
				p++;
		return p;
	}
	while (*p && ident_char(*p))
		p++;
	return p;
}

/*
 * rename_tokens: append s[p, end) to buf with every identifier token equal
 * to from (as quote_ident writes it) replaced by to; string literals,
 * comments and placeholders are copied as they are.
 */
static void
rename_tokens(StringInfo buf, const char *p, const char *end, const char *from, const char *to)
{
	size_t		flen = strlen(from);

	while (p < end)
	{
		const char *q;

		if (*p == '\'')
		{
			/* a literal, '' inside it */
			for (q = p + 1; q < end; q++)
				if (*q == '\'' && (q + 1 >= end || q[1] != '\''))
					break;
				else if (*q == '\'')
					q++;
			q = Min(q + 1, end);
			appendBinaryStringInfo(buf, p, q - p);
			p = q;
		}
		else if (p[0] == '{' && (p[1] == 'r' || p[1] == 'q') && p[2] == ':' &&
				 (q = strchr(p, '}')) != NULL && q < end)
		{
			appendBinaryStringInfo(buf, p, q + 1 - p);
			p = q + 1;
		}
		else if (p[0] == '/' && p[1] == '*' && (q = strstr(p, "*/")) != NULL && q < end)
		{
			appendBinaryStringInfo(buf, p, q + 2 - p);
			p = q + 2;
		}
		else if (*p == '"' || ident_char(*p))
		{
			q = Min(token_end(p), end);
			if ((size_t) (q - p) == flen && strncmp(p, from, flen) == 0)
				appendStringInfoString(buf, to);
			else
				appendBinaryStringInfo(buf, p, q - p);
			p = q;
		}
		else
			appendStringInfoChar(buf, *p++);
	}
}

/*
 * rename_column_in: the statement with column from of relation relid named
 * to: where the statement is about that relation (its first placeholder),
 * up to its REFERENCES clause; in the column list of a REFERENCES clause
 * naming that relation.  NULL when the statement does not name it.
 */
static char *
rename_column_in(const char *sql, Oid relid, const char *from, const char *to)
{
	char	   *ph = psprintf("{r:%u}", relid);
	const char *first = strstr(sql, "{r:");
	const char *refs = strstr(sql, " REFERENCES ");
	const char *end = sql + strlen(sql);
	StringInfoData buf;
	const char *done = sql;

	if (first == NULL || strstr(sql, ph) == NULL)
		return NULL;
	initStringInfo(&buf);
	if (strncmp(first, ph, strlen(ph)) == 0)
	{
		const char *stop = refs != NULL && refs > first ? refs : end;

		appendBinaryStringInfo(&buf, sql, first + strlen(ph) - sql);
		rename_tokens(&buf, first + strlen(ph), stop, from, to);
		done = stop;
	}
	if (refs != NULL && refs >= done &&
		strncmp(refs + 12, ph, strlen(ph)) == 0 && refs[12 + strlen(ph)] == '(')
	{
		const char *open = refs + 12 + strlen(ph);
		const char *close = strchr(open, ')');

		if (close != NULL)
		{
			appendBinaryStringInfo(&buf, done, open - done);
			rename_tokens(&buf, open, close, from, to);
			done = close;
		}
	}
	appendStringInfoString(&buf, done);
	return buf.data;
}

/*
 * rb_undo_adjust: before an entry's pre statements run, with the post
 * statements of the newer entries waiting for the rows.  What sets back an
 * index or a constraint that waits to be created again (a rename, a
 * comment) waits behind it (it moves from pre to the end of *waiting; its
 * placeholder finds the new index through rollback.relocated).  A column rename is applied to the
 * waiting statements that name the column, which were written with the
 * name it has before the rename.
 */
void
rb_undo_adjust(List *pre, List **waiting)
{
	ListCell   *lc;

	foreach(lc, pre)
	{
		const char *sql = lfirst(lc);
		const char *u;
		char	   *key;
		unsigned int relid;
		int			n = 0;

		if (sql == NULL)
			continue;
		u = rb_undo_untagged(sql);
		key = undo_key(sql);
		if (key != NULL && !is_drop(sql))
		{
			if (waits(*waiting, key))
			{
				*waiting = lappend(*waiting, (char *) sql);
				lfirst(lc) = NULL;
			}
			continue;
		}
		if (sscanf(u, "ALTER TABLE {r:%u} RENAME COLUMN %n", &relid, &n) >= 1 && n > 0)
		{
			const char *from = u + n;
			const char *fend = token_end(from);
			const char *to;
			ListCell   *lw;

			if (fend == from || strncmp(fend, " TO ", 4) != 0)
				continue;
			to = fend + 4;
			foreach(lw, *waiting)
			{
				char	   *w = lfirst(lw) ? rename_column_in(lfirst(lw), (Oid) relid,
															  pnstrdup(from, fend - from), to) : NULL;

				if (w != NULL)
					lfirst(lw) = w;
			}
		}
	}
}
