/*-------------------------------------------------------------------------
 *
 * edgekey.h
 *	  Edge keys (edge/README.md, "Edge keys"), as hc_purger purges them and
 *	  hc_http's event stream names them (edgekey.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef HC_COMMON_EDGEKEY_H
#define HC_COMMON_EDGEKEY_H

#include <stdbool.h>
#include <stddef.h>

#define EDGE_KEY_LEN 33			/* "k" + 32 hex digits */

/* The key of tag in database into out; false only when OpenSSL fails (out
 * of memory), and then out is a key that matches nothing. */
extern bool edge_key_compute(const char *database, const char *tag, size_t tag_len,
							 char out[EDGE_KEY_LEN + 1]);

#endif
