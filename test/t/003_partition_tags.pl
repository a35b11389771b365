# Invalidation is as narrow as the tags: a write in Boston leaves Denver's
# answers cached, a write to one listing leaves other listings' pages cached,
# and a listing moved from Boston to Denver refreshes both cities and its page.
#
# Tags share generation slots when they hash alike, which would only
# over-invalidate; the few pairs of tags relied on here are fixed (same
# database, same tags every run), so such a collision could not come and go.
#
# Run twice: without L1 (cached answers come from Redis, 'l2') and with L1
# ('l1').
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

sub ids
{
	my ($answer) = @_;
	return [ sort { $a <=> $b } map { $_->{id} } @{ $answer->{items} } ];
}

my %call = (
	boston => "housing_cache.search_listings('Boston')",
	denver => "housing_cache.search_listings('Denver')",
	boston_cheap => "housing_cache.search_listings('Boston', sort => 'price_asc', page_size => 2)",
	boston_stats => "housing_cache.city_stats('Boston')",
	denver_stats => "housing_cache.city_stats('Denver')",
	listing1 => "housing_cache.get_listing(1)",
	listing3 => "housing_cache.get_listing(3)",
	listing6 => "housing_cache.get_listing(6)",);

sub scenario
{
	my ($cached, $conf) = @_;
	my $node = new_node("tags_$cached", redis => $redis, conf => $conf);
	my $n = $node->name;
	$node->safe_psql('postgres', $listings_sql);
	my $s = $node->background_psql('postgres');

	my $expect = sub {
		my ($what, $tier, $label) = @_;
		my $r = fetch($s, $call{$what});
		is($r->{tier}, $tier, "$n: $label: $what is " . ($tier eq 'miss' ? 'recomputed' : 'still cached'));
		return $r->{json};
	};

	for my $what (sort keys %call)
	{
		is(fetch($s, $call{$what})->{tier}, 'miss', "$n: $what: first call runs the query");
		is(fetch($s, $call{$what})->{tier}, $cached, "$n: $what: second call is cached");
	}

	# --- a write in Boston: listing 2's price --------------------------------
	$node->safe_psql('postgres',
		'UPDATE housing.listings SET price_cents = 12000000 WHERE id = 2');
	my $label = 'after a Boston write';

	my $j = $expect->('denver', $cached, $label);
	is($j->{total}, 5, "$n: $label: Denver still has 5 listings");
	$expect->('denver_stats', $cached, $label);
	$j = $expect->('listing6', $cached, $label);
	is($j->{price_cents}, 36000000, "$n: $label: listing 6 keeps its price");
	$j = $expect->('listing1', $cached, $label);
	is($j->{price_cents}, 31000000, "$n: $label: listing 1 (another Boston row) keeps its price");

	# the newest-first search filters on no price: its id list stays, one card is computed
	{
		my $r = fetch($s, $call{boston});
		is($r->{tier}, $cached, "$n: $label: the Boston search's id list is still cached (it reads no price)");
		is($r->{fragment_fills}, 1, "$n: $label: ... and listing 2's card is computed");
		my ($two) = grep { $_->{id} == 2 } @{ $r->{json}{items} };
		is($two->{price_cents}, 12000000, "$n: $label: the Boston search shows listing 2's new price");
	}
	$j = $expect->('boston_cheap', 'miss', $label);
	is($j->{items}[0]{id}, 2, "$n: $label: the cheapest Boston listing is now listing 2");
	$j = $expect->('boston_stats', 'miss', $label);
	is($j->{avg_price_cents}, (31 + 12 + 33 + 34 + 35) * 1000000 / 5,
		"$n: $label: the Boston average includes the new price");

	# and the refreshed answers are cached again
	$expect->($_, $cached, "$label, again") for qw(boston boston_stats);

	# --- a title edit of another row in another city: listing 6 -------------
	# Column-aware: the statistics do not show titles, and the Denver search
	# lists the same ids; only listing 6's page and its search card change.
	$node->safe_psql('postgres',
		"UPDATE housing.listings SET title = 'Renovated 6' WHERE id = 6");
	$label = 'after a title edit of listing 6 in Denver';

	$j = $expect->('listing1', $cached, $label);
	is($j->{title}, 'Listing 1', "$n: $label: listing 1's page is unchanged");
	$expect->('boston', $cached, $label);
	$j = $expect->('listing6', 'miss', $label);
	is($j->{title}, 'Renovated 6', "$n: $label: listing 6's page shows its new title");
	{
		my $r = fetch($s, $call{denver});
		is($r->{tier}, $cached, "$n: $label: the Denver search's id list is still cached");
		is($r->{fragment_fills}, 1, "$n: $label: ... and one fragment, listing 6's card, is computed");
		is($r->{fragment_hits}, 4, "$n: $label: ... the other four come from the cache");
		my ($six) = grep { $_->{id} == 6 } @{ $r->{json}{items} };
		is($six->{title}, 'Renovated 6', "$n: $label: ... with the new title");
	}
	$j = $expect->('denver_stats', $cached, $label);
	is($j->{active_count}, 5, "$n: $label: the Denver statistics, which show no title, stay cached");

	# a price edit: the statistics change; the newest-first search's id list
	# does not (it reads no price), listing 6's card does
	$node->safe_psql('postgres', "UPDATE housing.listings SET price_cents = 36500000 WHERE id = 6");
	$label = 'after a price edit of listing 6';
	$j = $expect->('denver_stats', 'miss', $label);
	is($j->{avg_price_cents}, (365 + 370 + 380 + 390 + 400) * 100000 / 5,
		"$n: $label: the Denver average includes the new price") or diag explain $j;
	{
		my $r = fetch($s, $call{denver});
		is($r->{tier}, $cached, "$n: $label: the Denver search's id list is still cached");
		is($r->{fragment_fills}, 1, "$n: $label: ... and listing 6's card is computed");
	}
	$expect->('boston', $cached, $label);
	$j = $expect->('listing6', 'miss', $label);
	is($j->{price_cents}, 36500000, "$n: $label: listing 6's page shows its new price");

	# --- a write to listing 1 itself -------------------------------------------
	$node->safe_psql('postgres',
		"UPDATE housing.listings SET bedrooms = 7 WHERE id = 1");
	$label = 'after a write to listing 1';
	$j = $expect->('listing1', 'miss', $label);
	is($j->{bedrooms}, 7, "$n: $label: listing 1's page shows its new bedrooms");
	$j = $expect->('listing6', $cached, $label);
	is($j->{title}, 'Renovated 6', "$n: $label: listing 6's page is still cached, unchanged");

	# --- listing 3 moves from Boston to Denver -----------------------------------
	$expect->($_, $cached, 'before the move') for qw(listing3 denver denver_stats);
	$node->safe_psql('postgres',
		"UPDATE housing.listings SET city = 'Denver', neighborhood = 'Highland' WHERE id = 3");
	$label = 'after listing 3 moved to Denver';

	$j = $expect->('boston', 'miss', $label);
	is($j->{total}, 4, "$n: $label: Boston has 4 listings");
	is_deeply(ids($j), [ 1, 2, 4, 5 ], "$n: $label: ... without listing 3");
	$j = $expect->('denver', 'miss', $label);
	is($j->{total}, 6, "$n: $label: Denver has 6 listings");
	is_deeply(ids($j), [ 3, 6, 7, 8, 9, 10 ], "$n: $label: ... with listing 3");
	$j = $expect->('listing3', 'miss', $label);
	is($j->{city}, 'Denver', "$n: $label: listing 3's page says Denver");
	is($j->{neighborhood}, 'Highland', "$n: $label: ... in Highland");
	$j = $expect->('boston_stats', 'miss', $label);
	is($j->{active_count}, 4, "$n: $label: Boston stats count 4");
	$j = $expect->('denver_stats', 'miss', $label);
	is($j->{active_count}, 6, "$n: $label: Denver stats count 6");
	$expect->('listing1', $cached, $label);

	$s->quit;
	$node->stop;
}

scenario('l2', 'housing_cache.l1_size_mb = 0');
scenario('l1', '');

$redis->stop;

done_testing();
