/*-------------------------------------------------------------------------
 *
 * util.c
 *	  Time, logging and allocation for hc_purger.
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "purger.h"

bool		hc_log_enabled = true;

hc_ms
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (hc_ms) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One line on stderr: UTC time to the millisecond, then the text.
 */
void
hc_log(const char *fmt,...)
{
	struct timeval tv;
	struct tm	tm;
	char		stamp[32];
	char		line[2048];
	va_list		ap;

	if (!hc_log_enabled)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03dZ hc_purger: %s\n", stamp, (int) (tv.tv_usec / 1000), line);
	fflush(stderr);
}

static void
out_of_memory(void)
{
	fputs("hc_purger: out of memory\n", stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		out_of_memory();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		out_of_memory();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		out_of_memory();
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char	   *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}
