/*
 * Request handling, shared by main.c (the daemon), api.c and static.c.
 */
#ifndef HC_SERVER_H
#define HC_SERVER_H

#include "hc_http.h"

#include <microhttpd.h>

/* The per-request state (MHD's req_cls), created by the URI log callback. */
typedef struct Request
{
	char	   *uri;			/* raw request target, or its start if too long */
	bool		uri_too_long;
	bool		started;		/* the handler has seen the headers */
	bool		responded;
	bool		is_api_post;	/* collecting a body for the API */
	bool		form_body;		/* ... as application/x-www-form-urlencoded */
	Buf			body;
	bool		body_too_large;
	size_t		body_seen;
	double		t0;
	struct ConnTrack *track;
} Request;

/* A response and its status, ready to queue. */
typedef struct Reply
{
	unsigned	status;
	struct MHD_Response *resp;
} Reply;

/* JSON error body {"code","details","hint","message"}; NULLs become null. */
Reply		reply_json_error(unsigned status, const char *code, const char *message,
							 const char *details, const char *hint);
Reply		reply_text(unsigned status, const char *text);

/* api.c */
bool		api_init(void);		/* loads the schema cache; false on failure */
void		api_reload_schema(const char *why);
void		api_shutdown(void);
Reply		api_handle(struct MHD_Connection *c, Request *r, const char *method,
					   const char *path, size_t path_len, const char *query);

/* static.c */
Reply		static_handle(struct MHD_Connection *c, const char *method,
						  const char *path, size_t path_len);

extern Pool *db_pool;

#endif							/* HC_SERVER_H */
