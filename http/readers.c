/*
 * Who may read what a tag names: the event stream sends nothing a role
 * could not read (http/README.md, "The event stream").
 *
 * A tag names a watched table: it is the table's `table_tag`, or starts
 * with it and a slash ("housing.listings", "housing.listings/city=Boston").
 * For each watched table this keeps which of the stream's roles may SELECT
 * it (with USAGE on its schema; membership counts, as it does for the
 * queries the roles run) and whether it has row-level security, read in
 * one query from housing_cache.watched_tables and the catalogs.  A tag that
 * names no watched table is nobody's.
 *
 * Loaded by the feed thread, never by an HTTP thread: at its start, on
 * SIGHUP, periodically, and when a tag names a table it does not know.
 */
#include "hc_http.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

typedef struct ReaderTable
{
	char	   *table_tag;
	size_t		len;
	bool		rls;
	uint64_t	roles;			/* bit i: roles[i] may read it */
} ReaderTable;

struct Readers
{
	char	   *database;
	int			ntables;
	ReaderTable *tables;		/* sorted by table_tag */
};

static const char database_sql[] =
"SELECT pg_catalog.current_database(), "
"pg_catalog.to_regclass('housing_cache.watched_tables') IS NOT NULL";

/*
 * One row per watched table: its tag, whether row-level security is on, and
 * for each role of $1 (in order) whether it may read the table.  A role
 * that does not exist may read nothing.
 */
static const char readers_sql[] =
"SELECT w.table_tag, c.relrowsecurity,\n"
"       ARRAY(SELECT coalesce((SELECT pg_catalog.has_schema_privilege(r.oid, c.relnamespace, 'USAGE')\n"
"                                 AND pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT')\n"
"                                FROM pg_catalog.pg_roles r WHERE r.rolname = u.name), false)\n"
"               FROM unnest($1::text[]) WITH ORDINALITY AS u(name, i) ORDER BY u.i)\n"
"  FROM housing_cache.watched_tables w\n"
"  JOIN pg_catalog.pg_class c ON c.oid = w.relid";

static int
table_cmp(const void *a, const void *b)
{
	return strcmp(((const ReaderTable *) a)->table_tag, ((const ReaderTable *) b)->table_tag);
}

/* {"a","b"}: a text[] literal of the role names */
static char *
roles_literal(char *const *roles, int nroles)
{
	Buf			b;

	buf_init(&b);
	buf_putc(&b, '{');
	for (int i = 0; i < nroles; i++)
	{
		if (i > 0)
			buf_putc(&b, ',');
		buf_putc(&b, '"');
		for (const char *p = roles[i]; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				buf_putc(&b, '\\');
			buf_putc(&b, *p);
		}
		buf_putc(&b, '"');
	}
	buf_putc(&b, '}');
	return buf_steal(&b, NULL);
}

/* {t,f,t} -> bit i set for each t */
static uint64_t
parse_bool_array(const char *s)
{
	uint64_t	mask = 0;
	int			i = 0;

	for (const char *p = s; *p && i < 64; p++)
	{
		if (*p == 't')
			mask |= (uint64_t) 1 << i;
		if (*p == 't' || *p == 'f')
			i++;
	}
	return mask;
}

void
readers_free(Readers *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->ntables; i++)
		free(r->tables[i].table_tag);
	free(r->tables);
	free(r->database);
	free(r);
}

Readers *
readers_load(PGconn *conn, char *const *roles, int nroles)
{
	PGresult   *res;
	Readers    *r;
	bool		has_catalog;
	char	   *lit;
	const char *params[1];

	res = PQexec(conn, database_sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		log_msg("events: cannot read the database name: %s", PQerrorMessage(conn));
		PQclear(res);
		return NULL;
	}
	r = xcalloc(1, sizeof(Readers));
	r->database = xstrdup(PQgetvalue(res, 0, 0));
	has_catalog = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (!has_catalog)
		return r;				/* no housing_cache here: no table is anyone's */

	lit = roles_literal(roles, nroles);
	params[0] = lit;
	res = PQexecParams(conn, readers_sql, 1, NULL, params, NULL, NULL, 0);
	free(lit);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		log_msg("events: cannot read the privileges on the watched tables: %s",
				PQerrorMessage(conn));
		PQclear(res);
		readers_free(r);
		return NULL;
	}
	r->ntables = PQntuples(res);
	r->tables = xcalloc((size_t) r->ntables, sizeof(ReaderTable));
	for (int i = 0; i < r->ntables; i++)
	{
		ReaderTable *t = &r->tables[i];

		t->table_tag = xstrdup(PQgetvalue(res, i, 0));
		t->len = strlen(t->table_tag);
		t->rls = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		t->roles = parse_bool_array(PQgetvalue(res, i, 2));
	}
	PQclear(res);
	qsort(r->tables, (size_t) r->ntables, sizeof(ReaderTable), table_cmp);
	return r;
}

const char *
readers_database(const Readers *r)
{
	return r->database;
}

int
readers_count(const Readers *r)
{
	return r->ntables;
}

static const ReaderTable *
find_table(const Readers *r, const char *tag, size_t len)
{
	char		stack[256];
	char	   *key = len < sizeof(stack) ? stack : xmalloc(len + 1);
	ReaderTable probe;
	const ReaderTable *found;

	memcpy(key, tag, len);
	key[len] = '\0';
	probe.table_tag = key;
	found = bsearch(&probe, r->tables, (size_t) r->ntables, sizeof(ReaderTable), table_cmp);
	if (key != stack)
		free(key);
	return found;
}

/*
 * The watched table a tag names: the longest prefix of the tag, ending at
 * its end or before a slash, that is a table_tag.  False when none is.
 */
bool
readers_lookup(const Readers *r, const char *tag, size_t len, ReaderInfo *out)
{
	size_t		end = len;

	for (;;)
	{
		const ReaderTable *t = find_table(r, tag, end);

		if (t != NULL)
		{
			out->table_tag = t->table_tag;
			out->table_tag_len = t->len;
			out->rls = t->rls;
			out->roles = t->roles;
			return true;
		}
		while (end > 0 && tag[end - 1] != '/')
			end--;
		if (end == 0)
			return false;
		end--;					/* before the slash */
	}
}
