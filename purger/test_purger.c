/*-------------------------------------------------------------------------
 *
 * test_purger.c
 *	  Unit tests of hc_purger's parser, keys, seqs, address lists and
 *	  policy (with heartbeats heard or not), and a
 *	  fuzz-ish run of random and mutated messages through the policy.
 *	  Built with AddressSanitizer and UBSan (make check); the fleet is a
 *	  fake that records what the policy asked for.
 *
 *-------------------------------------------------------------------------
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "purger.h"

static int	failures = 0;
static int	checks = 0;

#define CHECK(cond, ...) do { \
	checks++; \
	if (!(cond)) { \
		failures++; \
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} \
} while (0)

/* --- the fake fleet ------------------------------------------------------ */

typedef struct Call
{
	char		kind;			/* 'K' keys, 'A' all, 'S' sync */
	char	   *keys;
	bool		vouching;
	uint64_t	m;
	char		epoch[EPOCH_MAX_LEN + 1];
} Call;

struct Fleet
{
	const Announce *ann;
	Call	   *calls;
	size_t		n;
	size_t		cap;
};

static Fleet fake;

static void
record(Fleet *f, char kind, const char *keys)
{
	if (f->n == f->cap)
	{
		f->cap = f->cap ? f->cap * 2 : 64;
		f->calls = xrealloc(f->calls, f->cap * sizeof(Call));
	}
	f->calls[f->n] = (Call) {kind, keys ? xstrdup(keys) : NULL, f->ann->vouching, f->ann->m, ""};
	snprintf(f->calls[f->n].epoch, sizeof(f->calls[f->n].epoch), "%s",
			 f->ann->has_epoch ? f->ann->epoch : "");
	f->n++;
}

void
fleet_purge_keys(Fleet *f, const char *keys)
{
	record(f, 'K', keys);
}

void
fleet_purge_all(Fleet *f)
{
	record(f, 'A', NULL);
}

void
fleet_sync(Fleet *f)
{
	record(f, 'S', NULL);
}

void
fleet_stats(const Fleet *f, uint64_t *sent, uint64_t *failed, uint64_t *purged_all)
{
	*sent = f->n;
	*failed = 0;
	*purged_all = 0;
}

static Purger *current;
static uint64_t all_mark;

/* Purges of everything decided since the last calls_reset() (not repurges). */
static size_t
decided_all(void)
{
	return (size_t) (purger_purges_all(current) - all_mark);
}

static void
calls_reset(void)
{
	if (current)
		all_mark = purger_purges_all(current);
	for (size_t i = 0; i < fake.n; i++)
		free(fake.calls[i].keys);
	fake.n = 0;
}

static size_t
count(char kind)
{
	size_t		c = 0;

	for (size_t i = 0; i < fake.n; i++)
		c += fake.calls[i].kind == kind;
	return c;
}

static const Call *
last(void)
{
	return fake.n ? &fake.calls[fake.n - 1] : NULL;
}

/* --- json and messages ------------------------------------------------------ */

static void
test_json(void)
{
	const char *good[] = {
		"{}", "[]", "0", "-0.5e+3", "\"a\\u00e9\\ud83d\\ude00\"", "[1,[2,[3]],{\"a\":null}]",
		" { \"k\" : true , \"l\" : false } ", "\"\\ud800\"", NULL
	};
	const char *bad[] = {
		"", "{", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.", "-", "tru", "\"\\x\"",
		"\"a", "[1] 2", "{\"a\":1}}", "\"\x01\"", "nul", "1e", "{1:2}", NULL
	};
	char		err[128];
	char		deep[200];
	JsonValue  *v;
	uint64_t	u;

	for (int i = 0; good[i]; i++)
	{
		v = json_parse(good[i], strlen(good[i]), err, sizeof(err));
		CHECK(v != NULL, "good JSON %s refused: %s", good[i], err);
		json_free(v);
	}
	for (int i = 0; bad[i]; i++)
	{
		v = json_parse(bad[i], strlen(bad[i]), err, sizeof(err));
		CHECK(v == NULL && err[0], "bad JSON %s accepted", bad[i]);
		json_free(v);
	}
	v = json_parse("\"a\\u00e9\\ud83d\\ude00\\ud800x\"", 28, err, sizeof(err));
	CHECK(v && strcmp(v->text, "a\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx") == 0, "escapes: %s", v ? v->text : err);
	json_free(v);

	memset(deep, '[', sizeof(deep));
	v = json_parse(deep, sizeof(deep), err, sizeof(err));
	CHECK(v == NULL && strstr(err, "deep"), "depth limit: %s", err);

	v = json_parse("[18446744073709551615, 18446744073709551616, 1.0, -1, 7]",
				   strlen("[18446744073709551615, 18446744073709551616, 1.0, -1, 7]"), err, sizeof(err));
	CHECK(v && v->count == 5, "numbers: %s", err);
	if (v && v->count == 5)
	{
		CHECK(json_uint64(v->items[0], &u) && u == UINT64_MAX, "max uint64");
		CHECK(!json_uint64(v->items[1], &u), "2^64 refused");
		CHECK(!json_uint64(v->items[2], &u), "1.0 refused");
		CHECK(!json_uint64(v->items[3], &u), "-1 refused");
		CHECK(json_uint64(v->items[4], &u) && u == 7, "7");
	}
	json_free(v);
}

static bool
parse(const char *text, Message *m)
{
	char		err[160];

	return message_parse(text, strlen(text), m, err, sizeof(err));
}

static void
test_messages(void)
{
	Message		m;

	CHECK(parse("{\"v\":1,\"type\":\"invalidation\",\"cluster\":\"73\",\"database\":\"housing\","
				"\"epoch\":\"1459093245510742291\",\"seq\":1234,\"xid\":5678,"
				"\"tags\":[\"housing.listings\",\"housing.listings/city=Boston\"],"
				"\"truncated\":false,\"lsn\":\"0/1A2B3C4\",\"future\":{\"x\":[1]}}", &m), "invalidation");
	CHECK(m.type == MSG_INVALIDATION && m.has_seq && m.seq == 1234 && m.tags_ok && m.ntags == 2 &&
		  strcmp(m.epoch, "1459093245510742291") == 0 && strcmp(m.database, "housing") == 0 &&
		  strcmp(m.cluster, "73") == 0 && strcmp(m.tags[1], "housing.listings/city=Boston") == 0,
		  "invalidation fields");
	message_free(&m);

	CHECK(parse("{\"v\":1,\"type\":\"heartbeat\",\"cluster\":\"73\",\"epoch\":\"9\",\"seq\":0}", &m) &&
		  m.type == MSG_HEARTBEAT && m.has_seq && m.seq == 0, "heartbeat");
	message_free(&m);

	/* an engine from before the edge contract: no type, no seq */
	CHECK(parse("{\"v\":1,\"cluster\":\"73\",\"database\":\"d\",\"epoch\":\"9\",\"xid\":null,"
				"\"tags\":[\"t\"],\"truncated\":false,\"lsn\":null}", &m) &&
		  m.type == MSG_INVALIDATION && !m.has_seq && m.tags_ok, "old format");
	message_free(&m);

	CHECK(parse("{\"v\":2,\"type\":\"invalidation\",\"seq\":\"x\"}", &m) && m.type == MSG_OTHER, "v2 ignored");
	message_free(&m);
	CHECK(parse("{\"v\":1,\"type\":\"reset\",\"epoch\":\"1\"}", &m) && m.type == MSG_OTHER, "unknown type");
	message_free(&m);

	/* seq readable, tags not: the caller purges everything */
	CHECK(parse("{\"type\":\"invalidation\",\"database\":\"d\",\"epoch\":\"1\",\"seq\":5,\"tags\":[1]}", &m) &&
		  m.has_seq && m.seq == 5 && !m.tags_ok, "unreadable tags with a seq");
	message_free(&m);
	CHECK(parse("{\"type\":\"invalidation\",\"epoch\":\"1\",\"seq\":5,\"tags\":[\"a\"]}", &m) &&
		  !m.tags_ok, "no database with a seq");
	message_free(&m);
	CHECK(parse("{\"type\":\"invalidation\",\"database\":\"d\",\"epoch\":\"1\",\"seq\":5,\"tags\":[\"a\\u0000b\"]}", &m) &&
		  !m.tags_ok, "a NUL in a tag");
	message_free(&m);

	/* refused */
	CHECK(!parse("{\"type\":\"invalidation\",\"database\":\"d\",\"tags\":[1]}", &m), "no seq, bad tags");
	CHECK(!parse("{\"type\":\"heartbeat\",\"epoch\":\"1\"}", &m), "heartbeat without seq");
	CHECK(!parse("{\"type\":\"heartbeat\",\"epoch\":\"1\",\"seq\":-1}", &m), "negative seq");
	CHECK(!parse("{\"type\":\"heartbeat\",\"epoch\":\"1\",\"seq\":1.5}", &m), "fractional seq");
	CHECK(!parse("{\"type\":\"heartbeat\",\"epoch\":\"1\",\"seq\":9223372036854775808}", &m), "seq past int64");
	CHECK(!parse("{\"type\":\"heartbeat\",\"epoch\":\"1x\",\"seq\":1}", &m), "bad epoch");
	CHECK(!parse("{\"type\":\"heartbeat\",\"epoch\":\"123456789012345678901\",\"seq\":1}", &m), "long epoch");
	CHECK(!parse("{\"type\":\"heartbeat\",\"seq\":1}", &m), "seq without epoch");
	CHECK(!parse("{\"type\":7}", &m), "type not a string");
	CHECK(!parse("[1]", &m), "not an object");
	CHECK(!parse("{\"v\":\"1\"}", &m), "v not a number");
	CHECK(parse("{\"type\":\"heartbeat\",\"epoch\":42,\"seq\":1}", &m) && strcmp(m.epoch, "42") == 0,
		  "a numeric epoch");
	message_free(&m);
}

static void
test_edge_key(void)
{
	char		key[EDGE_KEY_LEN + 1];
	const char *tag = "housing.listings/city=Boston";

	/* printf 'housing\0housing.listings/city=Boston' | sha256sum | cut -c1-32 */
	edge_key("housing", tag, strlen(tag), key);
	CHECK(strcmp(key, "k319443c73f84f13c0fac43807445e40a") == 0, "test vector: %s", key);
	edge_key("postgres", "*", 1, key);
	CHECK(strcmp(key, "kfd46c99506ba50edec9a02c1620c384a") == 0, "the * key: %s", key);
	CHECK(strlen(key) == EDGE_KEY_LEN, "length");
}

/* --- sequence ------------------------------------------------------------------ */

/* --redis-sentinels: the engine's rules for redis_sentinels. */
static void
test_addresses(void)
{
	HostPort	l[MAX_SENTINELS];
	int			n = -1;
	char		err[256];
	char		text[ADDR_TEXT_LEN];
	char		many[MAX_SENTINELS * 24 + 32] = "";
	static const char *bad[] = {
		"127.0.0.1", ":26379", "h:", "h:0", "h:65536", "h:12x", "h:99999999999999999999",
		"::1:26379", "[::1]26379", "[::1]", "[]:1", "a:1,a:1", "h\x01:1",
	};

	CHECK(address_list_parse("", l, MAX_SENTINELS, &n, err, sizeof(err)) && n == 0, "empty");
	CHECK(address_list_parse(" , ", l, MAX_SENTINELS, &n, err, sizeof(err)) && n == 0, "blank");
	CHECK(address_list_parse("10.0.0.1:26379, sentinel-2:26380 [::1]:26381,", l, MAX_SENTINELS, &n,
							 err, sizeof(err)) && n == 3, "three: %s", err);
	CHECK(n == 3 && strcmp(l[0].host, "10.0.0.1") == 0 && l[0].port == 26379 &&
		  strcmp(l[1].host, "sentinel-2") == 0 && l[1].port == 26380 &&
		  strcmp(l[2].host, "::1") == 0 && l[2].port == 26381, "parsed");
	address_format(&l[2], text, sizeof(text));
	CHECK(strcmp(text, "[::1]:26381") == 0, "IPv6 in brackets: %s", text);
	address_format(&l[0], text, sizeof(text));
	CHECK(strcmp(text, "10.0.0.1:26379") == 0, "IPv4: %s", text);
	CHECK(address_equal(&l[0], &l[0]) && !address_equal(&l[0], &l[1]), "equal");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		err[0] = '\0';
		CHECK(!address_list_parse(bad[i], l, MAX_SENTINELS, &n, err, sizeof(err)) && err[0],
			  "'%s' refused", bad[i]);
	}
	for (int i = 0; i <= MAX_SENTINELS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "h%d:1,", i);
	CHECK(!address_list_parse(many, l, MAX_SENTINELS, &n, err, sizeof(err)) && strstr(err, "more than"),
		  "at most %d: %s", MAX_SENTINELS, err);
}

static void
test_sequence(void)
{
	Sequence	s;
	uint64_t	first;
	hc_ms		since;
	bool		hb;

	seq_init(&s);
	seq_rebase(&s, 10);
	CHECK(seq_add(&s, 11, 100) == SEQ_NEW && s.base == 11 && !seq_gap(&s, NULL, NULL, NULL), "in order");
	CHECK(seq_add(&s, 11, 100) == SEQ_OLD && seq_add(&s, 3, 100) == SEQ_OLD, "old and duplicate");
	CHECK(seq_add(&s, 13, 200) == SEQ_NEW && s.base == 11, "13 before 12");
	CHECK(seq_gap(&s, &first, &since, &hb) && first == 12 && since == 200 && !hb, "12 missing since 200");
	CHECK(seq_add(&s, 16, 300) == SEQ_NEW, "16");
	CHECK(seq_add(&s, 12, 400) == SEQ_NEW && s.base == 13, "12 arrives");
	CHECK(seq_gap(&s, &first, &since, &hb) && first == 14 && since == 300, "14 missing since 300, not 200");
	CHECK(seq_add(&s, 13, 400) == SEQ_OLD, "13 again");
	seq_add(&s, 14, 500);
	seq_add(&s, 15, 500);
	CHECK(s.base == 16 && !seq_gap(&s, NULL, NULL, NULL), "all arrived");

	CHECK(seq_announce(&s, 16, 600) == SEQ_OLD && !seq_gap(&s, NULL, NULL, NULL), "heartbeat at 16");
	CHECK(seq_announce(&s, 18, 700) == SEQ_NEW, "heartbeat ahead");
	CHECK(seq_gap(&s, &first, &since, &hb) && first == 17 && since == 700 && hb, "17 missing after a heartbeat");
	seq_add(&s, 17, 800);
	CHECK(s.base == 17 && seq_gap(&s, &first, NULL, NULL) && first == 18, "18 still missing");
	seq_add(&s, 18, 800);
	CHECK(s.base == 18 && !seq_gap(&s, NULL, NULL, NULL), "heartbeat's seqs all arrived");

	CHECK(seq_add(&s, 18 + SEQ_WINDOW + 1, 900) == SEQ_FAR, "too far");
	CHECK(seq_announce(&s, 18 + SEQ_WINDOW + 1, 900) == SEQ_FAR, "heartbeat too far");
	CHECK(seq_add(&s, 18 + SEQ_WINDOW, 900) == SEQ_NEW, "just within");
	CHECK(seq_gap(&s, &first, &since, NULL) && first == 19 && since == 900, "a window of holes");
	seq_rebase(&s, 18 + SEQ_WINDOW);
	CHECK(!seq_gap(&s, NULL, NULL, NULL) && s.base == 18 + SEQ_WINDOW, "rebased");
	/* the ring wraps cleanly */
	for (uint64_t n = s.base + 1, end = s.base + 3 * SEQ_WINDOW; n < end; n += 2)
	{
		seq_add(&s, n + 1, 1000);
		seq_add(&s, n, 1000);
	}
	CHECK(!seq_gap(&s, NULL, NULL, NULL), "wrapped: no gap");
	seq_free(&s);
}

/* --- the policy ---------------------------------------------------------------- */

static Options
test_options(void)
{
	static char *dbs[] = {"housing"};

	return (Options) {
		.redis_host = "127.0.0.1", .redis_port = 6379, .channel = "c", .nvarnish = 1,
		.reorder_window_ms = 1000, .heartbeat_ms = 1000, .heartbeat_timeout_ms = 3000,
		.repurge_delay_ms = 200, .alive_for_s = 3, .vouch_interval_ms = 1000,
		.request_timeout_ms = 2000, .max_keys_bytes = 6000, .databases = dbs, .ndatabases = 0,
	};
}

static void
send_msg(Purger *p, hc_ms now, const char *fmt,...) __attribute__((format(printf, 3, 4)));

static void
send_msg(Purger *p, hc_ms now, const char *fmt,...)
{
	char		buf[8192];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	purger_message(p, buf, strlen(buf), now);
}

#define HB(p, t, epoch, seq) send_msg(p, t, "{\"v\":1,\"type\":\"heartbeat\",\"cluster\":\"c1\",\"epoch\":\"%s\",\"seq\":%d}", epoch, seq)
#define INV(p, t, epoch, seq, tags) send_msg(p, t, "{\"v\":1,\"type\":\"invalidation\",\"cluster\":\"c1\",\"database\":\"housing\",\"epoch\":\"%s\",\"seq\":%d,\"tags\":[%s]}", epoch, seq, tags)

static void
test_policy(void)
{
	Options		o = test_options();
	Purger	   *p = purger_new(&o);
	char		boston[EDGE_KEY_LEN + 1];
	char		star[EDGE_KEY_LEN + 1];
	char		both[2 * EDGE_KEY_LEN + 2];

	current = p;
	all_mark = 0;
	fake.ann = purger_announce(p);
	purger_attach(p, &fake);
	edge_key("housing", "housing.listings/city=Boston", 28, boston);
	edge_key("housing", "*", 1, star);
	snprintf(both, sizeof(both), "%s %s", boston, star);

	purger_start(p, 0);
	CHECK(decided_all() == 1 && !last()->vouching, "start: everything, not vouching");
	calls_reset();

	/* messages before subscribing cannot arrive; subscribing purges */
	purger_subscribed(p, "127.0.0.1:6379", 10);
	CHECK(decided_all() == 1 && !last()->vouching, "subscribed: everything");
	calls_reset();

	/* an invalidation gives the base, but no vouching without a heartbeat */
	INV(p, 20, "11", 5, "\"housing.listings/city=Boston\",\"*\"");
	CHECK(count('K') == 1 && strcmp(last()->keys, both) == 0 && !last()->vouching,
		  "keys of the first message: %s", fake.n ? (last()->keys ? last()->keys : "(all)") : "none");
	CHECK(purger_announce(p)->m == 5 && strcmp(purger_announce(p)->epoch, "11") == 0, "M 5");
	calls_reset();
	HB(p, 30, "11", 5);
	CHECK(decided_all() == 1 && last()->vouching && last()->m == 5, "heartbeat: vouching, with everything purged");
	calls_reset();

	/* repurges 200 ms after */
	purger_tick(p, 219);
	CHECK(count('K') == 0, "no repurge before 200 ms");
	purger_tick(p, 220);
	CHECK(count('K') == 1 && last()->kind == 'K' && strcmp(last()->keys, both) == 0, "repurged keys at 220");
	purger_tick(p, 231);
	CHECK(decided_all() == 0 && last()->kind == 'A', "repurged everything too");
	calls_reset();

	/* in order: keys only */
	INV(p, 300, "11", 6, "\"housing.listings/city=Boston\"");
	CHECK(count('K') == 1 && decided_all() == 0 && strcmp(last()->keys, boston) == 0 && last()->m == 5,
		  "seq 6 (M after its purge is announced with the next request)");
	CHECK(purger_announce(p)->m == 6, "M 6");
	calls_reset();

	/* a hole filled within the window: nothing more */
	INV(p, 400, "11", 8, "\"housing.listings/city=Boston\"");
	INV(p, 900, "11", 7, "\"housing.listings/city=Boston\"");
	purger_tick(p, 1500);
	CHECK(decided_all() == 0, "7 late but within the window");
	calls_reset();

	/* a hole not filled: everything, M raised */
	INV(p, 2000, "11", 10, "\"housing.listings/city=Boston\"");
	HB(p, 2000, "11", 10);
	purger_tick(p, 2999);
	CHECK(decided_all() == 0, "9 missing for 999 ms: not yet");
	purger_tick(p, 3000);
	CHECK(decided_all() == 1 && purger_announce(p)->m == 10, "9 lost: everything");
	calls_reset();
	INV(p, 3100, "11", 9, "\"housing.listings/city=Boston\"");
	CHECK(count('K') == 1 && decided_all() == 0, "9 after all: its keys, no gap");
	calls_reset();

	/* a heartbeat ahead */
	HB(p, 3200, "11", 12);
	purger_tick(p, 4100);
	CHECK(decided_all() == 0, "heartbeat ahead, within the window");
	INV(p, 4150, "11", 11, "\"housing.listings/city=Boston\"");
	purger_tick(p, 4199);
	CHECK(decided_all() == 0, "11 arrived, 12 still in the window");
	purger_tick(p, 4200);
	CHECK(decided_all() == 1 && purger_announce(p)->m == 12, "12 lost: everything, M 12");
	calls_reset();

	/* a burst published as one array: each message in order, no gap */
	send_msg(p, 4300, "[{\"v\":1,\"type\":\"invalidation\",\"cluster\":\"c1\",\"database\":\"housing\","
			 "\"epoch\":\"11\",\"seq\":13,\"tags\":[\"housing.listings/city=Boston\"]}, "
			 "{\"v\":1,\"type\":\"invalidation\",\"cluster\":\"c1\",\"database\":\"housing\","
			 "\"epoch\":\"11\",\"seq\":14,\"tags\":[\"*\"]}]");
	CHECK(count('K') == 2 && decided_all() == 0 && purger_announce(p)->m == 14,
		  "an array of seqs 13 and 14: two purges by key, M 14 (%zu by key, %zu everything)",
		  count('K'), decided_all());
	CHECK(strcmp(fake.calls[0].keys, boston) == 0 && strcmp(fake.calls[1].keys, star) == 0,
		  "... in order");
	calls_reset();
	send_msg(p, 4500, "[7, {\"v\":1,\"type\":\"heartbeat\",\"cluster\":\"c1\",\"epoch\":\"11\",\"seq\":14}]");
	CHECK(decided_all() == 0 && count('K') == 0, "a malformed element is skipped, the heartbeat read");
	calls_reset();

	/* heartbeats stop */
	HB(p, 5000, "11", 12);
	purger_tick(p, 8000);
	CHECK(decided_all() == 0 && purger_announce(p)->vouching, "3000 ms: still vouching");
	purger_tick(p, 8001);
	CHECK(decided_all() == 1 && !purger_announce(p)->vouching, "no heartbeat: everything, not vouching");
	CHECK(purger_hears_nothing(p, 8001), "no heartbeat: it hears nothing (the master is checked)");
	calls_reset();
	HB(p, 9000, "11", 12);
	CHECK(decided_all() == 1 && purger_announce(p)->vouching, "heartbeats again: vouching");
	CHECK(!purger_hears_nothing(p, 9000), "heartbeats again: it hears them");
	calls_reset();

	/* a new epoch */
	INV(p, 9100, "22", 1, "\"housing.listings/city=Boston\"");
	CHECK(decided_all() == 1 && strcmp(purger_announce(p)->epoch, "22") == 0 && purger_announce(p)->m == 1,
		  "new epoch: everything, M 1");
	calls_reset();
	/* a late message of E1: keys only */
	INV(p, 9200, "11", 13, "\"housing.listings/city=Boston\"");
	CHECK(count('K') == 1 && decided_all() == 0 && strcmp(purger_announce(p)->epoch, "22") == 0 &&
		  purger_announce(p)->m == 1, "late E1 message: keys only");
	calls_reset();
	/* new epoch starting past 1: 1.. are missing */
	HB(p, 9300, "22", 3);
	purger_tick(p, 10300);
	CHECK(decided_all() == 1, "E2's 2 and 3 never came: everything");
	calls_reset();

	/* another cluster: keys only, its seqs do not count */
	send_msg(p, 10400, "{\"type\":\"invalidation\",\"cluster\":\"c2\",\"database\":\"housing\",\"epoch\":\"99\","
			 "\"seq\":99999,\"tags\":[\"*\"]}");
	CHECK(count('K') == 1 && decided_all() == 0 && strcmp(purger_announce(p)->epoch, "22") == 0 &&
		  purger_announce(p)->m == 3, "other cluster");
	calls_reset();

	/* unreadable tags with a seq: everything */
	send_msg(p, 10500, "{\"type\":\"invalidation\",\"cluster\":\"c1\",\"database\":\"housing\",\"epoch\":\"22\","
			 "\"seq\":4,\"tags\":[null]}");
	CHECK(decided_all() == 1 && purger_announce(p)->m == 4, "unreadable tags");
	calls_reset();

	/* too far */
	INV(p, 10600, "22", 4 + SEQ_WINDOW + 1, "\"a\"");
	CHECK(decided_all() == 1 && purger_announce(p)->m == 4 + SEQ_WINDOW + 1, "far seq: everything");
	calls_reset();

	/* Redis lost and back */
	purger_lost(p, "test", 11000);
	CHECK(decided_all() == 1 && !purger_announce(p)->vouching, "lost: everything, not vouching");
	calls_reset();
	CHECK(!purger_hears_nothing(p, 11050), "not subscribed: nothing to check");
	purger_subscribed(p, "127.0.0.1:6379", 11100);
	CHECK(!purger_hears_nothing(p, 14100), "subscribed, no heartbeat yet, within the timeout");
	CHECK(purger_hears_nothing(p, 14101), "subscribed, no heartbeat within the timeout");
	HB(p, 11200, "22", 70000);
	CHECK(purger_announce(p)->vouching && decided_all() >= 2, "back: everything, vouching again");
	calls_reset();

	/* the database filter */
	{
		static char *dbs[] = {"other"};

		o.databases = dbs;
		o.ndatabases = 1;
		INV(p, 11300, "22", 70001, "\"housing.listings/city=Boston\"");
		CHECK(count('K') == 0 && purger_announce(p)->m == 70001, "filtered database: no keys, seq counts");
		o.ndatabases = 0;
	}

	/* long key lists are split */
	{
		char		tags[20000];
		size_t		len = 0;

		o.max_keys_bytes = 340;		/* 10 keys of 33, with spaces */
		for (int i = 0; i < 25; i++)
			len += (size_t) snprintf(tags + len, sizeof(tags) - len, "%s\"t%d\"", i ? "," : "", i);
		calls_reset();
		INV(p, 11400, "22", 70002, tags);
		CHECK(count('K') == 3, "25 keys in 3 purges: %zu", count('K'));
		for (size_t i = 0; i < fake.n; i++)
			CHECK(strlen(fake.calls[i].keys) <= 340, "within max_keys_bytes");
		o.max_keys_bytes = 6000;
	}

	purger_stop(p);
	CHECK(!purger_announce(p)->vouching && last()->kind == 'S', "stop: a sync without vouching");
	calls_reset();
	current = NULL;
	purger_free(p);
}

/* --- fuzz-ish ------------------------------------------------------------------ */

static uint64_t rng = 88172645463325252ULL;

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
test_fuzz(int iterations)
{
	Options		o = test_options();
	Purger	   *p = purger_new(&o);
	const char *seeds[] = {
		"{\"v\":1,\"type\":\"invalidation\",\"cluster\":\"c1\",\"database\":\"housing\",\"epoch\":\"7\","
		"\"seq\":1,\"xid\":5,\"tags\":[\"housing.listings\",\"housing.listings/city=New York\",\"*\"],"
		"\"truncated\":false,\"lsn\":\"0/1A2B3C4\"}",
		"{\"v\":1,\"type\":\"heartbeat\",\"cluster\":\"c1\",\"epoch\":\"7\",\"seq\":3}",
		"{\"v\":1,\"cluster\":\"c1\",\"database\":\"housing\",\"epoch\":\"7\",\"xid\":null,"
		"\"tags\":[\"a\\u00e9\\ud83d\\ude00\"],\"truncated\":true,\"lsn\":null}",
	};
	const char	alphabet[] = "{}[]\",:0123456789-+.eE\\u tfnrlsa\x01\xff";
	char		buf[1024];
	hc_ms		now = 0;

	hc_log_enabled = false;
	fake.ann = purger_announce(p);
	purger_attach(p, &fake);
	purger_start(p, now);
	purger_subscribed(p, "127.0.0.1:6379", now);
	for (int i = 0; i < iterations; i++)
	{
		size_t		len;
		int			mode = (int) (next_rand() % 4);

		if (mode == 0)
		{
			/* random bytes from JSON's alphabet */
			len = next_rand() % 200;
			for (size_t j = 0; j < len; j++)
				buf[j] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
		}
		else
		{
			const char *seed = seeds[next_rand() % 3];
			int			edits = 1 + (int) (next_rand() % 4);

			len = strlen(seed);
			memcpy(buf, seed, len);
			for (int e = 0; e < edits && len > 0; e++)
			{
				size_t		at = next_rand() % len;

				switch (next_rand() % 4)
				{
					case 0:		/* flip a byte */
						buf[at] = (char) (buf[at] ^ (1 << (next_rand() % 8)));
						break;
					case 1:		/* cut */
						len = at;
						break;
					case 2:		/* insert */
						if (len < sizeof(buf) - 1)
						{
							memmove(buf + at + 1, buf + at, len - at);
							buf[at] = alphabet[next_rand() % (sizeof(alphabet) - 1)];
							len++;
						}
						break;
					case 3:		/* a digit, to move seqs around */
						if (buf[at] >= '0' && buf[at] <= '9')
							buf[at] = (char) ('0' + next_rand() % 10);
						break;
				}
			}
		}
		now += (hc_ms) (next_rand() % 50);
		/* not NUL-terminated on purpose: the parser must stop at len */
		purger_message(p, buf, len, now);
		purger_tick(p, now);
		if (fake.n > 10000)
			calls_reset();
	}
	calls_reset();
	purger_free(p);
}

int
main(int argc, char **argv)
{
	int			iterations = argc > 1 ? atoi(argv[1]) : 200000;

	test_json();
	test_messages();
	test_edge_key();
	test_addresses();
	test_sequence();
	test_policy();
	test_fuzz(iterations);
	calls_reset();
	free(fake.calls);
	printf("%d checks, %d failed; %d random and mutated messages\n", checks, failures, iterations);
	return failures ? 1 : 0;
}
