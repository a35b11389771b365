# No read through the edge older than a commit once the purge bound has
# passed, under write load, through a killed purger and a Redis restart.
#
# Writers commit strictly increasing versions (price_cents) of 12 tracked
# listings in three cities (HcReliability::Listings, over SQL); readers
# read them through Varnish (GET /api/rpc/listing?id=N and
# /api/rpc/listings?city=X), which caches and is purged by hc_purger.
# EdgeHistory then holds every read to the commit history with a bound per
# phase: a read that began more than the bound after a newer version was
# acknowledged fails.  The bound is the purge path's (a purge is sent a
# second time --repurge-delay-ms after the first, for an answer stored
# while the first ran) with a generous margin, and while the purger is
# dead, its --alive-for (the edge serves from its cache until the last
# vouching runs out, and from the origin only after).
#
# Phases, with the load running throughout:
#   healthy          everything up
#   purger-killed    SIGKILL: the edge stops serving cached answers after
#                    --alive-for; no purges meanwhile
#   purger-back      restarted: it purges everything before it vouches, so
#                    no stale entry of the dead time survives
#   redis-down       Redis killed: the purger stops vouching at once; the
#                    engine's messages of this time are lost
#   redis-back       Redis started again (empty): the purger purges
#                    everything, takes a new base from a heartbeat
# The largest staleness seen per phase is printed (max age).
#
# HC_SOAK=1: 20 s per phase instead of 4.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http", "$FindBin::RealBin/../reliability";

use File::Copy qw(copy);
use File::Path qw(make_path);
use HTTP::Tiny;
use Test::More;
use Time::HiRes qw(usleep time);

use EdgeHistory;
use EdgeStack;
use HcHttp;
use HcReliability::History;
use HcReliability::Listings qw(db_writer http_reader);
use HcReliability::Workload;

EdgeStack::require_varnish();

my $soak = $ENV{HC_SOAK} ? 1 : 0;
my $phase_secs = $ENV{HC_PHASE_SECS} // ($soak ? 20 : 4);
my $ALIVE = 1;             # --alive-for
my $REPURGE_MS = 100;      # --repurge-delay-ms
my $BOUND = 0.5;           # purge path: measured p99 is a few ms (004), the second purge 0.1 s
my $DEAD_BOUND = $ALIVE + 0.5;

my $stack = HcHttp->new(name => 'edge_no_stale', listings => 0,
	conf => "housing_cache.heartbeat_ms = 200\nmax_connections = 60\nlog_min_messages = warning\n");
my $node = $stack->node;
my $contract = $node->safe_psql('postgres', "SELECT to_regprocedure('housing_cache.edge_key(text)') IS NOT NULL");
if ($contract ne 't')
{
	fail('the installed housing_cache implements the edge contract');
	diag('the engine side of edge/README.md is not installed: make && make install at the top of the tree');
	done_testing();
	exit;
}

# 12 tracked listings (ids 1-12, four per city, version 0) and 8 others.
my %city_of;
my @cities = qw(Boston Denver Austin);
$city_of{ $_ + 1 } = $cities[ int($_ / 4) ] for 0 .. 11;
$node->safe_psql('postgres', q{
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
     area_sqm, lat, lon, created_at, updated_at)
SELECT i, 'Listing ' || i,
       (ARRAY['Boston', 'Denver', 'Austin', 'Seattle', 'Miami'])[(i - 1) / 4 + 1],
       'Center', CASE WHEN i <= 12 THEN 0 ELSE 50000000 END, 1 + i % 3, 1.5, 50 + i,
       40 + i / 100.0, -71 - i / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, 20) AS i;
SELECT setval('housing.listings_id_seq', 20);
});

my $srv = $stack->start_server('--pool', '8', '--quiet', '--pool-timeout', '5000');
my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);
my $purger = EdgeStack::Purger->start(redis => $stack->redis, edges => [$edge],
	args => [ '--heartbeat-ms', 200, '--heartbeat-timeout-ms', 1000, '--repurge-delay-ms', $REPURGE_MS,
		'--alive-for', $ALIVE ]);
ok($purger->wait_log(qr/vouching for the edges/, 15), 'the purger vouches') or diag($purger->log_text);

my $history = $node->basedir . '/history';
my $wl = HcReliability::Workload->new(dir => $history);
my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my @ids = sort { $a <=> $b } keys %city_of;
my @search_cities = (@cities, undef);

my %bound = (healthy => $BOUND, 'purger-killed' => $DEAD_BOUND, 'purger-back' => $BOUND,
	'redis-down' => $BOUND, 'redis-back' => $BOUND);
my %hits;

sub run_phase
{
	my ($name, $action, %attrs) = @_;
	my $h0 = $edge->stat('MAIN.cache_hit');
	$wl->mark_phase($name, %attrs);
	my $end = time + $phase_secs;
	$action->($end) if $action;
	my $left = $end - time;
	usleep(int($left * 1e6)) if $left > 0;
	$hits{$name} = $edge->stat('MAIN.cache_hit') - $h0;
	return;
}

# --- the load ----------------------------------------------------------------------
my @own = ([ 1, 2, 5, 6, 9, 10 ], [ 3, 4, 7, 8, 11, 12 ]);
$wl->spawn("writer$_", db_writer(dsn => $dsn, ids => $own[$_], think_us => 20000)) for 0 .. 1;
$wl->spawn("edge$_", http_reader(base => $edge->base, ids => \@ids, cities => \@search_cities, think_us => 500))
  for 1 .. ($soak ? 6 : 4);
usleep(500_000);

run_phase('healthy');
my $mark = $purger->mark;
run_phase('purger-killed', sub { $purger->kill9 });
run_phase('purger-back', sub { $purger->restart });
ok($purger->wait_log(qr/vouching for the edges/, 5, $mark), 'the restarted purger vouches again');
$mark = $purger->mark;
run_phase('redis-down', sub { $stack->redis->kill9 });
run_phase('redis-back', sub { $stack->redis->start });
ok($purger->wait_log(qr/purging everything: \(re\)subscribed/, 5, $mark), 'Redis back: everything purged');
ok($purger->wait_log(qr/vouching for the edges/, 5, $mark), 'and vouched for again');
$wl->mark_phase(undef);

my %exit = $wl->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'every worker ended normally');

# --- the verdict ----------------------------------------------------------------------
my $h = HcReliability::History->load($history);
my $r = EdgeHistory::check($h, city_of => \%city_of, initial => { map { $_ => 0 } @ids },
	bound => sub { $bound{ $_[0] } // $BOUND });
my @order = qw(healthy purger-killed purger-back redis-down redis-back);
diag($_) for EdgeHistory::summary_lines($r, @order);
diag('edge hits per phase: ' . join(', ', map { "$_ $hits{$_}" } @order));
diag("failure: $_") for @{ $r->{failures} };

cmp_ok($r->{reads}, '>', 1000, "$r->{reads} reads through the edge");
cmp_ok($hits{healthy}, '>', 100, "the edge served $hits{healthy} hits while healthy: the cache is exercised");
is($r->{violations}, 0, "no read older than a commit past the bound ($BOUND s; $DEAD_BOUND s while the purger is dead)");
is($r->{regressions}, 0, 'no read older, by more than the bound, than a read before it');
is($r->{phantoms}, 0, 'no version nobody wrote');
is($r->{incomplete}, 0, 'every search returned every tracked listing of its city');
is($r->{errors}, 0, 'no error');
for my $p (qw(purger-back redis-back))
{
	cmp_ok($r->{phases}{$p}{max_age} // 0, '<=', $BOUND, "$p: no stale entry survived (max age "
		  . sprintf('%.3f s', $r->{phases}{$p}{max_age} // 0) . ')');
}

if (!Test::More->builder->is_passing)
{
	my $keep = "$PostgreSQL::Test::Utils::log_path/003_no_stale_history";
	make_path($keep);
	copy($_, $keep) for glob("$history/*.tsv");
	diag("history kept in $keep");
}

done_testing();
