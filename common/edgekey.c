/*-------------------------------------------------------------------------
 *
 * edgekey.c
 *	  Edge keys (edge/README.md, "Edge keys"):
 *
 *		"k" + lowercase hex of the first 16 bytes of
 *		SHA-256(database name (UTF-8) || 0x00 || tag (UTF-8))
 *
 *	  the same as housing_cache.edge_key(tag) in that database: the keys
 *	  the purger purges and a browser receives are the keys answers carry
 *	  in their xkey header.
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include <openssl/evp.h>

#include "edgekey.h"

bool
edge_key_compute(const char *database, const char *tag, size_t tag_len,
				 char out[EDGE_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool		ok;

	ok = ctx != NULL &&
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
		EVP_DigestUpdate(ctx, database, strlen(database) + 1) == 1 &&	/* its NUL is the 0x00 */
		EVP_DigestUpdate(ctx, tag, tag_len) == 1 &&
		EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
	{
		memset(out, '0', EDGE_KEY_LEN);
		out[0] = 'k';
		out[EDGE_KEY_LEN] = '\0';
		return false;
	}
	out[0] = 'k';
	for (int i = 0; i < 16; i++)
	{
		out[1 + 2 * i] = hex[md[i] >> 4];
		out[2 + 2 * i] = hex[md[i] & 0x0F];
	}
	out[EDGE_KEY_LEN] = '\0';
	return true;
}
