# PostgreSQL's own faults: an immediate shutdown (no shutdown checkpoint,
# crash recovery at the next start) in the middle of a stream of commits,
# a backend crash (the postmaster reinitializes shared memory), and
# max_connections reached.
#
# housing_cache.value_secret is set, so answers stored in Redis before the
# fault still verify after it: only the restart epoch in every key keeps
# them from being served.  Redis keeps running throughout and keeps them.
#
# For each: no error beyond PostgreSQL's own, every answer after the fault
# is the database's current one, and the cache works again without any
# manual step.
use strict;
use warnings;

use DBI;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('pg_faults',
	redis => $redis,
	conf => join("\n",
		'log_statement = none',
		'restart_after_crash = on',
		'max_connections = 12',
		'superuser_reserved_connections = 3',
		"housing_cache.value_secret = 'shared-secret-of-303'"));

$node->safe_psql('postgres', q{
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
     area_sqm, lat, lon, created_at, updated_at)
SELECT i, 'Listing ' || i, CASE WHEN i <= 5 THEN 'Boston' ELSE 'Denver' END,
       'Center', 1000 * i, 1 + i % 3, 1.5, 50 + i,
       40 + i / 100.0, -71 - i / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, 10) AS i;
SELECT setval('housing.listings_id_seq', 10);
CREATE ROLE app LOGIN;
GRANT UPDATE ON housing.listings TO app;
});

my @calls = (
	(map { "housing_cache.get_listing($_)" } 1 .. 4),
	q{housing_cache.search_listings(city => 'Boston', sort => 'price_asc')},
	q{housing_cache.search_listings(sort => 'price_desc')},
	q{housing_cache.city_stats('Boston')});

my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;

# Each call in a new session: answer, tier, key.
sub read_call
{
	my ($call) = @_;
	my $dbh = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 1, PrintError => 0 });
	my ($value) = $dbh->selectrow_array("SELECT ($call)::text");
	my ($tier, $key) = $dbh->selectrow_array('SELECT tier, key FROM housing_cache.last_lookup()');
	$dbh->disconnect;
	return { value => $value, tier => $tier, key => $key };
}

sub truth
{
	my ($call) = @_;
	return $node->safe_psql('postgres', "SET housing_cache.enabled = off; SELECT ($call)::text");
}

# Every call: the right answer, first from the database under a key that
# was not used before the fault, then from the cache.
sub check_after_fault
{
	my ($label, $keys_before) = @_;
	for my $call (@calls)
	{
		my $r = read_call($call);
		is($r->{value}, truth($call), "$label: $call: the current answer");
		is($r->{tier}, 'miss', "$label: $call: computed (nothing from before is reachable)");
		ok(!$keys_before->{ $r->{key} }, "$label: $call: under a key not used before");
		like(read_call($call)->{tier}, qr/^l[12]$/, "$label: $call: then cached again");
	}
}

# Fill L1 and Redis, with some answers already invalidated once.
sub warm
{
	my %keys;
	for my $call (@calls)
	{
		$keys{ read_call($call)->{key} } = 1;
	}
	$node->safe_psql('postgres', 'UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id IN (1, 2)');
	for my $call (@calls)
	{
		$keys{ read_call($call)->{key} } = 1;
		like(read_call($call)->{tier}, qr/^l[12]$/, "warm: $call is cached");
	}
	return \%keys;
}

# --- immediate shutdown in the middle of a stream of commits ---------------------

my $keys = warm();
is(scalar(grep { $redis->cli('EXISTS', $_) eq '1' } keys %$keys), scalar(keys %$keys),
	'immediate: Redis holds every answer stored before');

# A writer commits versions of listing 3 as fast as it can; the last
# acknowledged one must survive the crash.
my $pipe;
my $writer = open($pipe, '-|');
die "fork: $!" unless defined $writer;
if ($writer == 0)
{
	eval {
		my $dbh = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
		$| = 1;
		for my $v (1 .. 1_000_000)
		{
			last unless $dbh && $dbh->do("UPDATE housing.listings SET price_cents = $v WHERE id = 3");
			print "$v\n";
		}
	};
	POSIX::_exit(0);    # no END block of the test in this process
}
usleep(700_000);
$node->stop('immediate');
my @acked = <$pipe>;
close $pipe;
chomp @acked;
my $last_acked = $acked[-1] // 0;
cmp_ok(scalar @acked, '>', 10, "immediate: the writer had $last_acked commits acknowledged when the server went down");
$node->start;
like(slurp_file($node->logfile), qr/database system was interrupted|was not properly shut down/,
	'immediate: the start went through crash recovery');

my $v3 = $node->safe_psql('postgres', 'SET housing_cache.enabled = off; SELECT price_cents FROM housing.listings WHERE id = 3');
cmp_ok($v3, '>=', $last_acked, "immediate: listing 3 is at version $v3, not older than the last acknowledged ($last_acked)");
is(scalar(grep { $redis->cli('EXISTS', $_) eq '1' } keys %$keys), scalar(keys %$keys),
	'immediate: Redis still holds every answer stored before the crash');
check_after_fault('immediate', $keys);

# --- a backend crash: the postmaster restarts every process --------------------

$keys = warm();
my $victim = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
my $victim_pid = $victim->selectrow_array('SELECT pg_backend_pid()');
# The victim has a write of its own in flight (uncommitted) when it dies.
$victim->do('BEGIN');
$victim->do('UPDATE housing.listings SET price_cents = 999999 WHERE id = 4');
kill 'KILL', $victim_pid;
ok( $node->poll_query_until('postgres', 'SELECT true'), 'backend crash: the server accepts connections again');
like(slurp_file($node->logfile), qr/all server processes terminated; reinitializing/,
	'backend crash: the postmaster reinitialized');
$victim->disconnect;
unlike(truth('housing_cache.get_listing(4)'), qr/999999/, 'backend crash: the uncommitted write is gone');
check_after_fault('backend crash', $keys);

# --- max_connections reached ----------------------------------------------------

# The truth for listing $id (the cache off, in a superuser session: a
# reserved slot), remembered until the listing is written.
my %truth_cache;
sub truth_cached
{
	my ($id) = @_;
	return $truth_cache{$id} //= truth("housing_cache.get_listing($id)");
}

# 12 - 3 reserved: 9 ordinary sessions.
my @sessions;
for (1 .. 20)
{
	my $dbh = DBI->connect($dsn, 'app', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	if (!$dbh)
	{
		like($DBI::errstr, qr/too many clients already|remaining connection slots are reserved/,
			'max_connections: the next session gets PostgreSQL\'s own error');
		last;
	}
	push @sessions, $dbh;
}
cmp_ok(scalar @sessions, '>=', 5, scalar(@sessions) . ' sessions were open when the limit was reached');

my @errors;
my %seen_tier;
for my $round (1 .. 3)
{
	for my $i (0 .. $#sessions)
	{
		my $dbh = $sessions[$i];
		my $id = 1 + ($i + $round) % 10;
		my $got = $dbh->selectrow_array("SELECT housing_cache.get_listing($id)::text");
		push @errors, $dbh->errstr if $dbh->err;
		my $tier = $dbh->selectrow_array('SELECT tier FROM housing_cache.last_lookup()');
		$seen_tier{$tier // 'none'}++;
		push @errors, "listing $id: wrong answer" unless defined $got && $got eq truth_cached($id);
	}
	# one of the sessions writes; every session must read the new version
	my $v = 5000 + $round;
	push @errors, $sessions[0]->errstr
	  unless $sessions[0]->do("UPDATE housing.listings SET price_cents = $v WHERE id = 5");
	delete $truth_cache{5};
	for my $dbh (@sessions)
	{
		my $got = $dbh->selectrow_array(q{SELECT (housing_cache.get_listing(5)->>'price_cents')::bigint});
		push @errors, "listing 5 read $got after $v was committed" unless defined $got && $got == $v;
	}
}
is_deeply(\@errors, [], 'max_connections: the open sessions read and write without error, never stale');
cmp_ok(($seen_tier{l1} // 0) + ($seen_tier{l2} // 0), '>', 0, 'max_connections: the open sessions are served from the cache');
ok($node->safe_psql('postgres', 'SELECT 1') eq '1', 'max_connections: a superuser still gets a reserved slot');

(pop @sessions)->disconnect;
my $again = DBI->connect($dsn, 'app', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
ok($again, 'max_connections: once a session ends, a new one connects');
is($again && $again->selectrow_array(q{SELECT housing_cache.get_listing(5)->>'price_cents'}), 5003,
	'max_connections: ... and reads the current answer');
$_->disconnect for grep { defined } @sessions, $again;

$node->stop;
$redis->stop;
done_testing();
