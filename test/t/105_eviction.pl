# L1 eviction is scan-resistant: with a small L1 (1 MB, about a thousand
# small answers), a hot set of 20 keys read over and over stays in L1 while
# a stream of thousands of one-off keys passes through and is evicted.
#
# At the end Redis is stopped, so that L1 is the only cache left: at least
# 90% of the hot keys must still be served from 'l1', while the early
# one-off keys must be gone from it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $hot = 20;
my $rounds = 60;
my $per_round = 50;    # one-off keys between two reads of the hot set
my $oneoffs = $rounds * $per_round;

my $redis = HousingCache::Redis->new;
my $node = new_node('eviction',
	redis => $redis,
	conf => "housing_cache.l1_size_mb = 1\n"
	  . "housing_cache.breaker_backoff_ms = 60000\n"
	  . "housing_cache.breaker_max_backoff_ms = 60000");

# Keys 1..$hot are hot; keys above 1000 are one-off.
$node->safe_psql('postgres', qq{
CREATE SCHEMA ev;
CREATE TABLE ev.items (id int PRIMARY KEY, label text NOT NULL);
INSERT INTO ev.items SELECT i, 'item ' || i || ' ' || repeat('x', 100) FROM generate_series(1, 1000 + $oneoffs) AS i;
SELECT housing_cache.watch_table('ev.items');
SELECT housing_cache.register_query('ev.item',
  \$q\$SELECT json_build_object('id', id, 'label', label) FROM ev.items WHERE id = \$1\$q\$,
  '{int}', '{ev.items/id=\$1}');

-- Read keys and say how each was served, checking every answer.
CREATE FUNCTION ev.read(ids int[]) RETURNS TABLE (id int, tier text)
LANGUAGE plpgsql AS \$f\$
DECLARE
    k int;
    answer json;
BEGIN
    FOREACH k IN ARRAY ids LOOP
        answer := housing_cache.fetch('ev.item', k::text);
        IF (answer->>'id')::int IS DISTINCT FROM k
           OR answer->>'label' IS DISTINCT FROM (SELECT i.label FROM ev.items i WHERE i.id = k) THEN
            RAISE EXCEPTION 'wrong answer for key %: %', k, answer;
        END IF;
        id := k;
        tier := (housing_cache.last_lookup()).tier;
        RETURN NEXT;
    END LOOP;
END
\$f\$;
});

# The workload, in one session: each round reads the hot set once, then
# $per_round keys never read before.  Returns how the hot reads of the last
# ten rounds were served.
my $tiers = $node->safe_psql('postgres', qq{
CREATE TEMP TABLE hot_tiers (round int, tier text);
DO \$d\$
DECLARE
    next_oneoff int := 1001;
BEGIN
    FOR round IN 1 .. $rounds LOOP
        INSERT INTO hot_tiers
            SELECT round, r.tier FROM ev.read(ARRAY(SELECT generate_series(1, $hot))) AS r;
        PERFORM count(*) FROM ev.read(ARRAY(SELECT generate_series(next_oneoff, next_oneoff + $per_round - 1)));
        next_oneoff := next_oneoff + $per_round;
    END LOOP;
END
\$d\$;
SELECT string_agg(tier || ':' || n, ' ' ORDER BY tier)
  FROM (SELECT tier, count(*) AS n FROM hot_tiers WHERE round > $rounds - 10 GROUP BY tier) AS t;
});
note "hot reads in the last ten rounds: $tiers";
my %by_tier = map { split /:/ } split / /, $tiers;
my $hot_reads = 0;
$hot_reads += $_ for values %by_tier;
is($hot_reads, 10 * $hot, 'the hot set was read in each of the last ten rounds');
cmp_ok($by_tier{l1} // 0, '>=', 0.9 * $hot_reads,
	"while the stream passed, hot keys were served from L1 ($tiers)");

my $evictions = stat($node, 'l1_evictions');
cmp_ok($evictions, '>', 0, "L1 evicted answers ($evictions evictions)");
cmp_ok(stat($node, 'l1_stores'), '>=', $oneoffs, 'every one-off answer was stored in L1 once');

# L1 is the only cache from now on.
$redis->stop;

# The hot set: still in L1.
my $hot_l1 = $node->safe_psql('postgres',
	"SELECT count(*) FILTER (WHERE tier = 'l1') FROM ev.read(ARRAY(SELECT generate_series(1, $hot)))");
cmp_ok($hot_l1, '>=', 0.9 * $hot,
	"after $oneoffs one-off keys, $hot_l1 of $hot hot keys are still served from L1");

# The first one-off keys: evicted long ago (read after the hot set, as these
# reads fill L1 again).
my $early = 200;
my $early_l1 = $node->safe_psql('postgres',
	"SELECT count(*) FILTER (WHERE tier = 'l1') FROM ev.read(ARRAY(SELECT 1000 + generate_series(1, $early)))");
cmp_ok($early_l1, '<', 0.1 * $early,
	"of the first $early one-off keys, $early_l1 are still in L1 (the L1 really is small)");

diag("L1 of 1 MB: $evictions evictions; hot keys still in L1: $hot_l1/$hot; "
	  . "early one-off keys still in L1: $early_l1/$early");

$node->stop;

done_testing();
