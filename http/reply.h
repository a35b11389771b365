/*
 * Replies: a response and its status, ready to queue.  Shared by main.c,
 * api.c and static.c, so that the handlers need nothing from main.c.
 */
#ifndef HC_REPLY_H
#define HC_REPLY_H

#include <microhttpd.h>

/* resp is NULL when out of memory: the caller drops the connection. */
typedef struct Reply
{
	unsigned	status;
	struct MHD_Response *resp;
} Reply;

/* JSON error body {"code","details","hint","message"}; NULLs become null. */
Reply		reply_json_error(unsigned status, const char *code, const char *message,
							 const char *details, const char *hint);
/* text is not copied: it must be a string literal (or outlive the reply). */
Reply		reply_text(unsigned status, const char *text);

#endif							/* HC_REPLY_H */
