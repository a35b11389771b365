/*
 * JSON Web Tokens, HS256 only (RFC 7519, RFC 7515 compact serialization).
 */
#include "hc_http.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define JWT_MAX_LEN 8192

static const char b64url[] =
"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
b64url_encode(Buf *b, const unsigned char *in, size_t n)
{
	size_t		i;

	for (i = 0; i + 2 < n; i += 3)
	{
		unsigned	v = (unsigned) in[i] << 16 | (unsigned) in[i + 1] << 8 | in[i + 2];

		buf_putc(b, b64url[(v >> 18) & 63]);
		buf_putc(b, b64url[(v >> 12) & 63]);
		buf_putc(b, b64url[(v >> 6) & 63]);
		buf_putc(b, b64url[v & 63]);
	}
	if (n - i == 1)
	{
		unsigned	v = (unsigned) in[i] << 16;

		buf_putc(b, b64url[(v >> 18) & 63]);
		buf_putc(b, b64url[(v >> 12) & 63]);
	}
	else if (n - i == 2)
	{
		unsigned	v = (unsigned) in[i] << 16 | (unsigned) in[i + 1] << 8;

		buf_putc(b, b64url[(v >> 18) & 63]);
		buf_putc(b, b64url[(v >> 12) & 63]);
		buf_putc(b, b64url[(v >> 6) & 63]);
	}
}

static int
b64url_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Unpadded base64url; NULL if malformed (including non-zero spare bits). */
static unsigned char *
b64url_decode(const char *s, size_t n, size_t *outlen)
{
	unsigned char *out;
	size_t		o = 0;
	unsigned	acc = 0;
	int			bits = 0;

	if (n % 4 == 1)
		return NULL;
	out = xmalloc(n * 3 / 4 + 3);
	for (size_t i = 0; i < n; i++)
	{
		int			v = b64url_val(s[i]);

		if (v < 0)
		{
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (unsigned char) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
	{
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

static bool
hs256(const unsigned char *key, size_t keylen, const char *data, size_t n,
	  unsigned char mac[32])
{
	unsigned int maclen = 0;

	if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) data, n, mac, &maclen) == NULL)
		return false;
	return maclen == 32;
}

void
jwt_result_free(JwtResult *r)
{
	free(r->role);
	free(r->claims);
	r->role = r->claims = NULL;
}

bool
jwt_verify(const char *token, const unsigned char *secret, size_t secret_len,
		   time_t now, JwtResult *out, const char **err)
{
	size_t		len = strlen(token);
	const char *dot1,
			   *dot2;
	unsigned char *hdr = NULL,
			   *payload = NULL,
			   *sig = NULL;
	size_t		hdr_len,
				payload_len,
				sig_len;
	unsigned char mac[32];
	JsonValue  *h = NULL,
			   *c = NULL;
	const JsonValue *v;

	out->role = out->claims = NULL;
	if (secret == NULL || secret_len == 0)
	{
		*err = "JWT authentication is not configured on this server";
		return false;
	}
	if (len == 0 || len > JWT_MAX_LEN)
	{
		*err = "JWSError (CompactDecodeError Invalid number of parts: Expected 3 parts; got 1)";
		return false;
	}
	dot1 = strchr(token, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
	{
		*err = "JWSError (CompactDecodeError Invalid number of parts)";
		return false;
	}
	hdr = b64url_decode(token, (size_t) (dot1 - token), &hdr_len);
	payload = b64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), &payload_len);
	sig = b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig_len);
	if (hdr == NULL || payload == NULL || sig == NULL)
	{
		*err = "JWSError (CompactDecodeError invalid base64url)";
		goto fail;
	}
	h = json_parse((const char *) hdr, hdr_len, err);
	if (h == NULL || h->type != JSON_OBJECT)
	{
		*err = "JWSError (JSONDecodeError invalid header)";
		goto fail;
	}
	v = json_get(h, "alg");
	if (v == NULL || v->type != JSON_STRING || strcmp(v->str, "HS256") != 0)
	{
		*err = "JWSError (AlgorithmMismatch \"only HS256 is accepted\")";
		goto fail;
	}
	if (json_get(h, "crit") != NULL)
	{
		*err = "JWSError (unsupported critical header)";
		goto fail;
	}
	/* the signature first: nothing of the payload is trusted before it */
	if (!hs256(secret, secret_len, token, (size_t) (dot2 - token), mac) ||
		sig_len != sizeof(mac) || CRYPTO_memcmp(mac, sig, sizeof(mac)) != 0)
	{
		*err = "JWSError JWSInvalidSignature";
		goto fail;
	}
	c = json_parse((const char *) payload, payload_len, err);
	if (c == NULL || c->type != JSON_OBJECT)
	{
		*err = "JWT claims are not a JSON object";
		goto fail;
	}
	v = json_get(c, "exp");
	if (v != NULL)
	{
		if (v->type != JSON_NUMBER || !isfinite(v->num))
		{
			*err = "JWT claim exp is not a number";
			goto fail;
		}
		if ((double) now >= v->num)
		{
			*err = "JWT expired";
			goto fail;
		}
	}
	v = json_get(c, "nbf");
	if (v != NULL)
	{
		if (v->type != JSON_NUMBER || !isfinite(v->num))
		{
			*err = "JWT claim nbf is not a number";
			goto fail;
		}
		if ((double) now < v->num)
		{
			*err = "JWT not yet valid";
			goto fail;
		}
	}
	v = json_get(c, "role");
	if (v == NULL || v->type != JSON_STRING)
	{
		*err = "JWT claim role is missing";
		goto fail;
	}
	out->role = xstrndup(v->str, v->str_len);
	out->claims = xstrndup((const char *) payload, payload_len);
	json_free(h);
	json_free(c);
	free(hdr);
	free(payload);
	free(sig);
	return true;
fail:
	json_free(h);
	json_free(c);
	free(hdr);
	free(payload);
	free(sig);
	return false;
}

char *
jwt_mint(const char *role, long ttl, const unsigned char *secret, size_t secret_len,
		 time_t now)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	Buf			claims,
				tok;
	unsigned char mac[32];

	buf_init(&claims);
	buf_init(&tok);
	buf_puts(&claims, "{\"role\":");
	buf_json_cstr(&claims, role);
	buf_printf(&claims, ",\"iat\":%lld,\"exp\":%lld}", (long long) now, (long long) now + ttl);
	b64url_encode(&tok, (const unsigned char *) header, strlen(header));
	buf_putc(&tok, '.');
	b64url_encode(&tok, (const unsigned char *) claims.data, claims.len);
	buf_free(&claims);
	if (tok.oom || !hs256(secret, secret_len, tok.data, tok.len, mac))
	{
		buf_free(&tok);
		return NULL;
	}
	buf_putc(&tok, '.');
	b64url_encode(&tok, mac, sizeof(mac));
	return buf_steal(&tok, NULL);
}
