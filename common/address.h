/*-------------------------------------------------------------------------
 *
 * address.h
 *	  host:port lists, as hc_purger's and hc_http's --redis-sentinels and
 *	  the engine's housing_cache.redis_sentinels take them (address.c).
 *
 * common/ holds what hc_purger (purger/) and hc_http (http/) share; each
 * compiles these files itself.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HC_COMMON_ADDRESS_H
#define HC_COMMON_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define HOST_MAXLEN 255
#define ADDR_TEXT_LEN (HOST_MAXLEN + 9) /* "[host]:65535" */
#define MAX_SENTINELS 16

typedef struct HostPort
{
	char		host[HOST_MAXLEN + 1];
	int			port;
} HostPort;

/* Parse text into list[0..*count); empty text: an empty list.  On failure
 * *err says why (without the option's name). */
extern bool address_list_parse(const char *text, HostPort *list, int max, int *count,
							   char *err, size_t errlen);
extern void address_format(const HostPort *a, char *buf, size_t size);
extern bool address_equal(const HostPort *a, const HostPort *b);

#endif
