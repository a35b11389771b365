/*
 * The schema cache: every plain function of the exposed schema with its
 * input arguments (name, type as format_type() spells it, default or not)
 * and the kind of its result, read once from pg_proc.
 */
#include "hc_http.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

struct Schema
{
	int			nfuncs;
	Func	   *funcs;
};

/*
 * One row per input argument (one row with NULL ord for a function without
 * any), in argument order.  Modes: i(n), b (inout), v (variadic) are input;
 * a NULL proargmodes means all are input.
 */
static const char schema_sql[] =
"SELECT p.oid::text, p.proname::text, p.pronargdefaults, p.proretset,\n"
"       CASE WHEN p.prorettype = 'void'::regtype THEN 'void'\n"
"            WHEN t.typtype = 'c' OR p.prorettype = 'record'::regtype THEN 'composite'\n"
"            WHEN p.prorettype IN ('json'::regtype, 'jsonb'::regtype)\n"
"              OR (t.typtype = 'd' AND t.typbasetype IN ('json'::regtype, 'jsonb'::regtype))\n"
"            THEN 'json'\n"
"            ELSE 'scalar' END,\n"
"       a.name, format_type(a.type, NULL), p.pronargs\n"
"  FROM pg_proc p\n"
"  JOIN pg_namespace n ON n.oid = p.pronamespace\n"
"  JOIN pg_type t ON t.oid = p.prorettype\n"
"  LEFT JOIN LATERAL (\n"
"        SELECT u.type, u.name, u.ord\n"
"          FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),\n"
"                      p.proargnames, p.proargmodes)\n"
"               WITH ORDINALITY AS u(type, name, mode, ord)\n"
"         WHERE coalesce(u.mode, 'i') IN ('i', 'b', 'v')) a ON true\n"
" WHERE n.nspname = $1 AND p.prokind = 'f'\n"
" ORDER BY p.proname, p.oid, a.ord";

static void
func_clear(Func *f)
{
	for (int i = 0; i < f->nargs; i++)
	{
		free(f->args[i].name);
		free(f->args[i].type);
	}
	free(f->args);
	free(f->name);
}

void
schema_free(Schema *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < s->nfuncs; i++)
		func_clear(&s->funcs[i]);
	free(s->funcs);
	free(s);
}

Schema *
schema_load(PGconn *conn, const char *nsp)
{
	const char *params[1] = {nsp};
	PGresult   *r;
	Schema	   *s;
	int			nrows;
	int			row;

	r = PQexecParams(conn, schema_sql, 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
	{
		log_msg("cannot read the functions of schema %s: %s", nsp, PQerrorMessage(conn));
		PQclear(r);
		return NULL;
	}
	nrows = PQntuples(r);
	s = xcalloc(1, sizeof(Schema));
	s->funcs = xcalloc((size_t) nrows + 1, sizeof(Func));

	row = 0;
	while (row < nrows)
	{
		const char *oid = PQgetvalue(r, row, 0);
		Func	   *f = &s->funcs[s->nfuncs];
		int			ndefaults = atoi(PQgetvalue(r, row, 2));
		const char *kind = PQgetvalue(r, row, 4);
		int			first = row;
		bool		unnamed = false;
		int			i;

		f->name = xstrdup(PQgetvalue(r, row, 1));
		f->retset = PQgetvalue(r, row, 3)[0] == 't';
		f->ret = strcmp(kind, "void") == 0 ? RET_VOID
			: strcmp(kind, "composite") == 0 ? RET_COMPOSITE
			: strcmp(kind, "json") == 0 ? RET_JSON : RET_SCALAR;
		while (row < nrows && strcmp(PQgetvalue(r, row, 0), oid) == 0)
			row++;
		if (PQgetisnull(r, first, 6))
		{
			f->nargs = 0;		/* no input arguments */
			f->args = NULL;
		}
		else
		{
			f->nargs = row - first;
			f->args = xcalloc((size_t) f->nargs, sizeof(FuncArg));
			for (i = 0; i < f->nargs; i++)
			{
				FuncArg    *a = &f->args[i];

				if (PQgetisnull(r, first + i, 5) || PQgetvalue(r, first + i, 5)[0] == '\0')
					unnamed = true;
				a->name = xstrdup(PQgetvalue(r, first + i, 5));
				a->type = xstrdup(PQgetvalue(r, first + i, 6));
				/* defaults belong to the last input arguments */
				a->has_default = i >= f->nargs - ndefaults;
			}
		}
		/* arguments without a name cannot be passed by name: not callable */
		if (unnamed)
		{
			func_clear(f);
			memset(f, 0, sizeof(*f));
			continue;
		}
		s->nfuncs++;
	}
	PQclear(r);
	return s;
}

bool
schema_has(const Schema *s, const char *name)
{
	for (int i = 0; i < s->nfuncs; i++)
		if (strcmp(s->funcs[i].name, name) == 0)
			return true;
	return false;
}

const Func *
schema_find(const Schema *s, const char *name, const char *const *argnames, int nnames,
			bool *ambiguous)
{
	const Func *found = NULL;

	*ambiguous = false;
	for (int i = 0; i < s->nfuncs; i++)
	{
		const Func *f = &s->funcs[i];
		bool		fits = true;

		if (strcmp(f->name, name) != 0)
			continue;
		for (int j = 0; j < nnames && fits; j++)
		{
			bool		known = false;

			for (int k = 0; k < f->nargs; k++)
				if (strcmp(f->args[k].name, argnames[j]) == 0)
				{
					known = true;
					break;
				}
			fits = known;
		}
		if (!fits)
			continue;
		for (int k = 0; k < f->nargs && fits; k++)
		{
			bool		present = false;

			for (int j = 0; j < nnames; j++)
				if (strcmp(f->args[k].name, argnames[j]) == 0)
				{
					present = true;
					break;
				}
			if (!present && !f->args[k].has_default)
				fits = false;
		}
		if (!fits)
			continue;
		if (found != NULL)
		{
			*ambiguous = true;
			return NULL;
		}
		found = f;
	}
	return found;
}
