/*
 * The request handlers called by main.c (the daemon): api.c and static.c.
 * They get their settings at init, never from main.c, so that dependencies
 * run one way: main.c -> api.c, static.c -> reply.c, pool.c, schema.c,
 * jwt.c, json.c, util.c.
 */
#ifndef HC_SERVER_H
#define HC_SERVER_H

#include "hc_http.h"
#include "reply.h"

#include <microhttpd.h>

/*
 * What api.c needs of the settings.  api_init copies the struct; the
 * strings, the roles and the pool must outlive api_shutdown().
 */
typedef struct ApiConfig
{
	Pool	   *pool;			/* the primary: writes, and reads without a
								 * read database */
	Pool	   *read_pool;		/* the read database (a hot standby), or NULL */
	const char *schema;			/* the exposed schema */
	const char *anon_role;		/* the role of requests without a token */
	char	   *const *jwt_roles;	/* roles a token may claim, NULL-terminated */
	const unsigned char *jwt_secret;	/* NULL: every token is refused */
	size_t		jwt_secret_len;
	int			pool_timeout_ms;
} ApiConfig;

/* api.c; api_init loads the schema cache: false on failure */
bool		api_init(const ApiConfig *conf);
void		api_reload_schema(const char *why);
void		api_shutdown(void);
/* body: the request body (POST only), form: it is form-encoded, not JSON. */
Reply		api_handle(struct MHD_Connection *c, const char *method, const char *path,
					   size_t path_len, const char *query, const Buf *body, bool form);

/* static.c: root is a realpath (or NULL: every path is a 404) and must
 * outlive the daemon. */
void		static_init(const char *root);
Reply		static_handle(struct MHD_Connection *c, const char *method,
						  const char *path, size_t path_len);

#endif							/* HC_SERVER_H */
