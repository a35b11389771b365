# Redis that fails over: the cache follows the master the sentinels name.
#
# A master, one replica and three sentinels (quorum 2, down-after 1000 ms,
# failover-timeout 3000 ms), every one password-protected; the node knows
# only the sentinels (redis_port points where nothing listens).  Writers
# and readers run throughout, as in 301_no_stale_reads.pl, through
# get_listing() and search_listings() with L1 off, so that every hit is an
# L2 hit; the no-stale checker judges every read at the end.  Phases:
#
#   healthy        discovered once, served from the master
#   kill           SIGKILL of the master: the sentinels promote the
#                  replica; the cache follows it.  Measured: the time from
#                  the kill to the first L2 hit on the new master
#   pause          SIGSTOP of the master until the sentinels promoted the
#                  replica (plus 1 s), then SIGCONT: the old master comes
#                  back and the sentinels make it a replica (writes to it
#                  answer -READONLY); the cache follows the new master
#   demote         SENTINEL FAILOVER: the master is demoted while it is up,
#                  so sessions connected to it get -READONLY for their
#                  writes, which must be misses (never errors) and make the
#                  cache ask the sentinels again
#   no-sentinels   every sentinel stopped: the master keeps serving (the
#                  sentinels are not on the read path)
#   no-sentinels-hang  then the master hangs for 1.5 s: with nobody to ask,
#                  the cache behaves as when Redis is down (misses, the
#                  breaker open, no errors), also after the master answers
#                  again
#   sentinels-back the sentinels return: the master is confirmed and hits
#                  resume.  Measured: the time to the first L2 hit
#   steady
#
# Timing is asserted only as generous bounds; the measured figures are in
# note() lines (prove -v) and the test's log.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../reliability";

use DBI;
use File::Copy qw(copy);
use File::Path qw(make_path);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HcReliability::History;
use HcReliability::Listings qw(db_reader db_writer);
use HcReliability::Workload;
use HousingCache::Redis;
use HousingCache::Sentinel;
use HousingCache::Test;

my $phase_secs = $ENV{HC_PHASE_SECS} // 3;
my $bound = 30;    # seconds: any recovery slower than this fails
my $pw = 'redis-pw-701-Lq4';
my $sentinel_pw = 'sentinel-pw-701-Vv8';
my $name = 'hc701';

# --- Redis: a master (a), a replica (b), three sentinels ----------------------------
my $ra = HousingCache::Redis->new(name => 'a', password => $pw, args => [ '--masterauth', $pw ]);
my $rb = HousingCache::Redis->new(name => 'b', password => $pw,
	args => [ '--masterauth', $pw, '--replicaof', '127.0.0.1', $ra->port ]);
sub addr { return '127.0.0.1:' . $_[0]->port }

ok($rb->wait_replicating, 'b replicates a');

my @sentinels = HousingCache::Sentinel->group(3, master => $ra, master_name => $name,
	quorum => 2, down_after_ms => 1000, failover_timeout_ms => 3000, password => $sentinel_pw);
HousingCache::Sentinel->wait_ready(\@sentinels, replicas => 1);
pass('three sentinels monitor a, know b and each other');

# --- the node: sentinels only -----------------------------------------------------------
my $nowhere = HousingCache::Redis::_free_port();
my $node = new_node('sentinel_failover',
	redis_port => $nowhere,
	conf => join("\n",
		'max_connections = 60',
		'log_statement = none',
		"housing_cache.redis_password = '$pw'",
		"housing_cache.redis_sentinel_master = '$name'",
		"housing_cache.redis_sentinels = '" . HousingCache::Sentinel->setting(@sentinels) . "'",
		"housing_cache.redis_sentinel_password = '$sentinel_pw'",
		'housing_cache.l1_size_mb = 0',
		'housing_cache.breaker_backoff_ms = 200',
		'housing_cache.breaker_max_backoff_ms = 1000'));

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
});
is($node->safe_psql('postgres', 'SELECT redis_master FROM housing_cache.stats'), addr($ra),
	'the node found the master through the sentinels');

my $history = $node->basedir . '/history';
my $wl = HcReliability::Workload->new(dir => $history);
my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my @ids = sort { $a <=> $b } keys %city_of;

my @own = ([ 1, 2, 5, 6, 9, 10 ], [ 3, 4, 7, 8, 11, 12 ]);
$wl->spawn("writer$_", db_writer(dsn => $dsn, ids => $own[$_], think_us => 6000, rollback_pct => 15))
  for 0 .. 1;
$wl->spawn("reader$_", db_reader(dsn => $dsn, ids => \@ids, cities => [ @cities, undef ], think_us => 1000))
  for 1 .. 4;

# The monitor's own connection, opened after the workers were forked.
my $mon = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 }) or die;
usleep(500_000);

# --- statistics ---------------------------------------------------------------------------
my @stat_cols = qw(l2_hits misses l2_stores redis_errors breaker_skips breaker_opens breaker_closes
  redis_discoveries redis_failovers publishes publish_failures);

sub stats_now
{
	my $row = $mon->selectrow_hashref(
		'SELECT ' . join(', ', @stat_cols) . ', breaker_state, redis_master FROM housing_cache.stats');
	return $row;
}

my %delta;    # phase => { col => delta }
my $current;
my $before;

sub phase
{
	my ($name) = @_;
	my $now = stats_now();
	$delta{$current} = { (map { $_ => $now->{$_} - $before->{$_} } @stat_cols),
		breaker_state => $now->{breaker_state}, redis_master => $now->{redis_master} }
	  if defined $current;
	$wl->mark_phase($name) if defined $name;
	($current, $before) = ($name, $now);
	return;
}

# Poll until the first L2 hit after housing_cache.stats says the master is
# $addr; $tick is called between polls.  Returns the times, from $t0, at
# which a sentinel first named $addr, redis_master showed it, and l2_hits
# grew with it shown.
sub follow
{
	my ($addr, $t0, $tick) = @_;
	my ($named, $switched, $hit, $hits0, $last_ask) = (undef, undef, undef, undef, 0);
	while (time - $t0 < $bound + 30)
	{
		my ($m, $hits) = $mon->selectrow_array('SELECT redis_master, l2_hits FROM housing_cache.stats');
		if ($m eq $addr)
		{
			if (!defined $switched) { ($switched, $hits0) = (time - $t0, $hits) }
			elsif ($hits > $hits0) { $hit = time - $t0; last }
		}
		if (!defined $named && time - $last_ask > 0.1)
		{
			$last_ask = time;
			$named = time - $t0 if grep { ($_->master_addr // '') eq $addr } @sentinels;
		}
		$tick->($named) if $tick;
		usleep(20_000);
	}
	return ($named, $switched, $hit);
}

my %measured;

sub report
{
	my ($phase, $what, $named, $switched, $hit) = @_;
	$measured{$phase} = $hit;
	note(sprintf('%s: %s; a sentinel named the new master after %s s, redis_master showed it after %s s, '
			. 'first L2 hit on it after %s s',
		$phase, $what, map { defined $_ ? sprintf('%.2f', $_) : 'never' } $named, $switched, $hit));
	ok(defined $hit && $hit < $bound, "$phase: L2 hits resume on the new master within $bound s ("
		  . (defined $hit ? sprintf('%.2f s', $hit) : 'never') . ')');
	return;
}

sub wait_until
{
	my ($what, $cond, $secs) = @_;
	my $deadline = time + ($secs // 60);
	while (time < $deadline)
	{
		return 1 if $cond->();
		usleep(100_000);
	}
	fail("waited for: $what");
	return 0;
}

# --- 1. healthy ---------------------------------------------------------------------------
phase('healthy');
usleep($phase_secs * 1e6);

# --- 2. SIGKILL of the master (a) ----------------------------------------------------------
phase('kill');
{
	my $t0 = time;
	$ra->kill9;
	report('kill', 'SIGKILL of the master', follow(addr($rb), $t0));
	usleep(1e6);
}
# a comes back as a replica of b
$ra->args([ '--masterauth', $pw, '--replicaof', '127.0.0.1', $rb->port ]);
$ra->start;
ok($ra->wait_replicating, 'a, restarted, replicates b');
HousingCache::Sentinel->wait_ready(\@sentinels, replicas => 1);

# --- 3. SIGSTOP of the master (b) until the failover, then SIGCONT ---------------------------
phase('pause');
{
	my $t0 = time;
	my $resumed;
	$rb->pause;
	my @r = follow(addr($ra), $t0, sub {
		my ($named) = @_;
		if (!$resumed && defined $named && time - $t0 > $named + 1)
		{
			$rb->resume;
			$resumed = time - $t0;
		}
	});
	if (!$resumed)
	{
		# the cache followed before the pause was over: it still lasts
		# until a second after the failover
		my $left = (defined $r[0] ? $r[0] + 1 : 0) - (time - $t0);
		usleep(int($left * 1e6)) if $left > 0;
		$rb->resume;
		$resumed = time - $t0;
	}
	report('pause', sprintf('SIGSTOP of the master, SIGCONT after %.2f s', $resumed), @r);
	usleep(1e6);
}
wait_until('b is a replica again', sub { ($rb->cli('ROLE') =~ /^(\w+)/)[0] eq 'slave' });
like($rb->cli('SET', 'hc701:probe', 'x'), qr/^READONLY/, 'the old master came back as a replica: writes to it answer -READONLY');
ok($rb->wait_replicating, 'b replicates a');
HousingCache::Sentinel->wait_ready(\@sentinels, replicas => 1);

# --- 4. the master (a) demoted while it is up ------------------------------------------------
phase('demote');
{
	my ($readonly0) = ($ra->cli('INFO', 'errorstats') =~ /errorstat_READONLY:count=(\d+)/);
	my $t0 = time;
	is($sentinels[0]->cli('SENTINEL', 'FAILOVER', $name), 'OK', 'SENTINEL FAILOVER accepted');
	report('demote', 'SENTINEL FAILOVER (the master demoted while up)', follow(addr($rb), $t0));
	my ($readonly) = ($ra->cli('INFO', 'errorstats') =~ /errorstat_READONLY:count=(\d+)/);
	$readonly = ($readonly // 0) - ($readonly0 // 0);
	# How the cache learns of the demotion depends on who talks to the old
	# master first: a session's write (-READONLY), or the publisher's
	# connection; either way no caller sees an error (checked below).
	note("demote: the demoted master answered -READONLY $readonly times");
	usleep(1e6);
}
ok($ra->wait_replicating, 'a replicates b');

# --- 5. every sentinel down ---------------------------------------------------------------------
phase('no-sentinels');
$_->stop for @sentinels;
usleep($phase_secs * 1e6);

phase('no-sentinels-hang');
my $dark_hits;
{
	$rb->pause;
	usleep(1_500_000);
	$rb->resume;
	usleep(1_000_000);
	my $h0 = stats_now();
	usleep(2_000_000);
	my $h1 = stats_now();
	$dark_hits = $h1->{l2_hits} - $h0->{l2_hits};
	is($dark_hits, 0, 'no sentinel to confirm the master after it hung: no L2 hit (Redis treated as down)');
	isnt($h1->{breaker_state}, 'closed', "... the breaker is open ($h1->{breaker_state})");
	cmp_ok($h1->{misses} - $h0->{misses}, '>', 0, '... reads are misses');
}

phase('sentinels-back');
{
	my $t0 = time;
	$_->start for @sentinels;
	report('sentinels-back', 'the sentinels started again', follow(addr($rb), $t0));
	usleep(1e6);
}

phase('steady');
usleep($phase_secs * 1e6);
phase(undef);

my %exit = $wl->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'every worker ended normally');

# --- the verdict ---------------------------------------------------------------------------------
my $h = HcReliability::History->load($history);
my $r = $h->check(city_of => \%city_of, initial => { map { $_ => 0 } @ids });
my $t = $r->totals;
note($_) for $r->summary_lines;
for my $p (map { $_->{name} } $h->phases)
{
	next unless $delta{$p};
	note(sprintf('stats %-18s %s', $p, join(' ', map { "$_=$delta{$p}{$_}" } @stat_cols, 'breaker_state', 'redis_master')));
}
diag("violation: $_") for $r->failures;

is($t->{stale}, 0, "no stale read among $t->{reads} reads and $t->{writes_ok} acknowledged writes");
is($t->{phantom}, 0, 'no read of a version nobody wrote, or one that was rolled back');
is($t->{regression}, 0, 'no read older than one that ended before it began');
is($t->{incomplete}, 0, 'every search returned every tracked listing of its city');
is($t->{missing}, 0, 'get_listing never returned NULL for an existing listing');
is($t->{error}, 0, 'no caller saw an error');
is(($t->{read_conn_errors} // 0) + ($t->{write_conn_errors} // 0) + ($t->{connect_conn_errors} // 0), 0,
	'no connection error either');

for my $p (map { $_->{name} } $h->phases)
{
	my $c = $r->phase($p);
	cmp_ok($c->{reads} // 0, '>=', 20, "$p: reads went on (" . ($c->{reads} // 0) . ')');
	cmp_ok($c->{writes_ok} // 0, '>=', 5, "$p: writes went on (" . ($c->{writes_ok} // 0) . ')');
}

cmp_ok($delta{healthy}{l2_hits}, '>', 0, 'healthy: served from Redis');
is($delta{healthy}{redis_discoveries}, 0, 'healthy: the sentinels were not asked');
for my $p (qw(kill pause demote))
{
	is($delta{$p}{redis_failovers}, 1, "$p: one failover counted");
	cmp_ok($delta{$p}{redis_discoveries}, '>=', 1, "$p: the sentinels were asked ($delta{$p}{redis_discoveries} discoveries)");
}
cmp_ok($delta{demote}{redis_errors}, '>', 0, 'demote: what the demoted master answered was counted as Redis errors, never raised');
cmp_ok($delta{'no-sentinels'}{l2_hits}, '>', 0, 'no-sentinels: the master keeps serving');
is($delta{'no-sentinels'}{redis_discoveries}, 0, 'no-sentinels: nothing asked the sentinels');
cmp_ok($delta{'no-sentinels-hang'}{breaker_opens}, '>', 0, 'no-sentinels-hang: the breaker opened');
is($delta{$_}{redis_failovers}, 0, "$_: no failover counted") for qw(no-sentinels no-sentinels-hang sentinels-back);
cmp_ok($delta{steady}{l2_hits}, '>', 0, 'steady: served from Redis');
is($delta{steady}{breaker_state}, 'closed', 'steady: the breaker is closed');

# Discovery is shared and rate-limited: never more than about one per
# breaker_backoff_ms (200 ms), whatever the number of sessions.
for my $p (map { $_->{name} } $h->phases)
{
	next unless $delta{$p};
	my ($ph) = grep { $_->{name} eq $p } $h->phases;
	my $secs = $ph->{end} - $ph->{start};
	cmp_ok($delta{$p}{redis_discoveries}, '<=', int($secs / 0.2) + 2,
		sprintf('%s: %d discoveries in %.1f s', $p, $delta{$p}{redis_discoveries}, $secs));
}

is($node->safe_psql('postgres', 'SELECT redis_master FROM housing_cache.stats'), addr($rb),
	'at the end, redis_master is the master the sentinels name');
is($sentinels[0]->master_addr, addr($rb), '... which they do');
my $direct = $node->safe_psql('postgres',
	q{SELECT string_agg(id || ':' || price_cents, ',' ORDER BY id) FROM housing.listings WHERE id <= 12});
my $cached = $node->safe_psql('postgres',
	q{SELECT string_agg(id || ':' || (housing_cache.get_listing(id)->>'price_cents'), ',' ORDER BY id) FROM generate_series(1, 12) AS id});
is($cached, $direct, 'at the end, cached reads of every listing match the table');

note(sprintf('measured: first L2 hit on the new master %s', join(', ',
	map { sprintf('%s %.2f s', $_, $measured{$_} // -1) } qw(kill pause demote sentinels-back))));

if (!Test::More->builder->is_passing)
{
	my $keep = "$PostgreSQL::Test::Utils::log_path/701_sentinel_failover_history";
	make_path($keep);
	copy($_, $keep) for glob("$history/*.tsv");
	diag("history kept in $keep");
}

$mon->disconnect;
$node->stop;
$_->stop for @sentinels, $ra, $rb;
done_testing();
