/*-------------------------------------------------------------------------
 *
 * edgekey.c
 *	  Edge keys (edge/README.md, "Edge keys"):
 *
 *		"k" + lowercase hex of the first 16 bytes of
 *		SHA-256(database name || 0x00 || tag)
 *
 *	  the same as housing_cache.edge_key() and the event stream compute.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "purger.h"

void
edge_key(const char *database, const char *tag, size_t tag_len, char out[EDGE_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL ||
		!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
		!EVP_DigestUpdate(ctx, database, strlen(database) + 1) ||	/* with its NUL */
		!EVP_DigestUpdate(ctx, tag, tag_len) ||
		!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < 16)
	{
		hc_log("OpenSSL's SHA-256 failed");
		abort();
	}
	EVP_MD_CTX_free(ctx);
	out[0] = 'k';
	for (int i = 0; i < 16; i++)
	{
		out[1 + 2 * i] = hex[md[i] >> 4];
		out[2 + 2 * i] = hex[md[i] & 0x0F];
	}
	out[EDGE_KEY_LEN] = '\0';
}
