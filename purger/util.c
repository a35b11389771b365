/*-------------------------------------------------------------------------
 *
 * util.c
 *	  Time, logging, allocation and secrets for hc_purger.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
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

/*
 * A password: the first line of file when there is one (read at each use,
 * so that a rotated one is taken), else value (NULL: none).  Returns false,
 * saying why without the password, when the file cannot be read.
 */
bool
read_secret(const char *value, const char *file, char *out, size_t outlen,
			char *err, size_t errlen)
{
	FILE	   *f;

	out[0] = '\0';
	if (file == NULL)
	{
		if (value)
			snprintf(out, outlen, "%s", value);
		return true;
	}
	f = fopen(file, "r");
	if (f == NULL)
	{
		snprintf(err, errlen, "cannot read the password file %s: %s", file, strerror(errno));
		return false;
	}
	if (fgets(out, (int) outlen, f) == NULL)
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	return true;
}
