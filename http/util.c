/*
 * Buffers, percent-decoding, UTF-8 and JSON string escaping, logging.
 */
#include "hc_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
	{
		fputs("hc_http: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void	   *p = calloc(n ? n : 1, m ? m : 1);

	if (p == NULL)
	{
		fputs("hc_http: out of memory\n", stderr);
		abort();
	}
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char	   *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* --- Buf ----------------------------------------------------------------- */

void
buf_init(Buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

void
buf_free(Buf *b)
{
	free(b->data);
	buf_init(b);
}

void
buf_reset(Buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

bool
buf_reserve(Buf *b, size_t extra)
{
	size_t		need;
	size_t		cap;
	char	   *p;

	if (b->oom)
		return false;
	if (extra > SIZE_MAX / 2 - b->len)
	{
		b->oom = true;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (p == NULL)
	{
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void
buf_append(Buf *b, const void *data, size_t len)
{
	if (!buf_reserve(b, len))
		return;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
buf_puts(Buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_putc(Buf *b, char c)
{
	buf_append(b, &c, 1);
}

void
buf_printf(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t) n))
	{
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
}

char *
buf_steal(Buf *b, size_t *len)
{
	char	   *p;

	if (!buf_reserve(b, 0))
	{
		buf_free(b);
		return NULL;
	}
	p = b->data;
	if (len)
		*len = b->len;
	buf_init(b);
	return p;
}

/*
 * Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if the
 * bytes there are not one (overlong forms, surrogates, > U+10FFFF refused).
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF)
	{
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && s[1] < 0xA0)
			return 0;
		if (c == 0xED && s[1] >= 0xA0)
			return 0;
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4)
	{
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
			(s[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && s[1] < 0x90)
			return 0;
		if (c == 0xF4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

bool
valid_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	while (i < n)
	{
		size_t		l = utf8_seq_len(p + i, n - i);

		if (l == 0 || (l == 1 && p[i] == 0))
			return false;
		i += l;
	}
	return true;
}

void
buf_json_str(Buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	buf_putc(b, '"');
	while (i < n)
	{
		unsigned char c = p[i];
		size_t		l;

		switch (c)
		{
			case '"':
				buf_puts(b, "\\\"");
				i++;
				continue;
			case '\\':
				buf_puts(b, "\\\\");
				i++;
				continue;
			case '\n':
				buf_puts(b, "\\n");
				i++;
				continue;
			case '\r':
				buf_puts(b, "\\r");
				i++;
				continue;
			case '\t':
				buf_puts(b, "\\t");
				i++;
				continue;
			default:
				break;
		}
		if (c < 0x20 || c == 0x7F)
		{
			buf_printf(b, "\\u%04x", c);
			i++;
			continue;
		}
		l = utf8_seq_len(p + i, n - i);
		if (l == 0)
		{
			buf_puts(b, "\\ufffd");
			i++;
			continue;
		}
		buf_append(b, p + i, l);
		i += l;
	}
	buf_putc(b, '"');
}

void
buf_json_cstr(Buf *b, const char *s)
{
	if (s == NULL)
		buf_puts(b, "null");
	else
		buf_json_str(b, s, strlen(s));
}

/* --- percent-decoding ---------------------------------------------------- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
pct_decode(const char *s, size_t n, bool plus_is_space, size_t *outlen)
{
	char	   *out = xmalloc(n + 1);
	size_t		i,
				o = 0;

	for (i = 0; i < n; i++)
	{
		char		c = s[i];

		if (c == '%')
		{
			int			hi,
						lo;

			if (i + 2 >= n)
				goto bad;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (char) (hi * 16 + lo);
			i += 2;
		}
		else if (c == '+' && plus_is_space)
			c = ' ';
		if (c == '\0')
			goto bad;
		out[o++] = c;
	}
	out[o] = '\0';
	if (outlen)
		*outlen = o;
	return out;
bad:
	free(out);
	return NULL;
}

/* --- time and logging ---------------------------------------------------- */

double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* One line to stderr, with a UTC timestamp; a single write per line. */
void
log_msg(const char *fmt,...)
{
	char		line[2048];
	struct timeval tv;
	struct tm	tm;
	size_t		off;
	va_list		ap;
	int			n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	off += (size_t) snprintf(line + off, sizeof(line) - off, ".%03dZ ", (int) (tv.tv_usec / 1000));
	va_start(ap, fmt);
	n = vsnprintf(line + off, sizeof(line) - off - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	off += (size_t) n;
	if (off > sizeof(line) - 2)
		off = sizeof(line) - 2;
	line[off++] = '\n';
	fwrite(line, 1, off, stderr);
}
