# No stale reads, whatever happens to Redis or to the server.
#
# Writers commit strictly increasing versions (price_cents) of 12 listings
# in three cities; readers read them through get_listing(), through
# search_listings() filtered by city or not, and through the development
# HTTP server (GET /api/rpc/listing?id=N and /api/rpc/listings?city=X) when
# it is built.  Every operation's start and end are recorded on the
# monotonic clock.  The checker (test/reliability/HcReliability/History.pm)
# then fails on any read that began after a commit was acknowledged yet
# returned an older version (and on versions nobody wrote, reads going
# backwards, incomplete searches, and any error).
#
# Some writes read their new version back through the cache in the same
# statement (UPDATE ... RETURNING get_listing(id), or a data-modifying CTE
# whose main query searches the city), then roll back: a reader served such
# a version is a phantom.
#
# Phases, with the load running throughout:
#   healthy        Redis up, L1 off (every hit is an L2 hit)
#   slow           Redis blocks itself (DEBUG SLEEP 0.25 s) every half second
#   paused         Redis SIGSTOPped: connections hang
#   resumed        SIGCONT: it answers the commands queued meanwhile
#   killed         SIGKILL
#   restarted      started again, empty
#   flapping       killed, stopped, paused and started again in a loop
#   steady         Redis up
#   pg-restart     pg_ctl restart (fast), with L1 turned on
#   after-restart  L1 and L2
#   l1-paused      L1 on, Redis SIGSTOPped
#   pg-crash       Redis resumed; pg_ctl stop -m immediate, start (crash
#                  recovery)
#   after-crash    L1 and L2, Redis still holding the answers of before
# During pg-restart and pg-crash, operations may fail with the errors
# PostgreSQL itself gives (connection lost, starting up, ...): they are
# allowed there, counted separately, and fail the test anywhere else.
#
# HC_SOAK=1: 30 s per phase instead of 3, more readers.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../reliability";

use File::Copy qw(copy);
use File::Path qw(make_path);
use HTTP::Tiny;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HcReliability::History;
use HcReliability::HttpServer;
use HcReliability::Listings qw(db_reader db_writer http_reader);
use HcReliability::Resp;
use HcReliability::Workload;
use HousingCache::Redis;
use HousingCache::Test;

my $soak = $ENV{HC_SOAK} ? 1 : 0;
my $phase_secs = $ENV{HC_PHASE_SECS} // ($soak ? 30 : 3);
my $db_readers = $soak ? 6 : 4;
my $writers = 2;

my $redis = HousingCache::Redis->new(args => [ '--enable-debug-command', 'local' ]);
my $node = new_node('no_stale',
	redis => $redis,
	conf => join("\n",
		'max_connections = 60',
		'log_statement = none',
		'log_min_messages = warning',
		'restart_after_crash = on',
		'housing_cache.l1_size_mb = 0',
		'housing_cache.breaker_backoff_ms = 100',
		'housing_cache.breaker_max_backoff_ms = 800'));

# 12 tracked listings (ids 1-12, four per city, version 0) and 8 others.
my %city_of;
my @cities = qw(Boston Denver Austin);
for my $i (0 .. 11) { $city_of{ $i + 1 } = $cities[ int($i / 4) ] }
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
SELECT housing_cache.setup_api_roles('authenticator-pw');
});

my $history = $node->basedir . '/history';
my $wl = HcReliability::Workload->new(dir => $history);
{
	open my $fh, '>', "$history/listings.tsv" or die $!;
	print $fh "$_\t$city_of{$_}\t0\n" for sort { $a <=> $b } keys %city_of;
	close $fh;
}

my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my @ids = sort { $a <=> $b } keys %city_of;
my @search_cities = (@cities, undef);

# --- the HTTP server, if it is built ------------------------------------------
my $srv;
if (HcReliability::HttpServer->binary)
{
	$srv = HcReliability::HttpServer->start(
		db => 'host=' . $node->host . ' port=' . $node->port
		  . ' dbname=postgres user=authenticator password=authenticator-pw',
		log => "$PostgreSQL::Test::Utils::log_path/301_no_stale_reads_hc_http.log",
		args => [ '--pool', 2, '--quiet', '--pool-timeout', 5000 ]);
	my $probe = HTTP::Tiny->new->get($srv->base . '/api/rpc/listing?id=1');
	is($probe->{status}, 200, 'the HTTP server answers GET /api/rpc/listing?id=1');
}
else
{
	diag('http/hc_http is not built: no HTTP readers in this run');
}

# --- statistics per phase -------------------------------------------------------
my @stat_cols = qw(l1_hits l2_hits misses bypasses l2_stores l2_rejects redis_errors
  breaker_skips breaker_opens breaker_closes invalidated_commits);

sub stats_now
{
	my $out = eval {
		$node->safe_psql('postgres',
			'SELECT ' . join(", ';', ", @stat_cols) . ", ';', breaker_state FROM housing_cache.stats");
	};
	return undef unless defined $out;
	$out =~ s/\|//g;
	my @v = split /;/, $out;
	my %s;
	@s{ @stat_cols, 'breaker_state' } = @v;
	return \%s;
}

my %stats;    # phase => { col => delta }, when no restart lies in between

sub run_phase
{
	my ($name, $action, %attrs) = @_;
	my $before = stats_now();
	$wl->mark_phase($name, %attrs);
	my $end = time + $phase_secs;
	$action->($end) if $action;
	my $left = $end - time;
	usleep(int($left * 1e6)) if $left > 0;
	my $after = stats_now();
	if ($before && $after && !$attrs{restart})
	{
		$stats{$name} = { map { $_ => $after->{$_} - $before->{$_} } @stat_cols };
		$stats{$name}{breaker_state} = $after->{breaker_state};
	}
	return;
}

# --- the load --------------------------------------------------------------------
my @own = ([ 1, 2, 5, 6, 9, 10 ], [ 3, 4, 7, 8, 11, 12 ]);
# A share of each writer's writes reads its new version back through the
# cache in the same statement, then rolls back: no reader may ever see it.
$wl->spawn("writer$_", db_writer(dsn => $dsn, ids => $own[$_], think_us => 6000, rollback_pct => 15))
  for 0 .. $writers - 1;
$wl->spawn("reader$_",
	db_reader(dsn => $dsn, ids => \@ids, cities => \@search_cities, think_us => 1000))
  for 1 .. $db_readers;
if ($srv)
{
	$wl->spawn("http$_",
		http_reader(base => $srv->base, ids => \@ids, cities => \@search_cities, think_us => 1000))
	  for 1 .. ($soak ? 2 : 1);
}
usleep(500_000);    # connected

run_phase('healthy');

run_phase('slow', sub {
	$wl->spawn('slowdown', sub {
		my ($w) = @_;
		my $r = HcReliability::Resp->new(port => $redis->port, timeout => 5);
		until ($w->stopping)
		{
			$r->cmd('DEBUG', 'SLEEP', '0.25');
			usleep(250_000);
		}
		$r->close;
	});
});
$wl->stop_worker('slowdown');

run_phase('paused', sub { $redis->pause });
run_phase('resumed', sub { $redis->resume });
run_phase('killed', sub { $redis->kill9 });
run_phase('restarted', sub { $redis->start });
run_phase('flapping', sub {
	my ($end) = @_;
	my $i = 0;
	while (time < $end - 0.6)
	{
		my $how = $i++ % 3;
		if ($how == 0) { $redis->kill9 }
		elsif ($how == 1) { $redis->stop }
		else { $redis->pause }
		usleep(150_000 + int(rand(200_000)));
		if ($how == 2) { $redis->resume } else { $redis->start }
		usleep(150_000 + int(rand(200_000)));
	}
});
run_phase('steady');
# Recovery without a manual step: the breaker is (or soon is) closed.  Polled,
# because under this load a Redis command may time out at any moment.
my $closed = $node->poll_query_until('postgres', "SELECT breaker_state = 'closed' FROM housing_cache.stats");

# The restart turns L1 on.
run_phase('pg-restart', sub {
	$node->append_conf('postgresql.conf', 'housing_cache.l1_size_mb = 4');
	$node->restart;
	usleep(1_000_000);    # every worker notices and reconnects within this phase
}, conn_errors => 1, restart => 1);
run_phase('after-restart');
run_phase('l1-paused', sub { $redis->pause });
run_phase('pg-crash', sub {
	$redis->resume;
	$node->stop('immediate');
	$node->start;
	usleep(1_000_000);
}, conn_errors => 1, restart => 1);
run_phase('after-crash');

my %exit = $wl->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'every worker ended normally');

# --- the verdict -------------------------------------------------------------------
my $h = HcReliability::History->load($history);
my $r = $h->check(city_of => \%city_of, initial => { map { $_ => 0 } @ids });
my $t = $r->totals;
diag($_) for $r->summary_lines;
for my $phase (map { $_->{name} } $h->phases)
{
	next unless $stats{$phase};
	diag(sprintf('stats %-13s %s', $phase,
			join(' ', map { "$_=$stats{$phase}{$_}" } @stat_cols, 'breaker_state')));
}
diag("violation: $_") for $r->failures;

is($t->{stale}, 0, "no stale read among $t->{reads} reads ($t->{observations} listing versions) and $t->{writes_ok} acknowledged writes");
cmp_ok($t->{writes_aborted}, '>', 0,
	"writers read $t->{writes_aborted} uncommitted versions through the cache, then rolled back");
is($t->{phantom}, 0, 'no read of a version nobody wrote, or one that was rolled back');
is($t->{regression}, 0, 'no read older than one that ended before it began');
is($t->{incomplete}, 0, 'every search returned every tracked listing of its city');
is($t->{missing}, 0, 'get_listing never returned NULL for an existing listing');
is($t->{error}, 0, 'no error beyond the connection errors of the PostgreSQL restarts');

for my $phase (map { $_->{name} } $h->phases)
{
	my $c = $r->phase($phase);
	cmp_ok($c->{reads} // 0, '>=', 20, "$phase: reads went on ($c->{reads})");
	cmp_ok($c->{writes_ok} // 0, '>=', 5, "$phase: writes went on (" . ($c->{writes_ok} // 0) . ')');
	if ($srv && $phase !~ /^pg-/)
	{
		cmp_ok(($c->{reads_http_get} // 0) + ($c->{reads_http_search} // 0), '>', 0,
			"$phase: reads through the HTTP server went on");
	}
}

# What the extension did in each phase (L1 is off until pg-restart).
cmp_ok($stats{healthy}{l2_hits}, '>', 0, 'healthy: answers were served from Redis');
cmp_ok($stats{slow}{redis_errors}, '>', 0, 'slow: Redis commands timed out');
cmp_ok($stats{paused}{breaker_opens} + $stats{paused}{redis_errors}, '>', 0, 'paused: Redis failures were noticed');
cmp_ok($stats{killed}{redis_errors}, '>', 0, 'killed: Redis failures were noticed');
cmp_ok($stats{resumed}{l2_stores}, '>', 0, 'resumed: answers were stored in Redis again');
cmp_ok($stats{restarted}{l2_stores}, '>', 0, 'restarted: answers were stored in Redis again');
cmp_ok($stats{steady}{l2_hits}, '>', 0, 'steady: answers were served from Redis again');
ok($closed, 'after the Redis faults, the breaker closes by itself');
cmp_ok($stats{'after-restart'}{l1_hits}, '>', 0, 'after-restart: L1 serves');
cmp_ok($stats{'l1-paused'}{l1_hits}, '>', 0, 'l1-paused: L1 serves while Redis hangs');
cmp_ok($stats{'after-crash'}{l1_hits} + $stats{'after-crash'}{l2_hits}, '>', 0, 'after-crash: the cache serves again');

# Nothing left behind: the server answers a plain query, and the current
# versions match what a read through the cache says.
my $direct = $node->safe_psql('postgres',
	q{SELECT string_agg(id || ':' || price_cents, ',' ORDER BY id) FROM housing.listings WHERE id <= 12});
my $cached = $node->safe_psql('postgres',
	q{SELECT string_agg(id || ':' || (housing_cache.get_listing(id)->>'price_cents'), ',' ORDER BY id) FROM generate_series(1, 12) AS id});
is($cached, $direct, 'at the end, cached reads of every listing match the table');

if (!Test::More->builder->is_passing)
{
	# keep the history for test/reliability/check_history.pl
	my $keep = "$PostgreSQL::Test::Utils::log_path/301_no_stale_reads_history";
	make_path($keep);
	copy($_, $keep) for glob("$history/*.tsv");
	diag("history kept in $keep");
}

$srv->stop if $srv;
$node->stop;
$redis->stop;
done_testing();
