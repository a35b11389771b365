# No stale composed answers: search_listings, an id list plus one card per
# listing cached by id, whatever happens to Redis or to the server.
#
# A listing's version lives in its title ('v<version> p<price>'), which
# only the card shows: a title edit changes one card and no id list, a
# price edit the id lists of its city and one card (README, "Composed
# queries").  Writers (HcReliability::Composed) commit strictly increasing
# versions of 18 listings in three cities, half of them with a new price
# (drawn so that the order of a city's listings changes at most writes, and
# ties, broken by id, are frequent), some two at once, and some read their
# new version back through the cache in the same statement, then roll back.
# Readers read search_listings(city, sort => 'price_asc') whole (page_size
# 100) or in pages of 3 (pages 1 and 2), of one city or of every city (the
# id list then depends on the table's tag), and record each item's
# id:version.
#
# The History checker (test/reliability/HcReliability/History.pm) fails on
# stale reads (older than an acknowledged write), phantoms, regressions and
# incomplete whole-city searches, exactly as for 301; each answer must also
# be the answer of one moment: every card names its own price in its title
# (a fragment is one row version), items are in price order with ties by id
# (an id list of another moment than its cards breaks it), "total" is the
# city's count, a page of 3 holds 3 items, and (check_composed) no listing
# the page leaves out certainly sorted inside it.
#
# Phases, the load running throughout:
#   healthy, redis-paused (SIGSTOP), redis-resumed, redis-killed,
#   redis-restarted, column-tags-off, column-tags-on      L1 off (L2 only)
#   pg-restart (L1 turned on), l1-healthy, l1-redis-paused, l1-redis-resumed,
#   l1-redis-killed, l1-redis-restarted                    L1 and L2
# At the end, cached pages are byte for byte the whole query's.  Then the
# negative controls, each with a history of its own, the invalidation
# trigger disabled: (1) the writers invalidate each written listing's id
# tag themselves (cards current, id lists never invalidated: the order and
# membership checks must fire, and no card may be stale), (2) nothing is
# invalidated (the History checker must find stale reads).
#
# HC_PHASE_SECS=N sets the length of a phase (default 3).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../reliability";

use File::Copy qw(copy);
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HcReliability::Composed qw(composed_writer composed_reader page_violations check_composed read_listings);
use HcReliability::History;
use HcReliability::Workload;
use HousingCache::Redis;
use HousingCache::Test;

my $phase_secs = $ENV{HC_PHASE_SECS} // 3;

# --- the reader's own checks, on answers made up here -----------------------------
{
	my $card = sub {
		my ($id, $v, $p, %x) = @_;
		return { id => $id, title => "v$v p" . ($x{title_p} // $p), price_cents => $p, city => $x{city} // 'Boston' };
	};
	my $kinds = sub {
		my ($doc, %o) = @_;
		return join ',', map { $_->[0] } page_violations($doc, city => 'Boston', total => 6, %o);
	};
	my $page = sub { return { total => 6, page => 1, page_size => 3, items => [@_] } };
	is($kinds->($page->($card->(3, 1, 1000), $card->(1, 4, 2000), $card->(2, 0, 2000)), page => 1, page_size => 3),
		'', 'reader: a page in price order, ties by id, is of one moment');
	is($kinds->($page->($card->(3, 1, 1000), $card->(2, 0, 2000), $card->(1, 4, 2000)), page => 1, page_size => 3),
		'order', 'reader: a tie out of id order is an order violation');
	is($kinds->($page->($card->(3, 1, 3000), $card->(2, 0, 2000), $card->(1, 4, 4000)), page => 1, page_size => 3),
		'order', 'reader: a price out of order is an order violation');
	is($kinds->($page->($card->(3, 1, 1000, title_p => 900), $card->(2, 0, 2000), $card->(4, 1, 2000, city => 'Denver')),
			page => 1, page_size => 3),
		'card,card', 'reader: a card whose title names another price, or of another city, is a card violation');
	is($kinds->({ %{ $page->($card->(3, 1, 1000)) }, total => 5 }, page => 1, page_size => 3),
		'total,count', 'reader: a wrong total, and a short page, are violations');
	is($kinds->({ total => 6, page => 2, page_size => 3, items => [] }, page => 2, page_size => 3),
		'count', 'reader: page 2 of 6 listings is not empty');
	is(join(',', map { $_->[0] } page_violations(
				$page->($card->(3, 1, 1000), $card->(1, 4, 2000), $card->(9, 0, 2000, city => 'Denver')),
				city => undef, total => 6, page => 1, page_size => 3)),
		'', 'reader: a search of every city has cards of any city');
}

# --- the node ------------------------------------------------------------------------
my $redis = HousingCache::Redis->new;
my $node = new_node('composed_no_stale',
	redis => $redis,
	conf => join("\n",
		'max_connections = 60',
		'log_statement = none',
		'log_min_messages = warning',
		'housing_cache.l1_size_mb = 0',
		'housing_cache.breaker_backoff_ms = 100',
		'housing_cache.breaker_max_backoff_ms = 800'));

# 18 tracked listings, six per city (ids 1-6 Boston, 7-12 Denver, 13-18
# Austin), version 0, and four others in Seattle that nobody writes.
my @cities = qw(Boston Denver Austin);
my %city_of = map { $_ => $cities[ int(($_ - 1) / 6) ] } 1 .. 18;
my @ids = sort { $a <=> $b } keys %city_of;
$node->safe_psql('postgres', q{
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
     area_sqm, lat, lon, created_at, updated_at)
SELECT i, 'v0 p' || p, c, 'Center', p, 1 + i % 3, 1.5, 50 + i,
       40 + i / 100.0, -71 - i / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, 22) AS i,
       LATERAL (SELECT 1000 * (1 + (i * 7) % 12) AS p,
                       (ARRAY['Boston', 'Denver', 'Austin', 'Seattle'])[(i - 1) / 6 + 1] AS c) x;
SELECT setval('housing.listings_id_seq', 22);
});
my $run = sub { $node->safe_psql('postgres', $_[0]) };
my $initial = read_listings($run, \@ids);
is(scalar(keys %$initial), 18, 'eighteen tracked listings, titles "v0 p<price>"');

my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;

sub new_workload
{
	my ($name, $init) = @_;
	my $dir = $node->basedir . "/$name";
	my $wl = HcReliability::Workload->new(dir => $dir);
	open my $fh, '>', "$dir/listings.tsv" or die $!;
	print $fh "$_\t$city_of{$_}\t$init->{$_}[0]\n" for @ids;    # for check_history.pl
	close $fh;
	return $wl;
}

sub spawn_load
{
	my ($wl, $init, %o) = @_;
	for my $c (0 .. $#cities)
	{
		$wl->spawn("writer$c", composed_writer(dsn => $dsn, city_of => \%city_of,
				ids => [ grep { $city_of{$_} eq $cities[$c] } @ids ],
				initial => $init, think_us => 6000, %o));
	}
	$wl->spawn("reader$_", composed_reader(dsn => $dsn, city_of => \%city_of, think_us => 1000,
			cities => [ @cities, @cities, undef ], totals => { '*' => 22 }))
	  for 1 .. 4;
	usleep(500_000);    # connected
	return;
}

sub verdict
{
	my ($wl, $init) = @_;
	my $t0 = time;
	my $h = HcReliability::History->load($wl->dir);
	my $r = $h->check(city_of => \%city_of, initial => { map { $_ => $init->{$_}[0] } @ids });
	my $t1 = time;
	my $c = check_composed($wl->dir, city_of => \%city_of, initial => $init);
	note(sprintf('%s checked in %.1f s (History) and %.1f s (composed)', $wl->dir, $t1 - $t0, time - $t1));
	return ($h, $r, $c);
}

# --- statistics per phase -----------------------------------------------------------------
my @stat_cols = qw(l1_hits l2_hits misses bypasses fragment_hits fragment_fills l2_stores
  redis_errors breaker_skips breaker_opens);

sub stats_now
{
	my $out = eval {
		$node->safe_psql('postgres', 'SELECT ' . join(", ';', ", @stat_cols) . ' FROM housing_cache.stats');
	};
	return undef unless defined $out;
	$out =~ s/\|//g;
	my %s;
	@s{@stat_cols} = split /;/, $out;
	return \%s;
}

my %stats;

sub run_phase
{
	my ($wl, $name, $action, %attrs) = @_;
	my $before = stats_now();
	$wl->mark_phase($name, %attrs);
	my $end = time + $phase_secs;
	$action->($end) if $action;
	my $left = $end - time;
	usleep(int($left * 1e6)) if $left > 0;
	my $after = stats_now();
	$stats{$name} = { map { $_ => $after->{$_} - $before->{$_} } @stat_cols }
	  if $before && $after && !$attrs{restart};
	return;
}

sub set_column_tags
{
	my ($on) = @_;
	$node->safe_psql('postgres',
		($on ? 'ALTER SYSTEM RESET housing_cache.column_tags' : 'ALTER SYSTEM SET housing_cache.column_tags = off')
		  . '; SELECT pg_reload_conf()');
	return;
}

# --- the load ----------------------------------------------------------------------------
my $wl = new_workload('history', $initial);
spawn_load($wl, $initial, rollback_pct => 10);

run_phase($wl, 'healthy');
run_phase($wl, 'redis-paused', sub { $redis->pause });
run_phase($wl, 'redis-resumed', sub { $redis->resume });
run_phase($wl, 'redis-killed', sub { $redis->kill9 });
run_phase($wl, 'redis-restarted', sub { $redis->start });
run_phase($wl, 'column-tags-off', sub { set_column_tags(0) });
run_phase($wl, 'column-tags-on', sub { set_column_tags(1) });
run_phase($wl, 'pg-restart', sub {
	$node->append_conf('postgresql.conf', 'housing_cache.l1_size_mb = 4');
	$node->restart;
	usleep(1_000_000);    # every worker notices and reconnects within this phase
}, conn_errors => 1, restart => 1);
run_phase($wl, 'l1-healthy');
run_phase($wl, 'l1-redis-paused', sub { $redis->pause });
run_phase($wl, 'l1-redis-resumed', sub { $redis->resume });
run_phase($wl, 'l1-redis-killed', sub { $redis->kill9 });
run_phase($wl, 'l1-redis-restarted', sub { $redis->start });

my %exit = $wl->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'every worker ended normally');

# --- the verdict -------------------------------------------------------------------------
my ($h, $r, $c) = verdict($wl, $initial);
my $t = $r->totals;
my $ct = $c->{totals};
diag($_) for $r->summary_lines;
for my $phase (map { $_->{name} } $h->phases)
{
	my $pc = $c->{phases}{$phase} || {};
	diag(sprintf('composed %-18s small pages %4d; card %d order %d total %d count %d membership %d', $phase,
			map { $pc->{$_} // 0 } qw(reads_small card order total count membership)));
	next unless $stats{$phase};
	diag(sprintf('stats %-18s %s', $phase, join(' ', map { "$_=$stats{$phase}{$_}" } @stat_cols)));
}
diag("violation: $_") for $r->failures, @{ $c->{failures} };

is($t->{stale}, 0, "no stale read among $t->{reads} reads ($t->{observations} listing versions) and $t->{writes_ok} acknowledged writes");
cmp_ok($t->{writes_aborted}, '>', 0,
	"writers read $t->{writes_aborted} uncommitted versions through the cache, then rolled back");
is($t->{phantom}, 0, 'no read of a version nobody wrote, or one that was rolled back');
is($t->{regression}, 0, 'no read older than one that ended before it began');
is($t->{incomplete}, 0, 'every whole-city search returned every listing of its city');
is($ct->{card}, 0, 'every card names its own price in its title, and is of the city searched');
is($ct->{order}, 0, 'every answer lists its items in price order, ties by id');
is($ct->{total}, 0, 'every answer has the city\'s total, and the page asked');
is($ct->{count}, 0, 'every page holds as many items as its place says');
is($ct->{membership}, 0, 'no page of 3 left out a listing that sorted inside it');
is($t->{error}, 0, 'no error (the composed checks\' violations included) beyond the connection errors of the restart');

for my $phase (map { $_->{name} } $h->phases)
{
	my $pr = $r->phase($phase);
	cmp_ok($pr->{reads} // 0, '>=', 20, "$phase: reads went on (" . ($pr->{reads} // 0) . ')');
	cmp_ok($pr->{writes_ok} // 0, '>=', 5, "$phase: writes went on (" . ($pr->{writes_ok} // 0) . ')');
	cmp_ok($c->{phases}{$phase}{reads_small} // 0, '>', 0, "$phase: pages of 3 were read");
}

# What the engine did (L1 off until pg-restart).
cmp_ok($stats{healthy}{l2_hits}, '>', 0, 'healthy: id lists or pages were served from Redis');
cmp_ok($stats{healthy}{fragment_hits}, '>', 0, 'healthy: cards were served from the cache');
cmp_ok($stats{healthy}{fragment_fills}, '>', 0, 'healthy: cards were computed after title edits');
cmp_ok($stats{'redis-paused'}{redis_errors} + $stats{'redis-paused'}{breaker_opens}, '>', 0,
	'redis-paused: Redis failures were noticed');
cmp_ok($stats{'redis-restarted'}{l2_stores}, '>', 0, 'redis-restarted: answers were stored in Redis again');
cmp_ok($stats{'l1-healthy'}{l1_hits}, '>', 0, 'l1-healthy: L1 serves');
cmp_ok($stats{'l1-redis-paused'}{l1_hits}, '>', 0, 'l1-redis-paused: L1 serves while Redis hangs');

# --- byte for byte the whole query, once the cache is warm ---------------------------------
{
	my $direct = q{
SELECT json_build_object(
    'total', (SELECT count(*) FROM housing.listings WHERE status = 'active' AND %1$s),
    'page', %2$s, 'page_size', %3$s,
    'items', coalesce((SELECT json_agg(f ORDER BY price_cents, id)
                         FROM (SELECT id, title, city, neighborhood, price_cents, bedrooms,
                                      bathrooms, area_sqm, lat, lon, created_at
                                 FROM housing.listings
                                WHERE status = 'active' AND %1$s
                                ORDER BY price_cents, id
                                LIMIT %3$s OFFSET (%2$s - 1) * %3$s) f), '[]'::json))::text};
	my @mismatch;
	my %tiers;
	for my $city (@cities, undef)
	{
		my ($arg, $filter) = defined $city ? ("'$city'", "city = '$city'") : ('NULL', 'true');
		for my $pp ([ 1, 100 ], [ 1, 3 ], [ 2, 3 ])
		{
			my $call = "housing_cache.search_listings(city => $arg, sort => 'price_asc', "
			  . "page => $pp->[0], page_size => $pp->[1])::text";
			my ($cached1, $cached2, $tier, $whole) = split /\n/, $node->safe_psql('postgres',
				"SELECT replace($call, E'\\n', '~'); SELECT replace($call, E'\\n', '~');"
				  . 'SELECT tier FROM housing_cache.last_lookup();'
				  . 'SELECT replace((' . sprintf($direct, $filter, @$pp) . "), E'\\n', '~')");
			$tiers{$tier}++;
			push @mismatch, ($city // 'every city') . " page $pp->[0] of $pp->[1]:\n cached $cached2\n whole  $whole"
			  unless $cached1 eq $whole && $cached2 eq $whole;
		}
	}
	is_deeply(\@mismatch, [], 'at the end, every cached page is byte for byte the whole query\'s');
	is_deeply([ sort keys %tiers ], ['l1'], '... and the second read of each is an L1 hit');
}

if (!Test::More->builder->is_passing)
{
	my $keep = "$PostgreSQL::Test::Utils::log_path/307_composed_no_stale_history";
	make_path($keep);
	copy($_, $keep) for glob($wl->dir . '/*.tsv');
	diag("history kept in $keep (test/reliability/check_history.pl reads it)");
}

# --- negative controls: the checkers catch what they claim to ----------------------------------
$node->safe_psql('postgres', 'ALTER TABLE housing.listings DISABLE TRIGGER housing_cache_invalidate');

# 1. the cards invalidated (each writer invalidates its listings' id tags),
#    the id lists not: pages assembled from an old list and current cards
my $init1 = read_listings($run, \@ids);
my $wl1 = new_workload('history_stale_lists', $init1);
spawn_load($wl1, $init1, invalidate_ids => 1, price_pct => 80);
run_phase($wl1, 'stale-id-lists');
%exit = $wl1->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'negative control 1: every worker ended normally');
my (undef, $r1, $c1) = verdict($wl1, $init1);
diag("negative control 1 (id lists never invalidated, cards are): $_") for ($r1->summary_lines)[ 0, 1, -2 ];
diag(sprintf('negative control 1: card %d order %d total %d count %d membership %d',
		map { $c1->{totals}{$_} } qw(card order total count membership)));
cmp_ok($r1->totals->{writes_ok}, '>', 10, 'negative control 1: writes were acknowledged');
cmp_ok($c1->{totals}{order}, '>', 0, 'negative control 1: the reader reports items out of price order');
cmp_ok($c1->{totals}{membership}, '>', 0, 'negative control 1: the checker reports pages of 3 leaving out a listing that sorts inside them');
cmp_ok($r1->totals->{error}, '>', 0, '... which the History checker fails on');
is_deeply([ @{ $r1->totals }{qw(stale phantom)} ], [ 0, 0 ],
	'negative control 1: no stale card: the cards a page shows are current even when its id list is not');
is($c1->{totals}{card}, 0, 'negative control 1: cards are still each one row version');

# 2. no invalidation at all: the cached pages keep old versions
my $init2 = read_listings($run, \@ids);
my $wl2 = new_workload('history_no_invalidation', $init2);
spawn_load($wl2, $init2);
run_phase($wl2, 'no-invalidation');
%exit = $wl2->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'negative control 2: every worker ended normally');
my (undef, $r2) = verdict($wl2, $init2);
diag("negative control 2 (invalidation trigger disabled): $_") for ($r2->summary_lines)[ 0, 1, -2 ];
cmp_ok($r2->totals->{writes_ok}, '>', 10, 'negative control 2: writes were acknowledged');
cmp_ok($r2->totals->{stale}, '>', 0, 'negative control 2: the checker reports the stale reads of a cache without invalidation');

$node->safe_psql('postgres', 'ALTER TABLE housing.listings ENABLE ALWAYS TRIGGER housing_cache_invalidate');

$node->stop;
$redis->stop;
done_testing();
