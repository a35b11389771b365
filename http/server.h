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

/*
 * api.c: the role of a request (the anonymous role, or a bearer token's),
 * checked as for API calls; false with *fail set (401) otherwise.  *role is
 * malloc'd.
 */
bool		api_authenticate(struct MHD_Connection *c, char **role, Reply *fail);

/*
 * What events.c needs of the settings; the strings, sentinels and roles
 * must outlive events_shutdown().  redis_host NULL and no sentinels: the
 * stream is off (404).
 */
typedef struct EventsConfig
{
	const char *redis_host;		/* not used under Sentinel */
	int			redis_port;
	const char *redis_password;
	const HostPort *sentinels;	/* nsentinels > 0: Redis under Sentinel */
	int			nsentinels;
	const char *sentinel_master;
	const char *sentinel_password;
	int			redis_db;
	const char *channel;
	char	   *const *roles;	/* a subscriber's possible roles, at most 64 */
	int			nroles;
	Pool	   *pool;			/* for the privileges, read by the feed thread */
	int			pool_timeout_ms;
	int			backlog;		/* events kept for Last-Event-ID */
	int			keepalive_s;
	int			reorder_ms;
} EventsConfig;

/* events.c: GET /api/events, the stream of invalidated edge keys */
bool		events_init(const EventsConfig *conf);
Reply		events_handle(struct MHD_Connection *c, const char *method, const char *role,
						  const char *query);
void		events_reload(void);	/* SIGHUP: the privileges, and a summary */
void		events_close_all(void); /* SIGTERM: end every stream now */
void		events_shutdown(void);	/* after the daemon stopped */

/* static.c: root is a realpath (or NULL: every path is a 404) and must
 * outlive the daemon. */
void		static_init(const char *root);
Reply		static_handle(struct MHD_Connection *c, const char *method,
						  const char *path, size_t path_len);

#endif							/* HC_SERVER_H */
