/*-------------------------------------------------------------------------
 *
 * sequence.c
 *	  The seqs of one epoch: which have arrived, which are missing, and
 *	  since when each missing one is known to be missing.
 *
 * Every seq up to "base" is accounted for.  Seqs above it that arrived are
 * bits of a ring of SEQ_WINDOW; "max_seen" is the greatest seq that
 * arrived or that a heartbeat said was given.  A seq between base and
 * max_seen that has not arrived is missing since max_seen first passed it:
 * each time max_seen jumps, a notice (hi, since) records that the seqs up
 * to hi are missing since now.  Notices are in increasing order of both,
 * so the first one whose hi is at least base + 1 says since when the
 * oldest missing seq is missing: the reorder window runs from there.
 *
 * A seq more than SEQ_WINDOW above the base cannot be tracked: SEQ_FAR,
 * and the caller purges everything and rebases.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "purger.h"

#define BIT(n)	((size_t) ((n) % SEQ_WINDOW))

static bool
bit_get(const Sequence *s, uint64_t n)
{
	return (s->bits[BIT(n) / 8] >> (BIT(n) % 8)) & 1;
}

static void
bit_set(Sequence *s, uint64_t n, bool on)
{
	if (on)
		s->bits[BIT(n) / 8] |= (uint8_t) (1 << (BIT(n) % 8));
	else
		s->bits[BIT(n) / 8] &= (uint8_t) ~(1 << (BIT(n) % 8));
}

void
seq_init(Sequence *s)
{
	memset(s, 0, sizeof(*s));
	s->bits = xcalloc(SEQ_WINDOW / 8, 1);
	s->notices = xcalloc(SEQ_WINDOW, sizeof(SeqNotice));
}

void
seq_free(Sequence *s)
{
	free(s->bits);
	free(s->notices);
	memset(s, 0, sizeof(*s));
}

/* Every seq up to base is accounted for; nothing above it is known. */
void
seq_rebase(Sequence *s, uint64_t base)
{
	memset(s->bits, 0, SEQ_WINDOW / 8);
	s->base = base;
	s->max_seen = base;
	s->nhead = 0;
	s->ncount = 0;
}

static void
notice_push(Sequence *s, uint64_t hi, hc_ms now, bool heartbeat)
{
	/*
	 * At most one notice per missing seq, and at most SEQ_WINDOW are
	 * missing; a full ring (not reachable) drops the newest, whose since
	 * then counts from the last one kept: earlier, so never late.
	 */
	if (s->ncount == SEQ_WINDOW)
	{
		s->notices[(s->nhead + s->ncount - 1) % SEQ_WINDOW].hi = hi;
		return;
	}
	s->notices[(s->nhead + s->ncount) % SEQ_WINDOW] = (SeqNotice) {hi, now, heartbeat};
	s->ncount++;
}

/* Move the base past every seq that arrived, and forget notices below it. */
static void
advance(Sequence *s)
{
	while (s->base < s->max_seen && bit_get(s, s->base + 1))
	{
		bit_set(s, s->base + 1, false);
		s->base++;
	}
	while (s->ncount > 0 && s->notices[s->nhead].hi <= s->base)
	{
		s->nhead = (s->nhead + 1) % SEQ_WINDOW;
		s->ncount--;
	}
}

/* A message's seq arrived. */
SeqResult
seq_add(Sequence *s, uint64_t n, hc_ms now)
{
	if (n <= s->base)
		return SEQ_OLD;
	if (n - s->base > SEQ_WINDOW)
		return SEQ_FAR;
	if (n <= s->max_seen && bit_get(s, n))
		return SEQ_OLD;
	bit_set(s, n, true);
	if (n > s->max_seen)
	{
		if (n > s->max_seen + 1)
			notice_push(s, n - 1, now, false);
		s->max_seen = n;
	}
	advance(s);
	return SEQ_NEW;
}

/* A heartbeat: every seq up to n has been given. */
SeqResult
seq_announce(Sequence *s, uint64_t n, hc_ms now)
{
	if (n <= s->max_seen)
		return SEQ_OLD;
	if (n - s->base > SEQ_WINDOW)
		return SEQ_FAR;
	notice_push(s, n, now, true);
	s->max_seen = n;
	return SEQ_NEW;
}

/*
 * Is a seq missing?  Then the first one, since when it is missing, and
 * whether a heartbeat (rather than a later message) revealed it.
 */
bool
seq_gap(const Sequence *s, uint64_t *first_missing, hc_ms *since, bool *from_heartbeat)
{
	const SeqNotice *n;

	if (s->base >= s->max_seen || s->ncount == 0)
		return false;
	n = &s->notices[s->nhead];
	if (first_missing)
		*first_missing = s->base + 1;
	if (since)
		*since = n->since;
	if (from_heartbeat)
		*from_heartbeat = n->heartbeat;
	return true;
}
