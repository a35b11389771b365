/*-------------------------------------------------------------------------
 *
 * edge.c
 *	  The HTTP edge: edge keys and purge_edge().
 *
 * A shared HTTP cache in front of the API (Varnish with xkey, a CDN with
 * surrogate keys) purges answers by key when the invalidation messages
 * (message.c) say their tags changed.  The contract between the pieces is
 * edge/README.md; the engine's part:
 *
 *	 edge keys	  a tag as the edge sees it: "k" and the first 16 bytes of
 *				  SHA-256(database || 0x00 || tag) in hex, both UTF-8, so
 *				  that any text is a key without spaces and databases sharing
 *				  an edge never purge each other's answers;
 *	 answers	  carry the keys of their tags (fetch.c lists them, stats.c's
 *				  last_lookup() and http_cache_headers() send them) and a
 *				  stamp: the last message number given before their
 *				  generations were read;
 *	 heartbeat	  the publisher worker (publisher.c) publishes the last number
 *				  given, every housing_cache.heartbeat_ms, so that a consumer
 *				  learns of a lost message even when no other message follows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "housing_cache.h"

PG_FUNCTION_INFO_V1(housing_cache_edge_key);
PG_FUNCTION_INFO_V1(housing_cache_purge_edge);

/*
 * The edge key of a tag of database dbname (both in the database encoding)
 * into out, HC_EDGE_KEY_LEN + 1 bytes.  Hashes what the invalidation message
 * carries: the UTF-8 text of both.
 */
void
HcEdgeKey(const char *dbname, const char *tag, int len, char *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *db8 = HcTextAsUtf8(dbname, strlen(dbname));
	char	   *tag8 = HcTextAsUtf8(tag, len);
	static const char hex[] = "0123456789abcdef";
	const uint8 zero = 0;

	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) db8, strlen(db8)) < 0 ||
		pg_cryptohash_update(ctx, &zero, 1) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) tag8, strlen(tag8)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
	{
		pg_cryptohash_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the SHA-256 of an edge key")));
	}
	pg_cryptohash_free(ctx);
	out[0] = 'k';
	for (int i = 0; i < (HC_EDGE_KEY_LEN - 1) / 2; i++)
	{
		out[1 + 2 * i] = hex[digest[i] >> 4];
		out[2 + 2 * i] = hex[digest[i] & 15];
	}
	out[HC_EDGE_KEY_LEN] = '\0';
	pfree(db8);
	pfree(tag8);
}

/*
 * housing_cache.edge_key(tag text) RETURNS text
 *
 * The edge key of a tag in the current database.
 */
Datum
housing_cache_edge_key(PG_FUNCTION_ARGS)
{
	text	   *tag = PG_GETARG_TEXT_PP(0);
	char	   *dbname = get_database_name(MyDatabaseId);
	char		key[HC_EDGE_KEY_LEN + 1];

	HcEdgeKey(dbname ? dbname : "", VARDATA_ANY(tag), VARSIZE_ANY_EXHDR(tag), key);
	PG_RETURN_TEXT_P(cstring_to_text(key));
}

/*
 * housing_cache.purge_edge() RETURNS void
 *
 * When this transaction commits, its invalidation message says "*":
 * consumers drop everything of this database (after a change the tags
 * cannot express, such as a privilege revoked from a role that reads
 * through a shared cache).
 */
Datum
housing_cache_purge_edge(PG_FUNCTION_ARGS)
{
	if (hc_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("housing_cache is not loaded through shared_preload_libraries"),
				 errdetail("Without it no invalidation message is published.")));
	if (!hc_publish)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("housing_cache.publish is off"),
				 errdetail("No invalidation message would tell the edge.")));
	HcInvalidateEverything();
	PG_RETURN_VOID();
}
