# Committed writes invalidate, rolled-back ones do not: an UPDATE committed
# in one session is seen by the very next call of another, a ROLLBACK leaves
# the cached answers in place, TRUNCATE and COPY invalidate.
#
# Run twice: on a node without L1, where cached answers come from Redis
# ('l2'), and on a node with L1, where they come from shared memory ('l1').
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;

# Ten listings: ids 1-5 in Boston, 6-10 in Denver; nothing depends on now().
my $listings_sql = ten_listings_sql();

# One cached call, in a BackgroundPsql session: the answer (decoded; undef
# for SQL NULL), the tier and the bypass reason from last_lookup().
sub fetch
{
	my ($session, $call) = @_;
	return cached_call(sub { $session->query_safe($_[0]) }, $call);
}

sub item
{
	my ($answer, $id) = @_;
	my @found = grep { $_->{id} == $id } @{ $answer->{items} };
	return $found[0];
}

sub scenario
{
	my ($cached, $conf) = @_;
	my $node = new_node("inval_$cached", redis => $redis, conf => $conf);
	my $n = $node->name;
	$node->safe_psql('postgres', $listings_sql);

	my $reader = $node->background_psql('postgres');
	my $writer = $node->background_psql('postgres');

	# --- fill ---------------------------------------------------------------
	my @watched = (
		"housing_cache.get_listing(1)",
		"housing_cache.search_listings('Boston')",
		"housing_cache.search_listings()",
		"housing_cache.search_listings('Boston', max_price_cents => 100000000)",
		"housing_cache.city_stats('Boston')");
	for my $call (@watched)
	{
		is(fetch($reader, $call)->{tier}, 'miss', "$n: $call: first call runs the query");
		is(fetch($reader, $call)->{tier}, $cached, "$n: $call: second call is cached");
	}

	# --- an UPDATE in another session ----------------------------------------
	my $commits0 = stat($node, 'invalidated_commits');
	$writer->query_safe("BEGIN; UPDATE housing.listings SET price_cents = 99900000 WHERE id = 1;");

	# Before the commit: the reader still gets the old, cached answer; the
	# writer sees its own write, without the cache.
	my $r = fetch($reader, "housing_cache.get_listing(1)");
	is($r->{tier}, $cached, "$n: before the writer commits, the reader is served from the cache");
	is($r->{json}{price_cents}, 31000000, "$n: ... the old price");
	$r = fetch($writer, "housing_cache.get_listing(1)");
	is($r->{tier}, 'bypass', "$n: the writer's own read bypasses the cache");
	is($r->{reason}, 'own writes', "$n: ... because of its own writes");
	is($r->{json}{price_cents}, 99900000, "$n: ... and sees its uncommitted price");

	$writer->query_safe("COMMIT;");
	is(stat($node, 'invalidated_commits'), $commits0 + 1, "$n: the commit counted as an invalidating commit");

	$r = fetch($reader, "housing_cache.get_listing(1)");
	is($r->{tier}, 'miss', "$n: get_listing(1) right after the commit runs the query");
	is($r->{json}{price_cents}, 99900000, "$n: ... and shows the new price");
	# The newest-first searches read no price (no price filter given): their
	# id lists stay cached, and listing 1's card is computed again.
	# (the second shares the card the first computed).
	my $fills = 1;
	for my $call ("housing_cache.search_listings('Boston')", "housing_cache.search_listings()")
	{
		$r = fetch($reader, $call);
		is($r->{tier}, $cached, "$n: $call right after the commit: its id list is still cached");
		is($r->{fragment_fills}, $fills, "$n: ... and $fills card(s) computed");
		is(item($r->{json}, 1)->{price_cents}, 99900000, "$n: ... and it shows the new price");
		$fills = 0;
	}
	$r = fetch($reader, "housing_cache.search_listings('Boston', max_price_cents => 100000000)");
	is($r->{tier}, 'miss', "$n: a Boston search filtering on price right after the commit runs the query");
	is(item($r->{json}, 1)->{price_cents}, 99900000, "$n: ... and shows the new price");
	$r = fetch($reader, "housing_cache.city_stats('Boston')");
	is($r->{tier}, 'miss', "$n: Boston stats right after the commit run the query");
	# Boston prices: 31..35 million, listing 1 now 99.9 million
	is($r->{json}{avg_price_cents}, (99900000 + 32000000 + 33000000 + 34000000 + 35000000) / 5,
		"$n: ... and show the new average");

	for my $call (@watched)
	{
		is(fetch($reader, $call)->{tier}, $cached, "$n: $call: cached again");
	}
	is(fetch($reader, "housing_cache.get_listing(1)")->{json}{price_cents}, 99900000,
		"$n: the re-cached listing has the new price");

	# --- ROLLBACK invalidates nothing ------------------------------------------
	my $inval0 = stat($node, 'invalidations');
	$commits0 = stat($node, 'invalidated_commits');
	$writer->query_safe(q{
BEGIN;
UPDATE housing.listings SET price_cents = 1 WHERE id = 1;
DELETE FROM housing.listings WHERE id = 2;
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms,
    bathrooms, area_sqm, lat, lon)
VALUES (50, 'Never', 'Boston', 'Center', 1, 1, 1, 10, 0, 0);
ROLLBACK;});

	# An error makes COMMIT a rollback, too.
	my ($ret, $out, $err) = $node->psql('postgres', q{
BEGIN;
UPDATE housing.listings SET price_cents = 2 WHERE id = 1;
SELECT 1 / 0;
COMMIT;});
	isnt($ret, 0, "$n: the failing transaction failed");

	is(stat($node, 'invalidations'), $inval0, "$n: rolled-back transactions invalidated no tag");
	is(stat($node, 'invalidated_commits'), $commits0, "$n: ... and counted no commit");

	$r = fetch($reader, "housing_cache.get_listing(1)");
	is($r->{tier}, $cached, "$n: after the rollbacks, get_listing(1) is still cached");
	is($r->{json}{price_cents}, 99900000, "$n: ... with the committed price");
	$r = fetch($reader, "housing_cache.search_listings('Boston')");
	is($r->{tier}, $cached, "$n: after the rollbacks, the Boston search is still cached");
	is($r->{json}{total}, 5, "$n: ... with 5 listings");
	ok(defined item($r->{json}, 2), "$n: ... including listing 2");
	ok(!defined item($r->{json}, 50), "$n: ... and not the rolled-back listing 50");
	$r = fetch($reader, "housing_cache.city_stats('Boston')");
	is($r->{tier}, $cached, "$n: after the rollbacks, the Boston stats are still cached");

	# --- TRUNCATE ----------------------------------------------------------------
	is(fetch($reader, "housing_cache.get_listing(101)")->{tier}, 'miss',
		"$n: get_listing(101), absent, runs the query");
	$r = fetch($reader, "housing_cache.get_listing(101)");
	is($r->{tier}, $cached, "$n: ... and its NULL answer is cached");
	ok(!defined $r->{json}, "$n: ... as NULL");

	$writer->query_safe("TRUNCATE housing.listings;");

	$r = fetch($reader, "housing_cache.search_listings('Boston')");
	is($r->{tier}, 'miss', "$n: after TRUNCATE, the Boston search runs the query");
	is($r->{json}{total}, 0, "$n: ... and finds nothing");
	is_deeply($r->{json}{items}, [], "$n: ... no items");
	$r = fetch($reader, "housing_cache.search_listings()");
	is($r->{tier}, 'miss', "$n: after TRUNCATE, the unfiltered search runs the query");
	is($r->{json}{total}, 0, "$n: ... and finds nothing");
	$r = fetch($reader, "housing_cache.get_listing(1)");
	is($r->{tier}, 'miss', "$n: after TRUNCATE, get_listing(1) runs the query");
	ok(!defined $r->{json}, "$n: ... and finds no listing");
	$r = fetch($reader, "housing_cache.city_stats('Boston')");
	is($r->{tier}, 'miss', "$n: after TRUNCATE, the Boston stats run the query");
	is($r->{json}{active_count}, 0, "$n: ... and count nothing");
	is(fetch($reader, "housing_cache.search_listings('Boston')")->{tier}, $cached,
		"$n: the empty Boston search is cached again");

	# --- COPY ----------------------------------------------------------------------
	# Through psql, as a client loads data: COPY ... FROM STDIN, data inline.
	$node->safe_psql('postgres',
		"COPY housing.listings (id, title, city, neighborhood, price_cents, bedrooms, "
		  . "bathrooms, area_sqm, lat, lon, created_at) FROM STDIN;\n"
		  . "101\tCopied loft\tBoston\tSouth End\t45000000\t2\t1.0\t70\t42.34\t-71.07\t2024-02-01 00:00:00+00\n"
		  . "102\tCopied house\tDenver\tHighland\t55000000\t3\t2.0\t120\t39.76\t-105.01\t2024-02-02 00:00:00+00\n"
		  . "\\.\n");

	$r = fetch($reader, "housing_cache.get_listing(101)");
	is($r->{tier}, 'miss', "$n: after COPY, get_listing(101) runs the query");
	is($r->{json}{title}, 'Copied loft', "$n: ... and finds the copied listing");
	$r = fetch($reader, "housing_cache.search_listings('Boston')");
	is($r->{tier}, 'miss', "$n: after COPY, the Boston search runs the query");
	is($r->{json}{total}, 1, "$n: ... and finds one listing");
	is($r->{json}{items}[0]{id}, 101, "$n: ... the copied one");
	$r = fetch($reader, "housing_cache.search_listings()");
	is($r->{tier}, 'miss', "$n: after COPY, the unfiltered search runs the query");
	is($r->{json}{total}, 2, "$n: ... and finds both copied listings");
	$r = fetch($reader, "housing_cache.city_stats('Boston')");
	is($r->{json}{active_count}, 1, "$n: after COPY, the Boston stats count the copied listing");

	$reader->quit;
	$writer->quit;
	$node->stop;
}

scenario('l2', 'housing_cache.l1_size_mb = 0');
scenario('l1', '');

$redis->stop;

done_testing();
