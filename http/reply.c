/*
 * Replies shared by the request handlers (see reply.h).
 */
#include "hc_http.h"
#include "reply.h"

#include <stdlib.h>
#include <string.h>

Reply
reply_json_error(unsigned status, const char *code, const char *message,
				 const char *details, const char *hint)
{
	Buf			b;
	Reply		rep = {status, NULL};
	char	   *body;
	size_t		len;

	buf_init(&b);
	buf_puts(&b, "{\"code\":");
	buf_json_cstr(&b, code);
	buf_puts(&b, ",\"details\":");
	buf_json_cstr(&b, details);
	buf_puts(&b, ",\"hint\":");
	buf_json_cstr(&b, hint);
	buf_puts(&b, ",\"message\":");
	buf_json_cstr(&b, message);
	buf_putc(&b, '}');
	body = buf_steal(&b, &len);
	if (body == NULL)
		return rep;
	rep.resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (rep.resp == NULL)
	{
		free(body);
		return rep;
	}
	MHD_add_response_header(rep.resp, "Content-Type", "application/json; charset=utf-8");
	return rep;
}

Reply
reply_text(unsigned status, const char *text)
{
	Reply		rep = {status, NULL};

	rep.resp = MHD_create_response_from_buffer(strlen(text), (void *) text,
											   MHD_RESPMEM_PERSISTENT);
	if (rep.resp)
		MHD_add_response_header(rep.resp, "Content-Type", "text/plain; charset=utf-8");
	return rep;
}
