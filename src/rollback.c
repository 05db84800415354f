/*-------------------------------------------------------------------------
 *
 * rollback.c
 *		Entry point of the rollback extension: settings and hooks.
 *
 * The library is meant to be loaded through shared_preload_libraries, so
 * that the ProcessUtility hook guards every session from its start.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "compat.h"

#include "rollback.h"

PG_MODULE_MAGIC;

/* rollback.retention: age after which the worker purges points. */
int			rollback_retention = 7 * 24 * 60 * 60;

void		_PG_init(void);

/*
 * _PG_init: define the settings and install the hooks.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("rollback.retention",
							"Age after which recovery points are purged automatically.",
							"Points that no live migration needs are dropped once older than this.",
							&rollback_retention,
							7 * 24 * 60 * 60,
							60,
							INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	MarkGUCPrefixReserved("rollback");

	rb_check_init();
	rb_autorevert_init();
	rb_worker_init();
	rb_migration_init();
	rb_journal_init();
	rb_ddl_init();
}
