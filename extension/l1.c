/*-------------------------------------------------------------------------
 *
 * l1.c
 *	  L1: whole answers in shared memory, shared by every backend.
 *
 * Keyed exactly like L2 (the 128-bit key digest), so a generation bump makes
 * old entries unreachable here too; they are reclaimed by eviction.
 *
 * Layout: HC_L1_PARTITIONS partitions, each with its own LWLock, hash index,
 * entry array and pool of fixed-size chunks.  A value occupies a chain of
 * chunks, so values of any size up to l1_max_value_bytes share one pool
 * without fragmentation.
 *
 * Eviction is CLOCK: a hit sets the entry's reference bit (an atomic, so
 * readers only need the shared lock); the hand clears set bits and evicts
 * the first entry whose bit is clear.  New entries start with a clear bit,
 * so a stream of one-off answers evicts itself and leaves the hot set,
 * whose bits hits keep setting, resident.
 *
 * Locking: a lookup holds its partition's lock in shared mode while it
 * copies the value out; a store holds it exclusively while it evicts and
 * copies the value in.  Both copies are bounded by l1_max_value_bytes.  No
 * Redis or SPI call happens under these locks, and an error while one is
 * held (only out-of-memory in palloc) releases it through LWLockReleaseAll.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "housing_cache.h"

#define HC_L1_PARTITIONS	16
#define HC_L1_CHUNK			1024

typedef struct HcL1Entry
{
	uint8		digest[HC_DIGEST_LEN];
	int32		next;			/* bucket chain, or free list; -1 ends */
	int32		chunk;			/* first chunk of the value; -1 if none */
	uint32		len;
	bool		used;
	bool		isnull;
	pg_atomic_uint32 ref;		/* CLOCK reference bit */
	TimestampTz created_at;
	uint32		compute_us;
	uint32		ttl_ms;
} HcL1Entry;

typedef struct HcL1Partition
{
	LWLock	   *lock;
	int32		nentries;
	int32		nbuckets;		/* power of two */
	int32		nchunks;
	int32		free_entry;
	int32		free_chunk;
	int32		nfree_chunks;
	int32		hand;
	Size		buckets_off;	/* int32[nbuckets] */
	Size		entries_off;	/* HcL1Entry[nentries] */
	Size		chunk_next_off; /* int32[nchunks] */
	Size		chunks_off;		/* char[nchunks][HC_L1_CHUNK] */
} HcL1Partition;

static HcL1Partition *l1_parts[HC_L1_PARTITIONS];
static Size l1_part_size = 0;

#define BUCKETS(p)		((int32 *) ((char *) (p) + (p)->buckets_off))
#define ENTRIES(p)		((HcL1Entry *) ((char *) (p) + (p)->entries_off))
#define CHUNK_NEXT(p)	((int32 *) ((char *) (p) + (p)->chunk_next_off))
#define CHUNK(p, i)		((char *) (p) + (p)->chunks_off + (Size) (i) * HC_L1_CHUNK)

/* bytes a chunk costs with its share of entries and buckets */
#define COST_PER_CHUNK	(HC_L1_CHUNK + sizeof(int32) + sizeof(HcL1Entry) + 2 * sizeof(int32))

static int32
part_chunks(void)
{
	return (int32) ((((Size) hc_l1_size_mb) * 1024 * 1024 / HC_L1_PARTITIONS) / COST_PER_CHUNK);
}

Size
HcL1ShmemSize(void)
{
	int32		nchunks;
	int32		nbuckets = 1;

	if (hc_l1_size_mb <= 0)
		return 0;
	nchunks = part_chunks();
	while (nbuckets < nchunks)
		nbuckets <<= 1;
	l1_part_size = MAXALIGN(sizeof(HcL1Partition)) +
		MAXALIGN(sizeof(int32) * nbuckets) +
		MAXALIGN(sizeof(HcL1Entry) * nchunks) +
		MAXALIGN(sizeof(int32) * nchunks) +
		MAXALIGN((Size) HC_L1_CHUNK * nchunks);
	return mul_size(l1_part_size, HC_L1_PARTITIONS);
}

int
HcL1LockCount(void)
{
	return hc_l1_size_mb > 0 ? HC_L1_PARTITIONS : 0;
}

/*
 * Attach to (and, if found is false, initialize) the partitions in base.
 */
void
HcL1ShmemInit(char *base, bool found, LWLockPadded *locks)
{
	if (hc_l1_size_mb <= 0)
		return;
	(void) HcL1ShmemSize();		/* sets l1_part_size in this process */
	for (int i = 0; i < HC_L1_PARTITIONS; i++)
	{
		HcL1Partition *p = (HcL1Partition *) (base + i * l1_part_size);

		l1_parts[i] = p;
		if (found)
			continue;

		p->lock = &locks[i].lock;
		p->nchunks = part_chunks();
		p->nentries = p->nchunks;
		p->nbuckets = 1;
		while (p->nbuckets < p->nchunks)
			p->nbuckets <<= 1;
		p->buckets_off = MAXALIGN(sizeof(HcL1Partition));
		p->entries_off = p->buckets_off + MAXALIGN(sizeof(int32) * p->nbuckets);
		p->chunk_next_off = p->entries_off + MAXALIGN(sizeof(HcL1Entry) * p->nentries);
		p->chunks_off = p->chunk_next_off + MAXALIGN(sizeof(int32) * p->nchunks);

		for (int b = 0; b < p->nbuckets; b++)
			BUCKETS(p)[b] = -1;
		for (int e = 0; e < p->nentries; e++)
		{
			HcL1Entry  *entry = &ENTRIES(p)[e];

			memset(entry, 0, sizeof(*entry));
			entry->next = (e + 1 < p->nentries) ? e + 1 : -1;
			entry->chunk = -1;
			pg_atomic_init_u32(&entry->ref, 0);
		}
		for (int c = 0; c < p->nchunks; c++)
			CHUNK_NEXT(p)[c] = (c + 1 < p->nchunks) ? c + 1 : -1;
		p->free_entry = p->nentries > 0 ? 0 : -1;
		p->free_chunk = p->nchunks > 0 ? 0 : -1;
		p->nfree_chunks = p->nchunks;
		p->hand = 0;
	}
}

static inline uint32
digest_word(const uint8 *digest, int at)
{
	uint32		w;

	memcpy(&w, digest + at, sizeof(w));
	return w;
}

static inline HcL1Partition *
partition_of(const uint8 *digest)
{
	return l1_parts[digest_word(digest, 0) % HC_L1_PARTITIONS];
}

static inline int32 *
bucket_of(HcL1Partition *p, const uint8 *digest)
{
	return &BUCKETS(p)[digest_word(digest, 4) & (p->nbuckets - 1)];
}

static int32
find_entry(HcL1Partition *p, const uint8 *digest)
{
	for (int32 e = *bucket_of(p, digest); e >= 0; e = ENTRIES(p)[e].next)
	{
		if (memcmp(ENTRIES(p)[e].digest, digest, HC_DIGEST_LEN) == 0)
			return e;
	}
	return -1;
}

/*
 * Look an answer up.  On a hit, *value gets a palloc'd copy.
 */
bool
HcL1Get(const uint8 *digest, HcValue *value)
{
	HcL1Partition *p;
	int32		e;
	HcL1Entry  *entry;
	uint32		done = 0;

	if (hc_l1_size_mb <= 0 || l1_parts[0] == NULL)
		return false;
	p = partition_of(digest);

	LWLockAcquire(p->lock, LW_SHARED);
	e = find_entry(p, digest);
	if (e < 0)
	{
		LWLockRelease(p->lock);
		return false;
	}
	entry = &ENTRIES(p)[e];
	value->isnull = entry->isnull;
	value->len = entry->len;
	value->created_at = entry->created_at;
	value->compute_us = entry->compute_us;
	value->ttl_ms = entry->ttl_ms;
	value->data = NULL;
	value->varlena = NULL;
	if (!entry->isnull)
		HcValueAllocate(value, entry->len);
	for (int32 c = entry->chunk; c >= 0 && done < entry->len; c = CHUNK_NEXT(p)[c])
	{
		uint32		n = Min(entry->len - done, HC_L1_CHUNK);

		memcpy(value->data + done, CHUNK(p, c), n);
		done += n;
	}
	pg_atomic_write_u32(&entry->ref, 1);
	LWLockRelease(p->lock);
	return true;
}

/*
 * Look an answer up without copying it: its metadata only.
 */
bool
HcL1Peek(const uint8 *digest, HcValue *value)
{
	HcL1Partition *p;
	int32		e;

	if (hc_l1_size_mb <= 0 || l1_parts[0] == NULL)
		return false;
	p = partition_of(digest);
	LWLockAcquire(p->lock, LW_SHARED);
	e = find_entry(p, digest);
	if (e >= 0)
	{
		HcL1Entry  *entry = &ENTRIES(p)[e];

		value->isnull = entry->isnull;
		value->len = entry->len;
		value->data = NULL;
		value->varlena = NULL;
		value->created_at = entry->created_at;
		value->compute_us = entry->compute_us;
		value->ttl_ms = entry->ttl_ms;
	}
	LWLockRelease(p->lock);
	return e >= 0;
}

/* unlink entry e from its bucket and return it and its chunks to the pools */
static void
free_entry(HcL1Partition *p, int32 e)
{
	HcL1Entry  *entry = &ENTRIES(p)[e];
	int32	   *link = bucket_of(p, entry->digest);
	int32		c;

	while (*link != e)
		link = &ENTRIES(p)[*link].next;
	*link = entry->next;

	c = entry->chunk;
	while (c >= 0)
	{
		int32		next = CHUNK_NEXT(p)[c];

		CHUNK_NEXT(p)[c] = p->free_chunk;
		p->free_chunk = c;
		p->nfree_chunks++;
		c = next;
	}
	entry->used = false;
	entry->chunk = -1;
	entry->next = p->free_entry;
	p->free_entry = e;
}

/*
 * CLOCK: evict until a free entry and nchunks free chunks exist.  Gives up
 * after two sweeps (everything referenced twice over is unlikely; the store
 * is then skipped).
 */
static bool
make_room(HcL1Partition *p, int32 nchunks)
{
	int64		steps = 0;
	int64		limit = 2 * (int64) p->nentries + 1;

	while ((p->free_entry < 0 || p->nfree_chunks < nchunks) && steps++ < limit)
	{
		HcL1Entry  *entry = &ENTRIES(p)[p->hand];
		int32		victim = p->hand;

		p->hand = (p->hand + 1) % p->nentries;
		if (!entry->used)
			continue;
		if (pg_atomic_read_u32(&entry->ref) != 0)
		{
			pg_atomic_write_u32(&entry->ref, 0);
			continue;
		}
		free_entry(p, victim);
		HcStatInc(HC_STAT_L1_EVICTIONS);
	}
	return p->free_entry >= 0 && p->nfree_chunks >= nchunks;
}

/*
 * Store an answer, replacing any entry with the same key; returns whether it
 * was stored.  Answers larger than l1_max_value_bytes, or than a quarter of a
 * partition, are not.
 */
bool
HcL1Put(const uint8 *digest, const HcValue *value)
{
	HcL1Partition *p;
	uint32		len = value->isnull ? 0 : value->len;
	int32		need;
	int32		e;
	HcL1Entry  *entry;
	int32		prev = -1;
	uint32		done = 0;

	if (hc_l1_size_mb <= 0 || l1_parts[0] == NULL)
		return false;
	if (len > (uint32) hc_l1_max_value_bytes)
		return false;
	p = partition_of(digest);
	need = (int32) ((len + HC_L1_CHUNK - 1) / HC_L1_CHUNK);
	if (need > p->nchunks / 4)
		return false;

	LWLockAcquire(p->lock, LW_EXCLUSIVE);
	e = find_entry(p, digest);
	if (e >= 0)
		free_entry(p, e);
	if (!make_room(p, need))
	{
		LWLockRelease(p->lock);
		return false;
	}

	e = p->free_entry;
	entry = &ENTRIES(p)[e];
	p->free_entry = entry->next;

	memcpy(entry->digest, digest, HC_DIGEST_LEN);
	entry->used = true;
	entry->isnull = value->isnull;
	entry->len = len;
	entry->created_at = value->created_at;
	entry->compute_us = value->compute_us;
	entry->ttl_ms = value->ttl_ms;
	entry->chunk = -1;
	pg_atomic_write_u32(&entry->ref, 0);

	for (int32 i = 0; i < need; i++)
	{
		int32		c = p->free_chunk;
		uint32		n = Min(len - done, HC_L1_CHUNK);

		p->free_chunk = CHUNK_NEXT(p)[c];
		p->nfree_chunks--;
		CHUNK_NEXT(p)[c] = -1;
		memcpy(CHUNK(p, c), value->data + done, n);
		done += n;
		if (prev < 0)
			entry->chunk = c;
		else
			CHUNK_NEXT(p)[prev] = c;
		prev = c;
	}

	entry->next = *bucket_of(p, digest);
	*bucket_of(p, digest) = e;
	LWLockRelease(p->lock);
	HcStatInc(HC_STAT_L1_STORES);
	return true;
}
