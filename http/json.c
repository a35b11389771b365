/*
 * A small strict JSON parser (RFC 8259): request bodies, JWT parts and the
 * response.headers setting.  Depth is bounded; input size is bounded by the
 * callers.
 */
#include "hc_http.h"

#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct Parser
{
	const char *s;
	size_t		n;
	size_t		pos;
	const char *err;
} Parser;

static JsonValue *parse_value(Parser *p, int depth);

static void
skip_ws(Parser *p)
{
	while (p->pos < p->n)
	{
		char		c = p->s[p->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static JsonValue *
new_value(JsonType t, const char *raw)
{
	JsonValue  *v = xcalloc(1, sizeof(JsonValue));

	v->type = t;
	v->raw = raw;
	return v;
}

void
json_free(JsonValue *v)
{
	while (v)
	{
		JsonValue  *next = v->next;

		json_free(v->child);
		free(v->str);
		free(v->key);
		free(v);
		v = next;
	}
}

static int
hex4(const char *s)
{
	int			v = 0;

	for (int i = 0; i < 4; i++)
	{
		char		c = s[i];

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
	return v;
}

static void
put_utf8(Buf *b, unsigned cp)
{
	char		u[4];

	if (cp < 0x80)
		buf_putc(b, (char) cp);
	else if (cp < 0x800)
	{
		u[0] = (char) (0xC0 | (cp >> 6));
		u[1] = (char) (0x80 | (cp & 0x3F));
		buf_append(b, u, 2);
	}
	else if (cp < 0x10000)
	{
		u[0] = (char) (0xE0 | (cp >> 12));
		u[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char) (0x80 | (cp & 0x3F));
		buf_append(b, u, 3);
	}
	else
	{
		u[0] = (char) (0xF0 | (cp >> 18));
		u[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char) (0x80 | (cp & 0x3F));
		buf_append(b, u, 4);
	}
}

/* A string literal at p->pos (the opening quote); decoded into *out. */
static bool
parse_string(Parser *p, char **out, size_t *outlen)
{
	Buf			b;

	buf_init(&b);
	p->pos++;					/* opening quote */
	while (p->pos < p->n)
	{
		unsigned char c = (unsigned char) p->s[p->pos];

		if (c == '"')
		{
			if (!valid_utf8(b.data ? b.data : "", b.len))
			{
				p->err = "invalid UTF-8 in a string";
				goto fail;
			}
			p->pos++;
			buf_reserve(&b, 0);
			if (b.oom)
			{
				p->err = "out of memory";
				goto fail;
			}
			*outlen = b.len;
			*out = buf_steal(&b, NULL);
			return true;
		}
		if (c < 0x20)
		{
			p->err = "control character in a string";
			goto fail;
		}
		if (c != '\\')
		{
			/* copy a run of plain bytes at once */
			size_t		run = p->pos;

			while (run < p->n && p->s[run] != '"' && p->s[run] != '\\' &&
				   (unsigned char) p->s[run] >= 0x20)
				run++;
			buf_append(&b, p->s + p->pos, run - p->pos);
			p->pos = run;
			continue;
		}
		/* escape */
		if (p->pos + 1 >= p->n)
			break;
		p->pos++;
		switch (p->s[p->pos])
		{
			case '"':
				buf_putc(&b, '"');
				break;
			case '\\':
				buf_putc(&b, '\\');
				break;
			case '/':
				buf_putc(&b, '/');
				break;
			case 'b':
				buf_putc(&b, '\b');
				break;
			case 'f':
				buf_putc(&b, '\f');
				break;
			case 'n':
				buf_putc(&b, '\n');
				break;
			case 'r':
				buf_putc(&b, '\r');
				break;
			case 't':
				buf_putc(&b, '\t');
				break;
			case 'u':
				{
					int			cp,
								lo;

					if (p->pos + 4 >= p->n || (cp = hex4(p->s + p->pos + 1)) < 0)
					{
						p->err = "invalid \\u escape";
						goto fail;
					}
					p->pos += 4;
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						if (p->pos + 6 >= p->n || p->s[p->pos + 1] != '\\' ||
							p->s[p->pos + 2] != 'u' ||
							(lo = hex4(p->s + p->pos + 3)) < 0 ||
							lo < 0xDC00 || lo > 0xDFFF)
						{
							p->err = "invalid surrogate pair";
							goto fail;
						}
						p->pos += 6;
						cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					}
					else if (cp >= 0xDC00 && cp <= 0xDFFF)
					{
						p->err = "invalid surrogate pair";
						goto fail;
					}
					if (cp == 0)
					{
						p->err = "\\u0000 is not allowed";
						goto fail;
					}
					put_utf8(&b, (unsigned) cp);
					break;
				}
			default:
				p->err = "invalid escape in a string";
				goto fail;
		}
		p->pos++;
	}
	p->err = "unterminated string";
fail:
	buf_free(&b);
	return false;
}

static JsonValue *
parse_number(Parser *p)
{
	size_t		start = p->pos;
	const char *s = p->s;
	size_t		n = p->n;
	JsonValue  *v;
	char	   *tmp;

	if (p->pos < n && s[p->pos] == '-')
		p->pos++;
	if (p->pos >= n)
		goto bad;
	if (s[p->pos] == '0')
		p->pos++;
	else if (s[p->pos] >= '1' && s[p->pos] <= '9')
		while (p->pos < n && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	else
		goto bad;
	if (p->pos < n && s[p->pos] == '.')
	{
		p->pos++;
		if (p->pos >= n || s[p->pos] < '0' || s[p->pos] > '9')
			goto bad;
		while (p->pos < n && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < n && (s[p->pos] == 'e' || s[p->pos] == 'E'))
	{
		p->pos++;
		if (p->pos < n && (s[p->pos] == '+' || s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= n || s[p->pos] < '0' || s[p->pos] > '9')
			goto bad;
		while (p->pos < n && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	}
	v = new_value(JSON_NUMBER, s + start);
	v->raw_len = p->pos - start;
	tmp = xstrndup(s + start, v->raw_len);
	v->num = strtod(tmp, NULL);
	free(tmp);
	return v;
bad:
	p->err = "invalid number";
	return NULL;
}

static bool
match_lit(Parser *p, const char *lit)
{
	size_t		l = strlen(lit);

	if (p->n - p->pos >= l && memcmp(p->s + p->pos, lit, l) == 0)
	{
		p->pos += l;
		return true;
	}
	return false;
}

static JsonValue *
parse_container(Parser *p, int depth, bool object)
{
	JsonValue  *v = new_value(object ? JSON_OBJECT : JSON_ARRAY, p->s + p->pos);
	JsonValue **tail = &v->child;
	char		close = object ? '}' : ']';
	size_t		start = p->pos;

	if (depth >= JSON_MAX_DEPTH)
	{
		p->err = "nesting too deep";
		goto fail;
	}
	p->pos++;
	skip_ws(p);
	if (p->pos < p->n && p->s[p->pos] == close)
	{
		p->pos++;
		v->raw_len = p->pos - start;
		return v;
	}
	for (;;)
	{
		char	   *key = NULL;
		size_t		key_len = 0;
		JsonValue  *item;

		skip_ws(p);
		if (object)
		{
			if (p->pos >= p->n || p->s[p->pos] != '"')
			{
				p->err = "expected a member name";
				goto fail;
			}
			if (!parse_string(p, &key, &key_len))
				goto fail;
			skip_ws(p);
			if (p->pos >= p->n || p->s[p->pos] != ':')
			{
				free(key);
				p->err = "expected ':'";
				goto fail;
			}
			p->pos++;
			skip_ws(p);
		}
		item = parse_value(p, depth + 1);
		if (item == NULL)
		{
			free(key);
			goto fail;
		}
		item->key = key;
		item->key_len = key_len;
		*tail = item;
		tail = &item->next;
		skip_ws(p);
		if (p->pos < p->n && p->s[p->pos] == ',')
		{
			p->pos++;
			continue;
		}
		if (p->pos < p->n && p->s[p->pos] == close)
		{
			p->pos++;
			break;
		}
		p->err = object ? "expected ',' or '}'" : "expected ',' or ']'";
		goto fail;
	}
	v->raw_len = p->pos - start;
	return v;
fail:
	json_free(v);
	return NULL;
}

static JsonValue *
parse_value(Parser *p, int depth)
{
	const char *start;
	JsonValue  *v;

	skip_ws(p);
	start = p->s + p->pos;
	if (p->pos >= p->n)
	{
		p->err = "unexpected end of input";
		return NULL;
	}
	switch (p->s[p->pos])
	{
		case '{':
			return parse_container(p, depth, true);
		case '[':
			return parse_container(p, depth, false);
		case '"':
			{
				char	   *str;
				size_t		len;

				if (!parse_string(p, &str, &len))
					return NULL;
				v = new_value(JSON_STRING, start);
				v->str = str;
				v->str_len = len;
				v->raw_len = (size_t) (p->s + p->pos - start);
				return v;
			}
		case 't':
			if (match_lit(p, "true"))
			{
				v = new_value(JSON_TRUE, start);
				v->raw_len = 4;
				return v;
			}
			break;
		case 'f':
			if (match_lit(p, "false"))
			{
				v = new_value(JSON_FALSE, start);
				v->raw_len = 5;
				return v;
			}
			break;
		case 'n':
			if (match_lit(p, "null"))
			{
				v = new_value(JSON_NULL, start);
				v->raw_len = 4;
				return v;
			}
			break;
		default:
			if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
				return parse_number(p);
			break;
	}
	p->err = "unexpected character";
	return NULL;
}

JsonValue *
json_parse(const char *s, size_t n, const char **err)
{
	Parser		p = {s, n, 0, NULL};
	JsonValue  *v;

	v = parse_value(&p, 0);
	if (v)
	{
		skip_ws(&p);
		if (p.pos != p.n)
		{
			json_free(v);
			v = NULL;
			p.err = "trailing characters after the JSON value";
		}
	}
	if (v == NULL && err)
		*err = p.err ? p.err : "invalid JSON";
	return v;
}

const JsonValue *
json_get(const JsonValue *obj, const char *key)
{
	size_t		kl = strlen(key);

	if (obj == NULL || obj->type != JSON_OBJECT)
		return NULL;
	for (const JsonValue *m = obj->child; m; m = m->next)
		if (m->key_len == kl && memcmp(m->key, key, kl) == 0)
			return m;
	return NULL;
}
