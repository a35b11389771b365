/*
 * Static files of the web UI's export (Next.js `output: 'export'` layout):
 * /            -> index.html
 * /listing     -> listing.html, else listing/index.html
 * /listing/    -> listing/index.html, else listing.html
 * /_next/static/... is content-addressed: cached for a year, immutable.
 *
 * The path is percent-decoded strictly; "..", "." segments, backslashes,
 * control characters and encoded NULs are refused (400), and the resolved
 * file must lie under the root (realpath), so symlinks cannot lead out.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Set once before the daemon starts, read-only afterwards: no lock. */
static const char *static_root;

static const struct
{
	const char *ext;
	const char *type;
}			mime_types[] =
{
	{"html", "text/html; charset=utf-8"},
	{"htm", "text/html; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"},
	{"mjs", "text/javascript; charset=utf-8"},
	{"css", "text/css; charset=utf-8"},
	{"json", "application/json; charset=utf-8"},
	{"map", "application/json; charset=utf-8"},
	{"webmanifest", "application/manifest+json"},
	{"svg", "image/svg+xml"},
	{"png", "image/png"},
	{"jpg", "image/jpeg"},
	{"jpeg", "image/jpeg"},
	{"gif", "image/gif"},
	{"webp", "image/webp"},
	{"avif", "image/avif"},
	{"ico", "image/x-icon"},
	{"woff2", "font/woff2"},
	{"woff", "font/woff"},
	{"ttf", "font/ttf"},
	{"otf", "font/otf"},
	{"txt", "text/plain; charset=utf-8"},
	{"xml", "application/xml"},
	{"wasm", "application/wasm"},
	{"pdf", "application/pdf"},
	{NULL, NULL}
};

static const char *
mime_type(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash : path, '.');

	if (dot)
		for (int i = 0; mime_types[i].ext; i++)
			if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
				return mime_types[i].type;
	return "application/octet-stream";
}

/* Is the decoded path safe to join to the root? */
static bool
path_is_safe(const char *p, size_t n)
{
	const char *seg = p;

	if (n == 0 || p[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) p[i];

		if (c < 0x20 || c == 0x7F || c == '\\')
			return false;
	}
	/* no "." or ".." segment */
	for (size_t i = 1; i <= n; i++)
	{
		if (i == n || p[i] == '/')
		{
			const char *s = seg + 1;
			size_t		len = (size_t) (p + i - s);

			if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
				return false;
			seg = p + i;
		}
	}
	return true;
}

/*
 * Open root/rel if it is a regular file under the root; -1 otherwise.
 * *resolved gets the real path (malloc'd).
 */
static int
open_under_root(const char *rel, struct stat *st, char **resolved)
{
	char		full[PATH_MAX];
	char	   *real;
	size_t		rootlen = strlen(static_root);
	int			fd;

	if (snprintf(full, sizeof(full), "%s/%s", static_root, rel) >= (int) sizeof(full))
		return -1;
	real = realpath(full, NULL);
	if (real == NULL)
		return -1;
	if (strncmp(real, static_root, rootlen) != 0 || real[rootlen] != '/')
	{
		free(real);
		return -1;
	}
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
	{
		free(real);
		return -1;
	}
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode))
	{
		close(fd);
		free(real);
		return -1;
	}
	/* sendfile needs a blocking descriptor on some file systems */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*resolved = real;
	return fd;
}

/* Does an If-None-Match list name this entity tag (weak comparison)? */
static bool
etag_matches(const char *inm, const char *etag)
{
	const char *opaque = etag + 2;	/* skip W/ */
	size_t		olen = strlen(opaque);
	const char *p = inm;

	while (*p)
	{
		const char *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p != '"')
			return false;
		end = strchr(p + 1, '"');
		if (end == NULL)
			return false;
		if ((size_t) (end - p + 1) == olen && strncmp(p, opaque, olen) == 0)
			return true;
		p = end + 1;
	}
	return false;
}

static Reply
file_reply(struct MHD_Connection *c, int fd, const struct stat *st, const char *real,
		   const char *url_path, unsigned status)
{
	Reply		rep = {status, NULL};
	char		etag[96];
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
	bool		immutable = strncmp(url_path, "/_next/static/", 14) == 0;

	snprintf(etag, sizeof(etag), "W/\"%llx-%llx%09ld\"", (unsigned long long) st->st_size,
			 (unsigned long long) st->st_mtim.tv_sec, (long) st->st_mtim.tv_nsec);
	if (status == 200 && inm && etag_matches(inm, etag))
	{
		close(fd);
		rep.status = 304;
		rep.resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
	}
	else
		rep.resp = MHD_create_response_from_fd((size_t) st->st_size, fd);
	if (rep.resp == NULL)
	{
		if (rep.status != 304)
			close(fd);
		return reply_text(500, "500 Internal Server Error\n");
	}
	if (rep.status != 304)
		MHD_add_response_header(rep.resp, "Content-Type", mime_type(real));
	MHD_add_response_header(rep.resp, "ETag", etag);
	MHD_add_response_header(rep.resp, "Cache-Control",
							immutable && status == 200 ? "public, max-age=31536000, immutable" : "no-cache");
	MHD_add_response_header(rep.resp, "X-Content-Type-Options", "nosniff");
	return rep;
}

static Reply
not_found(struct MHD_Connection *c)
{
	struct stat st;
	char	   *real = NULL;
	int			fd = open_under_root("404.html", &st, &real);
	Reply		rep;

	if (fd < 0)
		return reply_text(404, "404 Not Found\n");
	rep = file_reply(c, fd, &st, real, "/404.html", 404);
	free(real);
	return rep;
}

void
static_init(const char *root)
{
	static_root = root;
}

Reply
static_handle(struct MHD_Connection *c, const char *method, const char *path, size_t path_len)
{
	char	   *dec;
	size_t		len;
	const char *cands[3];
	char		alt1[PATH_MAX],
				alt2[PATH_MAX];
	int			ncand = 0;
	Reply		rep;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
	{
		rep = reply_text(405, "405 Method Not Allowed\n");
		if (rep.resp)
			MHD_add_response_header(rep.resp, "Allow", "GET, HEAD");
		return rep;
	}
	dec = pct_decode(path, path_len, false, &len);
	if (dec == NULL || !path_is_safe(dec, len))
	{
		free(dec);
		return reply_text(400, "400 Bad Request\n");
	}
	if (static_root == NULL || len >= PATH_MAX - 32)
	{
		free(dec);
		return reply_text(404, "404 Not Found\n");
	}

	/* candidates, relative to the root */
	{
		const char *rel = dec + 1;
		size_t		rlen = len - 1;

		if (rlen == 0)
			cands[ncand++] = "index.html";
		else if (rel[rlen - 1] == '/')
		{
			snprintf(alt1, sizeof(alt1), "%sindex.html", rel);
			snprintf(alt2, sizeof(alt2), "%.*s.html", (int) rlen - 1, rel);
			cands[ncand++] = alt1;
			cands[ncand++] = alt2;
		}
		else
		{
			cands[ncand++] = rel;
			snprintf(alt1, sizeof(alt1), "%s.html", rel);
			snprintf(alt2, sizeof(alt2), "%s/index.html", rel);
			cands[ncand++] = alt1;
			cands[ncand++] = alt2;
		}
	}
	for (int i = 0; i < ncand; i++)
	{
		struct stat st;
		char	   *real = NULL;
		int			fd = open_under_root(cands[i], &st, &real);

		if (fd >= 0)
		{
			rep = file_reply(c, fd, &st, real, dec, 200);
			free(real);
			free(dec);
			return rep;
		}
	}
	free(dec);
	return not_found(c);
}
