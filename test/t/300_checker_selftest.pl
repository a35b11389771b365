# The no-stale-reads checker itself (test/reliability/HcReliability/History.pm)
# must catch what it claims to catch, or a clean verdict of 301 means
# nothing.
#
# 1. Synthetic histories: each kind of violation, once, and the look-alikes
#    that are not violations (a read concurrent with a write, a write whose
#    outcome is unknown, connection errors inside and outside the windows
#    where they are allowed).
# 2. A live negative control: the same workload as 301 against a server
#    whose invalidation trigger on housing.listings is disabled (ALTER TABLE
#    ... DISABLE TRIGGER, a documented way to lose invalidation): the checker
#    must report stale reads.
# 3. The harness's reading of a COMMIT cut off by the server.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../reliability";

use DBI;
use File::Path qw(make_path);
use File::Temp ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use HcReliability::History;
use HcReliability::Listings qw(commit_status db_reader db_writer);
use HcReliability::Workload;
use HousingCache::Redis;
use HousingCache::Test;

my $tmp = File::Temp::tempdir('checker_XXXX', TMPDIR => 1, CLEANUP => 1);
my $case = 0;

# A history from lines "KIND WORKER T0 T1 STATUS F1 F2 F3" (blank-separated,
# '-' for an empty field) and phases [name, start, end, attrs].
sub history
{
	my ($phases, @lines) = @_;
	my $dir = "$tmp/case" . ++$case;
	make_path($dir);
	open my $ph, '>', "$dir/phases.tsv" or die $!;
	print $ph join("\t", @$_), "\n" for @$phases;
	close $ph;
	open my $fh, '>', "$dir/w.tsv" or die $!;
	for (@lines)
	{
		my @f = map { $_ eq '-' ? '' : $_ } split / /, $_, 8;
		print $fh join("\t", @f), "\n";
	}
	close $fh;
	return HcReliability::History->load($dir)
	  ->check(city_of => { 1 => 'Boston', 2 => 'Boston', 3 => 'Denver' }, initial => { 1 => 0, 2 => 0, 3 => 0 })
	  ->totals;
}

my @one_phase = ([ 'p', 0, 100, '' ]);

my $t = history(\@one_phase,
	'W w 1.0 1.1 ok 1 1 -',
	'R r 1.05 1.3 ok get:1 1:0 -',      # concurrent with the write: either version
	'R r 1.05 1.3 ok get:1 1:1 -',
	'R r 1.2 1.3 ok get:1 1:1 -',       # after the ack: the new one
	'R r 1.2 1.3 ok search:Boston 1:1,2:0 -',
	'R r 1.2 1.3 ok search:* 1:1,2:0,3:0,99:5 -');
is_deeply([ @$t{qw(stale phantom regression incomplete error)} ], [ 0, 0, 0, 0, 0 ],
	'a clean history has no violation');
is($t->{reads}, 5, '... and its reads are counted');

$t = history(\@one_phase, 'W w 1.0 1.1 ok 1 1 -', 'R r 1.2 1.3 ok get:1 1:0 -');
is($t->{stale}, 1, 'a read that began after the ack and returned the older version is stale');

$t = history(\@one_phase, 'W w 1.0 1.1 ok 1,2 1,1 -', 'R r 1.2 1.3 ok search:Boston 1:1,2:0 -');
is($t->{stale}, 1, 'a stale listing inside a search answer is found');

$t = history(\@one_phase, 'W w 1.0 1.1 ok 1 1 -', 'R r 1.0 1.05 ok get:1 1:2 -');
is($t->{phantom}, 1, 'a version nobody wrote is a phantom');

$t = history(\@one_phase, 'W w 1.0 1.1 failed 1 1 other::boom', 'R r 1.2 1.3 ok get:1 1:1 -');
is($t->{phantom}, 1, 'the version of a failed write is a phantom');
is($t->{error}, 1, '... and the failed write (not a connection error) is an error');

$t = history(\@one_phase, 'W w 1.0 1.1 aborted 1 1 -', 'R r 1.2 1.3 ok get:1 1:1 -');
is_deeply([ @$t{qw(phantom error writes_aborted)} ], [ 1, 0, 1 ],
	'the version of a write rolled back on purpose is a phantom; the rollback itself is no error');
$t = history(\@one_phase, 'W w 1.0 1.1 aborted 1 1 -', 'W w 1.2 1.3 ok 1 2 -', 'R r 1.4 1.5 ok get:1 1:2 -');
is_deeply([ @$t{qw(phantom stale error)} ], [ 0, 0, 0 ], '... and the versions after it are read as usual');

$t = history(\@one_phase, 'W w 1.0 1.1 ok 1 1 -', 'R r 0.5 0.9 ok get:1 1:1 -');
is($t->{phantom}, 1, 'a version read before its write began is a phantom');

$t = history(\@one_phase,
	'W w 1.0 2.0 ok 1 1 -',
	'R r 1.1 1.2 ok get:1 1:1 -',
	'R r 1.3 1.4 ok get:1 1:0 -');
is_deeply([ $t->{stale}, $t->{regression} ], [ 0, 1 ],
	'an older version after a read that saw the newer one is a regression (not stale: no ack yet)');

$t = history(\@one_phase, 'R r 1.2 1.3 ok search:Boston 1:0 -');
is($t->{incomplete}, 1, 'a search missing a listing of its city is incomplete');
$t = history(\@one_phase, 'R r 1.2 1.3 ok search:Boston 1:0,2:0,3:0 -');
is($t->{incomplete}, 1, 'a search with a listing of another city is incomplete');
$t = history(\@one_phase, 'R r 1.2 1.3 ok get:1 null -');
is($t->{missing}, 1, 'NULL for an existing listing is counted');

my @windows = ([ 'a', 0, 10, '' ], [ 'restart', 10, 20, 'conn_errors=1' ], [ 'b', 20, 30, '' ]);
$t = history(\@windows,
	'R r 11 12 err get:1 - conn:57P01:terminating connection due to administrator command',
	'R r 9.9 10.2 err get:1 - conn:08006:server closed the connection unexpectedly',
	'C r 12 12.1 err connect - conn::the database system is starting up',
	'W w 12 12.5 unknown 1 1 conn::server closed the connection unexpectedly',
	'R r 13 13.1 ok get:1 1:1 -',
	'R r 14 14.1 ok get:1 1:0 -');
is_deeply([ @$t{qw(error read_conn_errors connect_conn_errors write_conn_errors stale phantom)} ],
	[ 0, 2, 1, 1, 0, 0 ],
	'connection errors overlapping a restart window are allowed and counted; an unknown write may or may not be seen');
$t = history(\@windows,
	'R r 21 22 err get:1 - conn:08006:server closed the connection unexpectedly',
	'R r 11 12 err get:1 - other:XX000:housing_cache exploded');
is($t->{error}, 2, 'connection errors outside the windows, and other errors anywhere, are errors');
$t = history(\@windows, 'W w 12 12.5 unknown 1 1 conn::x', 'R r 13 13.1 ok get:1 1:1 -', 'R r 14 14.1 ok get:1 1:0 -');
is($t->{regression}, 1, 'reads of a write of unknown outcome still may not go backwards');

# --- live: the checker catches the stale reads of a cache that does not invalidate ---

my $redis = HousingCache::Redis->new;
my $node = new_node('checker_negative', redis => $redis,
	conf => "log_statement = none\nmax_connections = 30");
$node->safe_psql('postgres', q{
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms, area_sqm, lat, lon)
SELECT i, 'Listing ' || i, CASE WHEN i <= 2 THEN 'Boston' ELSE 'Denver' END,
       'Center', 0, 1, 1.0, 50, 40, -71
  FROM generate_series(1, 4) AS i;
ALTER TABLE housing.listings DISABLE TRIGGER housing_cache_invalidate;
});
my $dir = $node->basedir . '/history';
my $wl = HcReliability::Workload->new(dir => $dir);
my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my %city_of = (1 => 'Boston', 2 => 'Boston', 3 => 'Denver', 4 => 'Denver');
$wl->spawn('writer', db_writer(dsn => $dsn, ids => [ 1 .. 4 ], think_us => 20000));
$wl->spawn("reader$_", db_reader(dsn => $dsn, ids => [ 1 .. 4 ], cities => [ 'Boston', 'Denver', undef ],
		think_us => 2000)) for 1 .. 2;
$wl->mark_phase('no-invalidation');
sleep 3;
my %exit = $wl->stop;
is_deeply([ grep { $exit{$_} != 0 } sort keys %exit ], [], 'negative control: every worker ended normally');
my $r = HcReliability::History->load($dir)->check(city_of => \%city_of, initial => { map { $_ => 0 } 1 .. 4 });
diag("negative control (invalidation trigger disabled): $_") for ($r->summary_lines)[ 0, 1, -2 ];
cmp_ok($r->totals->{writes_ok}, '>', 10, 'negative control: writes were acknowledged');
cmp_ok($r->totals->{stale}, '>', 0, 'negative control: the checker reports the stale reads of a cache without invalidation');

# The harness's own reading of COMMIT: DBD::Pg's commit() returns true when
# the server ended the connection instead; such a write must be recorded as
# of unknown outcome, not acknowledged.
{
	my $victim = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	$victim->begin_work;
	$victim->do('UPDATE housing.listings SET price_cents = 424242 WHERE id = 1');
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($victim->{pg_pid})");
	usleep(200_000);
	my ($status, $err) = commit_status($victim);
	is($status, 'unknown', 'harness: a COMMIT the server cut off is not counted as acknowledged');
	isnt($node->safe_psql('postgres', 'SELECT price_cents FROM housing.listings WHERE id = 1'), '424242',
		'harness: ... and indeed it did not commit');
}

$node->stop;
$redis->stop;
done_testing();
