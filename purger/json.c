/*-------------------------------------------------------------------------
 *
 * json.c
 *	  A small, strict JSON parser (RFC 8259) for the channel's messages.
 *
 * Anything may arrive on the channel, so the parser trusts nothing: it
 * checks the whole grammar, limits nesting to JSON_MAX_DEPTH, never reads
 * past len, and turns each string's escapes into UTF-8 (a lone surrogate
 * becomes U+FFFD).  Numbers are kept as written; json_uint64() reads an
 * unsigned integer from one.
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "purger.h"

typedef struct Parser
{
	const char *p;
	const char *end;
	const char *start;
	char	   *err;
	size_t		errlen;
	bool		failed;
} Parser;

static JsonValue *parse_value(Parser *ps, int depth);

static void
fail(Parser *ps, const char *what)
{
	if (!ps->failed && ps->err && ps->errlen)
		snprintf(ps->err, ps->errlen, "%s at offset %zu", what, (size_t) (ps->p - ps->start));
	ps->failed = true;
}

static void
skip_ws(Parser *ps)
{
	while (ps->p < ps->end &&
		   (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static JsonValue *
new_value(JsonType type)
{
	JsonValue  *v = xcalloc(1, sizeof(JsonValue));

	v->type = type;
	return v;
}

/* A growing byte buffer for strings. */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_add(Buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 32;

		while (b->len + n + 1 > cap)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_add_utf8(Buf *b, unsigned int cp)
{
	char		out[4];

	if (cp < 0x80)
	{
		out[0] = (char) cp;
		buf_add(b, out, 1);
	}
	else if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		buf_add(b, out, 2);
	}
	else if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		buf_add(b, out, 3);
	}
	else
	{
		out[0] = (char) (0xF0 | (cp >> 18));
		out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[3] = (char) (0x80 | (cp & 0x3F));
		buf_add(b, out, 4);
	}
}

/* Four hex digits at ps->p; -1 if they are not. */
static int
hex4(Parser *ps)
{
	int			v = 0;

	if (ps->end - ps->p < 4)
		return -1;
	for (int i = 0; i < 4; i++)
	{
		char		c = ps->p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	ps->p += 4;
	return v;
}

/* A string, ps->p at its opening quote; the text in *out (malloc'd). */
static bool
parse_string_text(Parser *ps, char **out, size_t *outlen)
{
	Buf			b = {0};

	ps->p++;					/* the quote */
	buf_add(&b, "", 0);
	for (;;)
	{
		const char *run = ps->p;

		while (ps->p < ps->end && *ps->p != '"' && *ps->p != '\\' &&
			   (unsigned char) *ps->p >= 0x20)
			ps->p++;
		buf_add(&b, run, (size_t) (ps->p - run));
		if (ps->p >= ps->end)
		{
			fail(ps, "unterminated string");
			break;
		}
		if (*ps->p == '"')
		{
			ps->p++;
			*out = b.data;
			*outlen = b.len;
			return true;
		}
		if ((unsigned char) *ps->p < 0x20)
		{
			fail(ps, "control character in a string");
			break;
		}
		/* an escape */
		ps->p++;
		if (ps->p >= ps->end)
		{
			fail(ps, "unterminated escape");
			break;
		}
		switch (*ps->p++)
		{
			case '"':
				buf_add(&b, "\"", 1);
				continue;
			case '\\':
				buf_add(&b, "\\", 1);
				continue;
			case '/':
				buf_add(&b, "/", 1);
				continue;
			case 'b':
				buf_add(&b, "\b", 1);
				continue;
			case 'f':
				buf_add(&b, "\f", 1);
				continue;
			case 'n':
				buf_add(&b, "\n", 1);
				continue;
			case 'r':
				buf_add(&b, "\r", 1);
				continue;
			case 't':
				buf_add(&b, "\t", 1);
				continue;
			case 'u':
				{
					int			cp = hex4(ps);

					if (cp < 0)
					{
						fail(ps, "bad \\u escape");
						break;
					}
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						/* a high surrogate: a low one must follow */
						if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u')
						{
							const char *save = ps->p;
							int			lo;

							ps->p += 2;
							lo = hex4(ps);
							if (lo >= 0xDC00 && lo <= 0xDFFF)
							{
								buf_add_utf8(&b, 0x10000 + (((unsigned) cp - 0xD800) << 10) +
											 ((unsigned) lo - 0xDC00));
								continue;
							}
							ps->p = save;
						}
						buf_add_utf8(&b, 0xFFFD);
						continue;
					}
					if (cp >= 0xDC00 && cp <= 0xDFFF)
						cp = 0xFFFD;
					buf_add_utf8(&b, (unsigned) cp);
					continue;
				}
			default:
				fail(ps, "bad escape");
				break;
		}
		break;
	}
	free(b.data);
	return false;
}

static JsonValue *
parse_number(Parser *ps)
{
	const char *s = ps->p;
	JsonValue  *v;

	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p >= ps->end)
		goto bad;
	if (*ps->p == '0')
		ps->p++;
	else if (*ps->p >= '1' && *ps->p <= '9')
	{
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	else
		goto bad;
	if (ps->p < ps->end && *ps->p == '.')
	{
		ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			goto bad;
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E'))
	{
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			goto bad;
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	v = new_value(JSON_NUMBER);
	v->text = xstrndup(s, (size_t) (ps->p - s));
	v->len = (size_t) (ps->p - s);
	return v;
bad:
	fail(ps, "bad number");
	return NULL;
}

static bool
literal(Parser *ps, const char *word)
{
	size_t		n = strlen(word);

	if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return false;
	ps->p += n;
	return true;
}

static void
add_item(JsonValue *v, char *key, JsonValue *item, size_t *cap)
{
	if (v->count == *cap)
	{
		*cap = *cap ? *cap * 2 : 8;
		v->items = xrealloc(v->items, *cap * sizeof(JsonValue *));
		if (v->type == JSON_OBJECT)
			v->keys = xrealloc(v->keys, *cap * sizeof(char *));
	}
	v->items[v->count] = item;
	if (v->type == JSON_OBJECT)
		v->keys[v->count] = key;
	v->count++;
}

static JsonValue *
parse_container(Parser *ps, int depth, bool object)
{
	JsonValue  *v = new_value(object ? JSON_OBJECT : JSON_ARRAY);
	size_t		cap = 0;
	char		close = object ? '}' : ']';

	if (depth >= JSON_MAX_DEPTH)
	{
		fail(ps, "nested too deeply");
		json_free(v);
		return NULL;
	}
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close)
	{
		ps->p++;
		return v;
	}
	for (;;)
	{
		char	   *key = NULL;
		size_t		keylen;
		JsonValue  *item;

		skip_ws(ps);
		if (object)
		{
			if (ps->p >= ps->end || *ps->p != '"')
			{
				fail(ps, "expected a member name");
				break;
			}
			if (!parse_string_text(ps, &key, &keylen))
				break;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
			{
				free(key);
				fail(ps, "expected ':'");
				break;
			}
			ps->p++;
		}
		item = parse_value(ps, depth + 1);
		if (item == NULL)
		{
			free(key);
			break;
		}
		add_item(v, key, item, &cap);
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',')
		{
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close)
		{
			ps->p++;
			return v;
		}
		fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
		break;
	}
	json_free(v);
	return NULL;
}

static JsonValue *
parse_value(Parser *ps, int depth)
{
	JsonValue  *v;

	skip_ws(ps);
	if (ps->p >= ps->end)
	{
		fail(ps, "unexpected end");
		return NULL;
	}
	switch (*ps->p)
	{
		case '{':
			return parse_container(ps, depth, true);
		case '[':
			return parse_container(ps, depth, false);
		case '"':
			v = new_value(JSON_STRING);
			if (!parse_string_text(ps, &v->text, &v->len))
			{
				json_free(v);
				return NULL;
			}
			return v;
		case 't':
		case 'f':
		case 'n':
			if (literal(ps, "true"))
			{
				v = new_value(JSON_BOOL);
				v->boolean = true;
				return v;
			}
			if (literal(ps, "false"))
				return new_value(JSON_BOOL);
			if (literal(ps, "null"))
				return new_value(JSON_NULL);
			fail(ps, "bad literal");
			return NULL;
		default:
			if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
				return parse_number(ps);
			fail(ps, "unexpected character");
			return NULL;
	}
}

/*
 * Parse len bytes of text as one JSON value; NULL (and a reason in err)
 * if it is not exactly that.
 */
JsonValue *
json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	Parser		ps = {text, text + len, text, err, errlen, false};
	JsonValue  *v;

	if (err && errlen)
		err[0] = '\0';
	v = parse_value(&ps, 0);
	if (v == NULL)
		return NULL;
	skip_ws(&ps);
	if (ps.p != ps.end)
	{
		fail(&ps, "trailing characters");
		json_free(v);
		return NULL;
	}
	return v;
}

void
json_free(JsonValue *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->count; i++)
	{
		json_free(v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->text);
	free(v);
}

/* An object's member by name (the last one, as most parsers do), or NULL. */
const JsonValue *
json_member(const JsonValue *obj, const char *key)
{
	if (obj == NULL || obj->type != JSON_OBJECT)
		return NULL;
	for (size_t i = obj->count; i > 0; i--)
	{
		if (strcmp(obj->keys[i - 1], key) == 0)
			return obj->items[i - 1];
	}
	return NULL;
}

/* A number that is a non-negative integer below 2^64, written plainly. */
bool
json_uint64(const JsonValue *v, uint64_t *out)
{
	char	   *end;
	unsigned long long n;

	if (v == NULL || v->type != JSON_NUMBER || v->len == 0 || v->len > 20)
		return false;
	for (size_t i = 0; i < v->len; i++)
	{
		if (v->text[i] < '0' || v->text[i] > '9')
			return false;
	}
	errno = 0;
	n = strtoull(v->text, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = (uint64_t) n;
	return true;
}
