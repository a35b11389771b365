/*
 * The order of the invalidation messages: has the event stream seen every
 * message of the engine, or may it have missed some?
 *
 * The engine numbers its messages (edge/README.md): `epoch` is new at each
 * start of the server, `seq` counts the messages of the cluster within an
 * epoch, one number per committing transaction that publishes, given at
 * commit.  Backends publish their own messages, so numbers arrive slightly
 * out of order; a heartbeat carries the last number given so far.
 *
 * The argument, kept here in one place:
 *
 *   - `done` is a number such that every message numbered up to it has been
 *     seen (or given up on, after a reset), and `promised` the greatest
 *     number known to exist: seen in a message or announced by a heartbeat.
 *     The numbers in (done, promised] not seen yet are missing.
 *   - A missing number may still come: a backend publishes after its commit,
 *     and a heartbeat may announce a number before its message is out.  So
 *     the verdict waits: when the lowest missing number has been missing for
 *     the reorder window, the message is taken as lost, the caller sends
 *     `reset` (revalidate everything), and `done` jumps to `promised`.
 *   - A new epoch means a restarted server whose earlier numbers mean
 *     nothing, and whose messages of the restart we may have missed: reset.
 *   - The first number seen after subscribing (or after a reset) starts the
 *     count; the caller sends `reset` on every (re)subscription anyway,
 *     since nothing tells what was published while it was not subscribed.
 *   - Messages are delivered as they come, late ones too: the sequence only
 *     decides when to reset, never what to deliver.
 *
 * The numbers seen above `done` are a bitmap of SEQ_WINDOW bits (number n
 * at bit n % SEQ_WINDOW); a number further ahead than that cannot be
 * tracked and counts as a gap at once.
 *
 * Single-threaded: the feed thread owns its Sequence.
 */
#include "hc_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS (SEQ_WINDOW / 64)

static bool
bit_get(const Sequence *s, uint64_t n)
{
	uint64_t	i = n % SEQ_WINDOW;

	return (s->seen[i / 64] >> (i % 64)) & 1;
}

static void
bit_set(Sequence *s, uint64_t n, bool on)
{
	uint64_t	i = n % SEQ_WINDOW;

	if (on)
		s->seen[i / 64] |= (uint64_t) 1 << (i % 64);
	else
		s->seen[i / 64] &= ~((uint64_t) 1 << (i % 64));
}

void
seq_init(Sequence *s)
{
	memset(s, 0, sizeof(*s));
	s->seen = xcalloc(WORDS, sizeof(uint64_t));
}

void
seq_free(Sequence *s)
{
	free(s->seen);
	s->seen = NULL;
}

void
seq_forget(Sequence *s)
{
	s->known = false;
	s->gap_since = 0;
}

/* Count from `base` on: everything up to it is done. */
static void
adopt(Sequence *s, const char *epoch, uint64_t base)
{
	snprintf(s->epoch, sizeof(s->epoch), "%s", epoch);
	s->known = true;
	s->done = s->promised = base;
	s->gap_since = 0;
	memset(s->seen, 0, WORDS * sizeof(uint64_t));
}

/* Give up on the missing numbers: every one up to `promised` is done. */
static void
give_up(Sequence *s)
{
	s->done = s->promised;
	s->gap_since = 0;
	memset(s->seen, 0, WORDS * sizeof(uint64_t));
}

/* After `done` or `promised` moved: is there a gap, and since when. */
static void
note_gap(Sequence *s, bool advanced, double now)
{
	if (s->promised <= s->done)
		s->gap_since = 0;
	else if (s->gap_since == 0 || advanced)
		s->gap_since = now;
}

SeqVerdict
seq_message(Sequence *s, const char *epoch, uint64_t n, double now)
{
	SeqVerdict	v = SEQ_IN_ORDER;
	bool		advanced = false;

	if (!s->known)
	{
		adopt(s, epoch, n > 0 ? n - 1 : 0);
		v = SEQ_FIRST;
	}
	else if (strcmp(s->epoch, epoch) != 0)
	{
		adopt(s, epoch, n > 0 ? n - 1 : 0);
		v = SEQ_NEW_EPOCH;
	}
	if (n <= s->done)
		return v;				/* late (after a reset) or a duplicate */
	if (n - s->done > SEQ_WINDOW)
	{
		/* too far ahead to track what lies between: a gap at once */
		adopt(s, epoch, n);
		return SEQ_TOO_FAR;
	}
	bit_set(s, n, true);
	if (n > s->promised)
		s->promised = n;
	while (s->done < s->promised && bit_get(s, s->done + 1))
	{
		bit_set(s, s->done + 1, false);
		s->done++;
		advanced = true;
	}
	note_gap(s, advanced, now);
	return v;
}

SeqVerdict
seq_heartbeat(Sequence *s, const char *epoch, uint64_t n, double now)
{
	if (!s->known)
	{
		adopt(s, epoch, n);
		return SEQ_FIRST;
	}
	if (strcmp(s->epoch, epoch) != 0)
	{
		adopt(s, epoch, n);
		return SEQ_NEW_EPOCH;
	}
	if (n <= s->promised)
		return SEQ_IN_ORDER;
	if (n - s->done > SEQ_WINDOW)
	{
		adopt(s, epoch, n);
		return SEQ_TOO_FAR;
	}
	s->promised = n;
	note_gap(s, false, now);
	return SEQ_IN_ORDER;
}

bool
seq_expired(Sequence *s, double now, double window_s)
{
	if (s->gap_since == 0 || now - s->gap_since < window_s)
		return false;
	give_up(s);
	return true;
}

double
seq_deadline(const Sequence *s, double window_s)
{
	return s->gap_since == 0 ? 0 : s->gap_since + window_s;
}
