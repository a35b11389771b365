/*
 * Edge keys: how a tag is named at the HTTP edge and in the event stream
 * (edge/README.md, "Edge keys").
 *
 *   edge key = "k" + lowercase hex of the first 16 bytes of
 *              SHA-256( database name (UTF-8) || 0x00 || tag (UTF-8) )
 *
 * The same as housing_cache.edge_key(tag) in that database, and as the
 * purger computes: the keys a browser receives are the keys its answers
 * carry in their xkey header.
 */
#include "hc_http.h"

#include <string.h>

#include <openssl/evp.h>

void
edge_key(const char *database, const char *tag, size_t tag_len, char out[EDGE_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL ||
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
		EVP_DigestUpdate(ctx, database, strlen(database) + 1) != 1 ||	/* its NUL is the 0x00 */
		EVP_DigestUpdate(ctx, tag, tag_len) != 1 ||
		EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len < 16)
	{
		/* only out of memory gets here: a key that matches nothing */
		EVP_MD_CTX_free(ctx);
		memset(out, '0', EDGE_KEY_LEN);
		out[0] = 'k';
		out[EDGE_KEY_LEN] = '\0';
		return;
	}
	EVP_MD_CTX_free(ctx);
	out[0] = 'k';
	for (int i = 0; i < 16; i++)
	{
		out[1 + 2 * i] = hex[md[i] >> 4];
		out[2 + 2 * i] = hex[md[i] & 15];
	}
	out[EDGE_KEY_LEN] = '\0';
}
