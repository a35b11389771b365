/*-------------------------------------------------------------------------
 *
 * address.c
 *	  host:port lists (--redis-sentinels) and addresses as text.
 *
 * The same rules as the engine's housing_cache.redis_sentinels (the same
 * value works in both places): host:port, an IPv6 address in brackets
 * ([::1]:26379), at most MAX_SENTINELS, none twice; separated by commas
 * (or, as the purger's other lists, blanks).
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>

#include "address.h"

static bool
is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One entry, start..end (no separators inside), into *a. */
static bool
parse_one(const char *start, const char *end, HostPort *a, char *err, size_t errlen)
{
	int			len = (int) (end - start);
	const char *host;
	const char *colon = NULL;
	int			hostlen;
	long		port = 0;

	if (*start == '[')
	{
		const char *close = memchr(start, ']', (size_t) len);

		if (close == NULL || close + 1 >= end || close[1] != ':')
		{
			snprintf(err, errlen, "'%.*s' is not [address]:port", len > 100 ? 100 : len, start);
			return false;
		}
		host = start + 1;
		hostlen = (int) (close - host);
		colon = close + 1;
	}
	else
	{
		for (const char *q = start; q < end; q++)
			if (*q == ':')
				colon = q;
		if (colon == NULL)
		{
			snprintf(err, errlen, "'%.*s' is not host:port", len > 100 ? 100 : len, start);
			return false;
		}
		host = start;
		hostlen = (int) (colon - start);
		if (memchr(host, ':', (size_t) hostlen) != NULL)
		{
			snprintf(err, errlen, "'%.*s' is not host:port (write an IPv6 address in brackets: [::1]:26379)",
					 len > 100 ? 100 : len, start);
			return false;
		}
	}
	if (hostlen == 0)
	{
		snprintf(err, errlen, "'%.*s' has no host", len > 100 ? 100 : len, start);
		return false;
	}
	if (hostlen > HOST_MAXLEN)
	{
		snprintf(err, errlen, "a host is longer than %d characters", HOST_MAXLEN);
		return false;
	}
	for (int i = 0; i < hostlen; i++)
	{
		if ((unsigned char) host[i] <= ' ' || host[i] == 0x7f || host[i] == '[' || host[i] == ']')
		{
			snprintf(err, errlen, "host '%.*s' contains control characters or brackets",
					 hostlen > 100 ? 100 : hostlen, host);
			return false;
		}
	}
	if (colon + 1 == end)
		port = -1;
	for (const char *q = colon + 1; q < end && port >= 0; q++)
	{
		if (*q < '0' || *q > '9' || port > 65535)
			port = -1;
		else
			port = port * 10 + (*q - '0');
	}
	if (port < 1 || port > 65535)
	{
		snprintf(err, errlen, "the port of '%.*s' must be a number from 1 to 65535",
				 len > 100 ? 100 : len, start);
		return false;
	}
	memcpy(a->host, host, (size_t) hostlen);
	a->host[hostlen] = '\0';
	a->port = (int) port;
	return true;
}

/*
 * Parse text into list[0..*count).  An empty (or blank) text is an empty
 * list.  On failure *err says why (without the option's name).
 */
bool
address_list_parse(const char *text, HostPort *list, int max, int *count,
				   char *err, size_t errlen)
{
	const char *p = text;

	*count = 0;
	while (*p)
	{
		const char *start;
		HostPort	a;

		while (is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p && !is_sep(*p))
			p++;
		if (!parse_one(start, p, &a, err, errlen))
			return false;
		for (int i = 0; i < *count; i++)
		{
			if (address_equal(&list[i], &a))
			{
				snprintf(err, errlen, "'%.*s' is listed twice", (int) (p - start), start);
				return false;
			}
		}
		if (*count == max)
		{
			snprintf(err, errlen, "more than %d addresses", max);
			return false;
		}
		list[(*count)++] = a;
	}
	return true;
}

/* host:port, or [host]:port for an IPv6 address. */
void
address_format(const HostPort *a, char *buf, size_t size)
{
	if (strchr(a->host, ':') != NULL)
		snprintf(buf, size, "[%s]:%d", a->host, a->port);
	else
		snprintf(buf, size, "%s:%d", a->host, a->port);
}

bool
address_equal(const HostPort *a, const HostPort *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0;
}
