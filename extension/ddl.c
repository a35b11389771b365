/*-------------------------------------------------------------------------
 *
 * ddl.c
 *	  DDL around watched tables: the C halves of the event triggers.
 *
 * The event triggers themselves are in sql/housing_cache/ddl.sql: DDL on or
 * below a watched table invalidates it, and a table placed below it (a new
 * or attached partition or inheritance child) gets its triggers.  Here is
 * what needs the parse tree or the collected commands, which SQL cannot
 * see.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "tcop/deparse_utility.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_on_ddl_command_start);
PG_FUNCTION_INFO_V1(housing_cache_ddl_new_children);

/*
 * housing_cache.on_ddl_command_start(): event trigger on CREATE TRIGGER.
 *
 * pg_dump dumps a watched table's invalidation triggers with the table, in
 * the last section of the dump, and its row of watched_tables with the data
 * before them; DDL that pg_restore runs in between (a primary key added, a
 * partition attached) fires on_ddl_command_end, which attaches the triggers
 * a watched table lacks.  The dump's CREATE TRIGGER would then fail.  So a
 * CREATE TRIGGER of one of the invalidation triggers on a table that has it
 * already becomes CREATE OR REPLACE: the statement in the dump wins, and
 * restores succeed with every option (-j, --single-transaction).
 */
Datum
housing_cache_on_ddl_command_start(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	CreateTrigStmt *stmt;
	Oid			ours;
	Oid			relid;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("housing_cache.on_ddl_command_start() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (!IsA(trigdata->parsetree, CreateTrigStmt))
		PG_RETURN_VOID();
	stmt = (CreateTrigStmt *) trigdata->parsetree;
	if (stmt->replace || stmt->isconstraint || stmt->trigname == NULL ||
		(strcmp(stmt->trigname, "housing_cache_invalidate") != 0 &&
		 strcmp(stmt->trigname, "housing_cache_invalidate_truncate") != 0))
		PG_RETURN_VOID();
	ours = LookupFuncName(list_make2(makeString("housing_cache"),
									 makeString("invalidation_trigger")),
						  0, NULL, true);
	if (!OidIsValid(ours) || LookupFuncName(stmt->funcname, 0, NULL, true) != ours)
		PG_RETURN_VOID();
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (OidIsValid(relid) && OidIsValid(get_trigger_oid(relid, stmt->trigname, true)))
		stmt->replace = true;
	PG_RETURN_VOID();
}

/*
 * housing_cache.ddl_new_children() RETURNS oid[], inside a ddl_command_end
 * event trigger: the tables the command placed below another table, which
 * need the invalidation triggers of a watched ancestor: created as a
 * partition or inheritance child (CREATE TABLE ... PARTITION OF, INHERITS),
 * or attached as one (ALTER TABLE ... ATTACH PARTITION, INHERIT).
 *
 * Other DDL on a watched table only invalidates it.  Attaching triggers
 * after any ALTER TABLE would also run in the middle of a restore, where
 * pg_restore's own ALTER TABLE ... ENABLE ALWAYS TRIGGER of one table would
 * create triggers on its relatives while another pg_restore -j worker
 * creates them: deadlocks, and triggers created twice.
 */
Datum
housing_cache_ddl_new_children(PG_FUNCTION_ARGS)
{
	List	   *children = NIL;
	Datum	   *elems;
	int			n = 0;
	ListCell   *lc;
	MemoryContext caller = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT command FROM pg_catalog.pg_event_trigger_ddl_commands()", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the DDL commands of this event");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		CollectedCommand *cmd = isnull ? NULL : (CollectedCommand *) DatumGetPointer(d);
		MemoryContext old;

		if (cmd == NULL)
			continue;
		old = MemoryContextSwitchTo(caller);
		if (cmd->type == SCT_Simple && cmd->parsetree && IsA(cmd->parsetree, CreateStmt))
		{
			CreateStmt *cs = (CreateStmt *) cmd->parsetree;

			if (cs->inhRelations != NIL || cs->partbound != NULL)
				children = lappend_oid(children, cmd->d.simple.address.objectId);
		}
		else if (cmd->type == SCT_AlterTable)
		{
			foreach(lc, cmd->d.alterTable.subcmds)
			{
				CollectedATSubcmd *sub = (CollectedATSubcmd *) lfirst(lc);
				AlterTableCmd *at = (AlterTableCmd *) sub->parsetree;

				if (at == NULL || !IsA(at, AlterTableCmd))
					continue;
				if (at->subtype == AT_AddInherit)
					children = lappend_oid(children, cmd->d.alterTable.objectId);
				else if (at->subtype == AT_AttachPartition && at->def && IsA(at->def, PartitionCmd))
				{
					Oid			part = RangeVarGetRelid(((PartitionCmd *) at->def)->name, NoLock, true);

					if (OidIsValid(part))
						children = lappend_oid(children, part);
				}
			}
		}
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	elems = palloc(sizeof(Datum) * Max(list_length(children), 1));
	foreach(lc, children)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}
