# No stale reads on hot standbys: a cached read on a standby never returns
# an answer older than what that standby's own snapshots show.
#
# Writers commit increasing versions of 12 listings on the primary (and roll
# back others they read through the cache in the same statement); readers
# on the primary are held to the primary's acknowledgements (as in 301).
# Readers on two standbys read each listing, or a city's search, first
# directly (no cache), then through the cache: a cached read older than a
# direct read of the same standby that ended before it began is stale on
# that standby (the checker's "regression"), and a version nobody committed
# is a phantom.  standby2 applies commits 300 ms late
# (recovery_min_apply_delay): the invalidation records reach it at once, the
# commits they announce later, which widens the window in which an
# implementation that took the record for the commit would cache the old
# rows under the new generation.
#
# Phases: healthy; standby1 restarted; the primary restarted; the primary
# crashed (immediate stop); steady.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../reliability";

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HcReliability::History;
use HcReliability::Listings qw(db_reader db_writer);
use HcReliability::Workload;
use HousingCache::Redis;
use HousingCache::Test;

my $phase_secs = $ENV{HC_PHASE_SECS} // ($ENV{HC_SOAK} ? 30 : 4);

my $redis = HousingCache::Redis->new;
my $primary = new_node('primary', redis => $redis, allows_streaming => 1,
	conf => join("\n", 'max_connections = 60', 'log_statement = none', 'log_min_messages = warning',
		'restart_after_crash = on'));

my %city_of;
my @cities = qw(Boston Denver Austin);
for my $i (0 .. 11) { $city_of{ $i + 1 } = $cities[ int($i / 4) ] }
$primary->safe_psql('postgres', q{
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
SELECT housing_cache.set_wal_invalidation(true);
});

my $standby1 = new_standby($primary, 'standby1');
my $standby2 = new_standby($primary, 'standby2', conf => "recovery_min_apply_delay = '300ms'");
wait_for_replay($primary, $standby1);

my $history = $primary->basedir . '/history';
my $wl = HcReliability::Workload->new(dir => $history);
{
	open my $fh, '>', "$history/listings.tsv" or die $!;
	print $fh "$_\t$city_of{$_}\t0\n" for sort { $a <=> $b } keys %city_of;
	close $fh;
}

sub dsn
{
	my ($node) = @_;
	return 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
}
my @ids = sort { $a <=> $b } keys %city_of;

my @own = ([ 1, 2, 5, 6, 9, 10 ], [ 3, 4, 7, 8, 11, 12 ]);
$wl->spawn("writer$_", db_writer(dsn => dsn($primary), ids => $own[$_], think_us => 4000, rollback_pct => 15))
  for 0 .. 1;
$wl->spawn('reader', db_reader(dsn => dsn($primary), ids => \@ids, cities => [ @cities, undef ], think_us => 1000));
for my $sb ([ 'sb1', $standby1 ], [ 'sb2', $standby2 ])
{
	$wl->spawn("$sb->[0]reader$_",
		db_reader(dsn => dsn($sb->[1]), ids => \@ids, cities => \@cities, city_of => \%city_of,
			server => $sb->[0], think_us => 500))
	  for 1 .. 2;
}
usleep(500_000);

my %replayed;
sub phase
{
	my ($name, $action, %attrs) = @_;
	$wl->mark_phase($name, %attrs);
	my $end = time + $phase_secs;
	$action->() if $action;
	my $left = $end - time;
	usleep(int($left * 1e6)) if $left > 0;
	return;
}

phase('healthy');
phase('standby-restart', sub { $standby1->restart }, conn_errors => 1);
phase('primary-restart', sub { $primary->restart; usleep(500_000) }, conn_errors => 1);
phase('primary-crash', sub { $primary->stop('immediate'); $primary->start; usleep(500_000) }, conn_errors => 1);
phase('steady');

my %exit = $wl->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'every worker ended normally');

for my $sb ($standby1, $standby2)
{
	my $n = $sb->name;
	my $s = $sb->safe_psql('postgres',
		'SELECT l1_hits + l2_hits, bypasses, wal_records_replayed, wal_slots_resolved FROM housing_cache.stats');
	my ($hits, $bypasses, $replayed, $resolved) = split /\|/, $s;
	note "$n: hits $hits, bypasses $bypasses, records replayed $replayed, slots resolved $resolved";
	cmp_ok($hits, '>', 0, "$n served cached answers");
	cmp_ok($replayed, '>', 0, "$n replayed invalidation records");
	cmp_ok($resolved, '>', 0, "$n resolved the slots of the commits it replayed");
}

my $r = HcReliability::History->load($history)->check(city_of => \%city_of, initial => { map { $_ => 0 } @ids });
note $_ for $r->summary_lines;
my $t = $r->totals;
cmp_ok($t->{reads_standby} // 0, '>', 100, "standby readers made $t->{reads_standby} reads");
is($t->{regression}, 0, 'no cached read on a standby older than what that standby showed before it began, '
	  . 'and no read on the primary older than an earlier one');
is($t->{stale}, 0, 'no read on the primary older than an acknowledged commit');
is($t->{phantom}, 0, 'no read of a version nobody committed');
is($t->{error}, 0, 'no error beyond the connection errors of the restarts');
if (!Test::More->builder->is_passing)
{
	note 'first violations:';
	note $_ for ($r->failures)[ 0 .. 19 ];
}

$standby1->stop;
$standby2->stop;
$primary->stop;
$redis->stop;
done_testing();
