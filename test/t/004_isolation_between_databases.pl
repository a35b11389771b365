# Databases that share one Redis stay separate: two databases of one cluster,
# and a second cluster, hold the same listings except for one price; each
# answers with its own, although the calls, parameters and queries are the
# same everywhere.  L1 is off so that every cached answer comes from the
# shared Redis.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $conf = 'housing_cache.l1_size_mb = 0';

# Ten listings: ids 1-5 in Boston, 6-10 in Denver; nothing depends on now().
my $listings_sql = ten_listings_sql();

my $node_a = new_node('cluster_a', redis => $redis, conf => $conf);
my $node_b = new_node('cluster_b', redis => $redis, conf => $conf);

$node_a->safe_psql('postgres', 'CREATE DATABASE other');
$node_a->safe_psql('other', 'CREATE EXTENSION housing_portal CASCADE');

# Where each copy of the data lives, and listing 1's price there.
my @places = (
	{ name => 'cluster A, database postgres', node => $node_a, db => 'postgres', price => 31000000 },
	{ name => 'cluster A, database other', node => $node_a, db => 'other', price => 77700000 },
	{ name => 'cluster B, database postgres', node => $node_b, db => 'postgres', price => 55500000 },);
for my $p (@places)
{
	$p->{node}->safe_psql($p->{db},
		$listings_sql . "UPDATE housing.listings SET price_cents = $p->{price} WHERE id = 1;");
}

isnt($node_a->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	$node_b->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()'),
	'the two clusters have different system identifiers');

# One cached call in a new session: answer, tier, key.
sub fetch
{
	my ($p, $call) = @_;
	return cached_call(sub { $p->{node}->safe_psql($p->{db}, $_[0]) }, $call);
}

# How each call shows listing 1's price, and a value the same everywhere.
my %calls = (
	"housing_cache.get_listing(1)" => {
		price => sub { $_[0]{price_cents} },
		same => sub { $_[0]{title} },
	},
	"housing_cache.search_listings('Boston', sort => 'price_desc')" => {
		price => sub { (grep { $_->{id} == 1 } @{ $_[0]{items} })[0]{price_cents} },
		same => sub { $_[0]{total} },
	},
	"housing_cache.city_stats('Boston')" => {
		price => sub { $_[0]{avg_price_cents} * 5 - (32 + 33 + 34 + 35) * 1000000 },
		same => sub { $_[0]{active_count} },
	},);

for my $call (sort keys %calls)
{
	my %keys;
	for my $p (@places)
	{
		my $r = fetch($p, $call);
		is($r->{tier}, 'miss', "$p->{name}: $call: first call runs the query");
		is($calls{$call}{price}->($r->{json}), $p->{price},
			"$p->{name}: $call: first call shows this database's price");
		$keys{ $r->{key} } = 1;

		$r = fetch($p, $call);
		is($r->{tier}, 'l2', "$p->{name}: $call: second call is served from Redis");
		is($calls{$call}{price}->($r->{json}), $p->{price},
			"$p->{name}: $call: ... with this database's price");
	}
	is(scalar keys %keys, scalar @places, "$call: each database has its own key");
	is($redis->cli('EXISTS', keys %keys), scalar @places, "$call: ... and each key is in Redis");

	# Once all are filled, each still gets its own answer.
	for my $p (@places)
	{
		my $r = fetch($p, $call);
		is($r->{tier}, 'l2', "$p->{name}: $call: served from Redis after the others filled theirs");
		is($calls{$call}{price}->($r->{json}), $p->{price},
			"$p->{name}: $call: ... still with this database's price");
		is($calls{$call}{same}->($r->{json}), $calls{$call}{same}->(fetch($places[0], $call)->{json}),
			"$p->{name}: $call: ... and otherwise the same data");
	}
}

# A write in one database invalidates its own answers only.
my ($a_pg, $a_other, $b_pg) = @places;
$a_other->{node}->safe_psql('other', 'UPDATE housing.listings SET price_cents = 88800000 WHERE id = 1');

my $r = fetch($a_other, 'housing_cache.get_listing(1)');
is($r->{tier}, 'miss', 'after a write in database other, its listing 1 is recomputed');
is($r->{json}{price_cents}, 88800000, '... with the new price');
for my $p ($a_pg, $b_pg)
{
	$r = fetch($p, 'housing_cache.get_listing(1)');
	is($r->{tier}, 'l2', "$p->{name}: listing 1 stays cached after the write in database other");
	is($r->{json}{price_cents}, $p->{price}, "$p->{name}: ... with its own price");
}

$node_a->stop;
$node_b->stop;
$redis->stop;

done_testing();
