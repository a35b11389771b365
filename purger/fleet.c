/*-------------------------------------------------------------------------
 *
 * fleet.c
 *	  The edges: PURGE requests to every Varnish (libcurl multi).
 *
 * Each edge has a queue of purges and at most one request in flight, so it
 * sees them in the order the purger made them, over one kept-alive
 * connection.  The epoch, M and the vouching deadline are read from the
 * purger's Announce when a request is sent: M may be ahead of the queued
 * keys, which is safe (a larger M only refuses more answers).  An edge
 * with nothing to do gets a request without keys every vouch interval: it
 * keeps the vouching fresh and notices an edge that is gone.
 *
 * An edge that fails a request (no connection, a timeout, an answer other
 * than 200) is down: its queue is dropped, since it may have missed these
 * purges anyway, and it is retried with a purge of everything, with a
 * backoff (100 ms, doubling, at most 1 s), until it answers.  A purge of
 * everything also replaces whatever is queued, since it covers it.  An
 * edge that restarted between two requests is empty, and learns the epoch
 * and M from the next one.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "purger.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000

typedef enum JobKind
{
	JOB_KEYS,
	JOB_ALL,
	JOB_SYNC					/* no keys: the announce alone */
} JobKind;

typedef struct Job
{
	JobKind		kind;
	char	   *keys;
	struct Job *next;
} Job;

typedef struct Edge
{
	char	   *url;
	CURL	   *easy;
	struct curl_slist *headers;
	Job		   *head;
	Job		   *tail;
	Job		   *inflight;
	bool		down;
	hc_ms		retry_at;
	int			backoff_ms;
	hc_ms		last_sent;
	char		errbuf[CURL_ERROR_SIZE];
	uint64_t	sent;
	uint64_t	failed;
} Edge;

struct Fleet
{
	const Options *opt;
	const Announce *ann;
	CURLM	   *multi;
	Edge	   *edges;
	int			n;
	int			vouch_interval_ms;
	uint64_t	purged_all;
};

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void) ptr;
	(void) arg;
	return size * nmemb;
}

Fleet *
fleet_new(const Options *opt, const Announce *announce)
{
	Fleet	   *f = xcalloc(1, sizeof(Fleet));

	f->opt = opt;
	f->ann = announce;
	f->multi = curl_multi_init();
	if (f->multi == NULL)
	{
		hc_log("libcurl: curl_multi_init failed");
		exit(1);
	}
	f->vouch_interval_ms = opt->vouch_interval_ms;
	f->n = opt->nvarnish;
	f->edges = xcalloc((size_t) f->n, sizeof(Edge));
	for (int i = 0; i < f->n; i++)
	{
		Edge	   *e = &f->edges[i];

		e->url = xstrdup(opt->varnish[i]);
		e->easy = curl_easy_init();
		if (e->easy == NULL)
		{
			hc_log("libcurl: curl_easy_init failed");
			exit(1);
		}
		e->backoff_ms = BACKOFF_MIN_MS;
		e->last_sent = -1;
		curl_easy_setopt(e->easy, CURLOPT_URL, e->url);
		curl_easy_setopt(e->easy, CURLOPT_CUSTOMREQUEST, "PURGE");
		curl_easy_setopt(e->easy, CURLOPT_USERAGENT, "hc_purger/" HC_PURGER_VERSION);
		curl_easy_setopt(e->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS, (long) opt->request_timeout_ms);
		curl_easy_setopt(e->easy, CURLOPT_CONNECTTIMEOUT_MS,
						 (long) (opt->request_timeout_ms < 1000 ? opt->request_timeout_ms : 1000));
		curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(e->easy, CURLOPT_ERRORBUFFER, e->errbuf);
		curl_easy_setopt(e->easy, CURLOPT_PRIVATE, e);
		curl_easy_setopt(e->easy, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(e->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	}
	return f;
}

static void
free_jobs(Edge *e)
{
	while (e->head)
	{
		Job		   *j = e->head;

		e->head = j->next;
		free(j->keys);
		free(j);
	}
	e->tail = NULL;
}

void
fleet_free(Fleet *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->n; i++)
	{
		Edge	   *e = &f->edges[i];

		if (e->inflight)
		{
			curl_multi_remove_handle(f->multi, e->easy);
			free(e->inflight->keys);
			free(e->inflight);
		}
		free_jobs(e);
		curl_easy_cleanup(e->easy);
		curl_slist_free_all(e->headers);
		free(e->url);
	}
	free(f->edges);
	curl_multi_cleanup(f->multi);
	free(f);
}

void *
fleet_multi(Fleet *f)
{
	return f->multi;
}

static void
enqueue(Edge *e, JobKind kind, const char *keys)
{
	Job		   *j = xcalloc(1, sizeof(Job));

	j->kind = kind;
	j->keys = keys ? xstrdup(keys) : NULL;
	if (e->tail)
		e->tail->next = j;
	else
		e->head = j;
	e->tail = j;
}

void
fleet_purge_keys(Fleet *f, const char *keys)
{
	for (int i = 0; i < f->n; i++)
	{
		if (!f->edges[i].down)
			enqueue(&f->edges[i], JOB_KEYS, keys);
	}
}

void
fleet_purge_all(Fleet *f)
{
	for (int i = 0; i < f->n; i++)
	{
		Edge	   *e = &f->edges[i];

		if (e->down)
			continue;			/* its retry is a purge of everything */
		free_jobs(e);
		enqueue(e, JOB_ALL, NULL);
	}
}

/* A request without keys to every edge that answers: the announce alone. */
void
fleet_sync(Fleet *f)
{
	for (int i = 0; i < f->n; i++)
	{
		if (!f->edges[i].down)
			enqueue(&f->edges[i], JOB_SYNC, NULL);
	}
}

static struct curl_slist *
add_header(struct curl_slist *list, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static struct curl_slist *
add_header(struct curl_slist *list, const char *fmt,...)
{
	va_list		ap;
	char		small[256];
	char	   *line = small;
	int			n;
	struct curl_slist *out;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n >= (int) sizeof(small))
	{
		line = xmalloc((size_t) n + 1);
		va_start(ap, fmt);
		vsnprintf(line, (size_t) n + 1, fmt, ap);
		va_end(ap);
	}
	out = curl_slist_append(list, line);
	if (line != small)
		free(line);
	if (out == NULL)
	{
		hc_log("out of memory");
		abort();
	}
	return out;
}

static void
start(Fleet *f, Edge *e, Job *j, hc_ms now)
{
	const Announce *a = f->ann;
	CURLMcode	rc;

	curl_slist_free_all(e->headers);
	e->headers = NULL;
	if (j->kind == JOB_KEYS)
		e->headers = add_header(e->headers, "X-HC-Keys: %s", j->keys);
	else if (j->kind == JOB_ALL)
		e->headers = add_header(e->headers, "X-HC-Purge-All: 1");
	if (a->has_epoch)
	{
		e->headers = add_header(e->headers, "X-HC-Epoch: %s", a->epoch);
		e->headers = add_header(e->headers, "X-HC-Seq: %" PRIu64, a->m);
	}
	e->headers = add_header(e->headers, "X-HC-Alive-For: %.3f", a->vouching ? a->alive_for_s : 0.0);
	curl_easy_setopt(e->easy, CURLOPT_HTTPHEADER, e->headers);
	e->errbuf[0] = '\0';
	e->inflight = j;
	e->last_sent = now;
	e->sent++;
	rc = curl_multi_add_handle(f->multi, e->easy);
	if (rc != CURLM_OK)
	{
		hc_log("libcurl: curl_multi_add_handle: %s", curl_multi_strerror(rc));
		abort();
	}
}

static void
finish(Fleet *f, Edge *e, CURLcode result, hc_ms now)
{
	long		status = 0;
	char		reason[CURL_ERROR_SIZE + 128];
	Job		   *j = e->inflight;

	curl_multi_remove_handle(f->multi, e->easy);
	e->inflight = NULL;
	if (result == CURLE_OK)
		curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &status);
	if (result == CURLE_OK && status == 200)
	{
		if (j->kind == JOB_ALL)
			f->purged_all++;
		if (e->down)
		{
			hc_log("edge %s: answers again; purged everything there", e->url);
			e->down = false;
		}
		e->backoff_ms = BACKOFF_MIN_MS;
	}
	else
	{
		e->failed++;
		if (result != CURLE_OK)
			snprintf(reason, sizeof(reason), "%s", e->errbuf[0] ? e->errbuf : curl_easy_strerror(result));
		else
			snprintf(reason, sizeof(reason), "answered %ld%s", status,
					 status == 403 ? " (is this host in the VCL's purgers ACL?)" :
					 status == 405 ? " (is it running edge/housing_cache.vcl?)" : "");
		if (!e->down)
			hc_log("edge %s: down (%s); it will be purged of everything once it answers", e->url, reason);
		e->down = true;
		free_jobs(e);
		e->retry_at = now + e->backoff_ms;
		e->backoff_ms = e->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : e->backoff_ms * 2;
	}
	free(j->keys);
	free(j);
}

void
fleet_run(Fleet *f, hc_ms now)
{
	int			running;
	int			left;
	CURLMsg    *m;
	bool		started = false;

	curl_multi_perform(f->multi, &running);
	while ((m = curl_multi_info_read(f->multi, &left)) != NULL)
	{
		Edge	   *e = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &e);
		if (e)
			finish(f, e, m->data.result, now);
	}
	for (int i = 0; i < f->n; i++)
	{
		Edge	   *e = &f->edges[i];
		Job		   *j;

		if (e->inflight)
			continue;
		if (e->down)
		{
			if (now < e->retry_at)
				continue;
			j = xcalloc(1, sizeof(Job));
			j->kind = JOB_ALL;
		}
		else if (e->head)
		{
			j = e->head;
			e->head = j->next;
			if (e->head == NULL)
				e->tail = NULL;
			j->next = NULL;
		}
		else if (e->last_sent < 0 || now - e->last_sent >= f->vouch_interval_ms)
		{
			j = xcalloc(1, sizeof(Job));
			j->kind = JOB_SYNC;
		}
		else
			continue;
		start(f, e, j, now);
		started = true;
	}
	if (started)
		curl_multi_perform(f->multi, &running);
}

/* When fleet_run next has something to start (libcurl's own timers apart). */
hc_ms
fleet_next_timer(const Fleet *f)
{
	hc_ms		t = -1;

	for (int i = 0; i < f->n; i++)
	{
		const Edge *e = &f->edges[i];
		hc_ms		x;

		if (e->inflight)
			continue;
		if (e->down)
			x = e->retry_at;
		else if (e->head)
			x = 0;
		else
			x = e->last_sent + f->vouch_interval_ms;
		if (t < 0 || x < t)
			t = x;
	}
	return t;
}

/* Nothing queued or in flight (for a clean exit). */
bool
fleet_idle(const Fleet *f)
{
	for (int i = 0; i < f->n; i++)
	{
		if (f->edges[i].inflight || (f->edges[i].head && !f->edges[i].down))
			return false;
	}
	return true;
}

void
fleet_stats(const Fleet *f, uint64_t *sent, uint64_t *failed, uint64_t *purged_all)
{
	*sent = *failed = 0;
	for (int i = 0; i < f->n; i++)
	{
		*sent += f->edges[i].sent;
		*failed += f->edges[i].failed;
	}
	*purged_all = f->purged_all;
}
