/*-------------------------------------------------------------------------
 *
 * message.c
 *	  A message of housing_cache's invalidation channel, as a struct.
 *
 * The formats are edge/README.md's:
 *
 *	 {"v":1,"type":"invalidation","cluster":"...","database":"...",
 *	  "epoch":"...","seq":N,"xid":N,"tags":[...],"truncated":false,"lsn":"..."}
 *	 {"v":1,"type":"heartbeat","cluster":"...","epoch":"...","seq":N}
 *
 * A payload may also be a JSON array of such messages (the engine's
 * publisher sends a burst of commits as one PUBLISH); purger_message()
 * takes them one by one with message_from_json().
 *
 * Unknown fields are ignored; an unknown type, or a version other than 1,
 * is MSG_OTHER (ignored by the caller).  A message without "type" is an
 * invalidation (engines before the edge contract sent no type and no
 * seq).  What cannot be read is refused as a whole, except an
 * invalidation's tags: when the seq is readable but the tags (or the
 * database they belong to) are not, the message is returned with tags_ok
 * false, so that the caller knows which seq it was and purges everything.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "purger.h"

static bool
digits(const char *s, size_t len)
{
	if (len == 0 || len > EPOCH_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/* A string member as a malloc'd copy, NULL when absent; false if not a string. */
static bool
get_string(const JsonValue *obj, const char *key, char **out)
{
	const JsonValue *v = json_member(obj, key);

	*out = NULL;
	if (v == NULL || v->type == JSON_NULL)
		return true;
	if (v->type != JSON_STRING)
		return false;
	*out = xstrndup(v->text, v->len);
	return true;
}

static void
set_err(char *err, size_t errlen, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", what);
}

bool
message_parse(const char *text, size_t len, Message *msg, char *err, size_t errlen)
{
	JsonValue  *doc;
	char		jerr[128];
	bool		ok;

	memset(msg, 0, sizeof(*msg));
	doc = json_parse(text, len, jerr, sizeof(jerr));
	if (doc == NULL)
	{
		if (err && errlen)
			snprintf(err, errlen, "not JSON: %s", jerr);
		return false;
	}
	ok = message_from_json(doc, msg, err, errlen);
	json_free(doc);
	return ok;
}

/* The same, from a parsed value (an element of a payload that is an array). */
bool
message_from_json(const JsonValue *doc, Message *msg, char *err, size_t errlen)
{
	const JsonValue *v;
	const JsonValue *tags;
	bool		ok = false;

	memset(msg, 0, sizeof(*msg));
	if (doc->type != JSON_OBJECT)
	{
		set_err(err, errlen, "not a JSON object");
		goto done;
	}

	/* version and type */
	v = json_member(doc, "v");
	if (v != NULL)
	{
		uint64_t	ver;

		if (!json_uint64(v, &ver))
		{
			set_err(err, errlen, "\"v\" is not a version number");
			goto done;
		}
		if (ver != 1)
		{
			msg->type = MSG_OTHER;
			ok = true;
			goto done;
		}
	}
	v = json_member(doc, "type");
	if (v == NULL)
		msg->type = MSG_INVALIDATION;
	else if (v->type != JSON_STRING)
	{
		set_err(err, errlen, "\"type\" is not a string");
		goto done;
	}
	else if (strcmp(v->text, "invalidation") == 0 && v->len == strlen("invalidation"))
		msg->type = MSG_INVALIDATION;
	else if (strcmp(v->text, "heartbeat") == 0 && v->len == strlen("heartbeat"))
		msg->type = MSG_HEARTBEAT;
	else
	{
		msg->type = MSG_OTHER;
		ok = true;
		goto done;
	}

	/* cluster, epoch, seq */
	if (!get_string(doc, "cluster", &msg->cluster))
	{
		set_err(err, errlen, "\"cluster\" is not a string");
		goto done;
	}
	v = json_member(doc, "epoch");
	if (v != NULL && v->type != JSON_NULL)
	{
		/* a string of digits; a plain number is taken as well */
		if ((v->type != JSON_STRING && v->type != JSON_NUMBER) || !digits(v->text, v->len))
		{
			set_err(err, errlen, "\"epoch\" is not a string of digits");
			goto done;
		}
		msg->epoch = xstrndup(v->text, v->len);
	}
	v = json_member(doc, "seq");
	if (v != NULL && v->type != JSON_NULL)
	{
		if (!json_uint64(v, &msg->seq) || msg->seq > (uint64_t) INT64_MAX)
		{
			set_err(err, errlen, "\"seq\" is not a non-negative integer");
			goto done;
		}
		msg->has_seq = true;
	}
	if (msg->has_seq && msg->epoch == NULL)
	{
		set_err(err, errlen, "a \"seq\" without an \"epoch\"");
		goto done;
	}
	if (msg->type == MSG_HEARTBEAT)
	{
		if (!msg->has_seq)
		{
			set_err(err, errlen, "a heartbeat without \"epoch\" and \"seq\"");
			goto done;
		}
		ok = true;
		goto done;
	}

	/* an invalidation: database, tags, truncated */
	v = json_member(doc, "truncated");
	msg->truncated = v != NULL && v->type == JSON_BOOL && v->boolean;
	ok = true;
	msg->tags_ok = false;
	if (!get_string(doc, "database", &msg->database) || msg->database == NULL)
	{
		set_err(err, errlen, "no \"database\"");
		goto tags_unreadable;
	}
	tags = json_member(doc, "tags");
	if (tags == NULL || tags->type != JSON_ARRAY)
	{
		set_err(err, errlen, "no \"tags\" list");
		goto tags_unreadable;
	}
	msg->tags = xcalloc(tags->count, sizeof(char *));
	for (size_t i = 0; i < tags->count; i++)
	{
		const JsonValue *t = tags->items[i];

		if (t->type != JSON_STRING || t->len == 0 || strlen(t->text) != t->len)
		{
			set_err(err, errlen, "a tag that is not a non-empty string");
			goto tags_unreadable;
		}
		msg->tags[msg->ntags++] = xstrndup(t->text, t->len);
	}
	msg->tags_ok = true;
	goto done;

tags_unreadable:
	/* the seq says which message it was: the caller purges everything */
	if (!msg->has_seq)
		ok = false;
done:
	if (!ok)
		message_free(msg);
	return ok;
}

void
message_free(Message *msg)
{
	free(msg->cluster);
	free(msg->database);
	free(msg->epoch);
	for (size_t i = 0; i < msg->ntags; i++)
		free(msg->tags[i]);
	free(msg->tags);
	memset(msg, 0, sizeof(*msg));
}
