# Redis misbehaving in ways other than being down: slow past the command
# timeout, returning garbage, truncated, copied or forged values under the
# keys the extension uses, out of memory (noeviction), out of client slots,
# and restarted from an old snapshot after PostgreSQL committed writes.
#
# For each: no error reaches the caller, the answer is the database's
# current one (never an older one), and the cache recovers by itself.  A
# stored value that does not verify is a miss counted in l2_rejects, and the
# answer computed instead replaces it.
#
# L1 is off, so every hit is a Redis hit and every value Redis returns is
# looked at.  Values are read and written with a binary-safe client
# (test/reliability/HcReliability/Resp.pm): their header has NUL bytes.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../reliability";

use DBI;
use Digest::SHA qw(hmac_sha256 sha256);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HcReliability::Resp;
use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new(args => [ '--enable-debug-command', 'local' ]);
my $node = new_node('redis_faults',
	redis => $redis,
	conf => join("\n",
		'log_statement = none',
		'housing_cache.l1_size_mb = 0',
		'housing_cache.breaker_backoff_ms = 100',
		'housing_cache.breaker_max_backoff_ms = 400'));

$node->safe_psql('postgres', q{
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
     area_sqm, lat, lon, created_at, updated_at)
SELECT i, 'Listing ' || i, CASE WHEN i <= 5 THEN 'Boston' ELSE 'Denver' END,
       'Center', 30000000 + i * 1000000, 1 + i % 3, 1.5, 50 + i,
       40 + i / 100.0, -71 - i / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, 10) AS i;
SELECT setval('housing.listings_id_seq', 10);
});

my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my $dbh = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 })
  or die DBI->errstr;
my $resp = HcReliability::Resp->new(port => $redis->port);

# A cached call in the test's session: its answer, how it was served, and
# the error if it failed (which it never should).
sub cached
{
	my ($call) = @_;
	my $row = $dbh->selectrow_arrayref("SELECT ($call)::text");
	return { error => $dbh->errstr } unless $row;
	my ($tier, $key, $reason) =
	  $dbh->selectrow_array('SELECT tier, key, bypass_reason FROM housing_cache.last_lookup()');
	return { value => $row->[0], tier => $tier, key => $key, reason => $reason, error => undef };
}

# The database's answer, the cache off.
sub truth
{
	my ($call) = @_;
	my $out = $node->safe_psql('postgres', "SET housing_cache.enabled = off; SELECT ($call)::text");
	return $out;
}

# Poll, each time in a new session, until $call is served from $tier.
sub poll_tier
{
	my ($call, $tier) = @_;
	my $deadline = time + 15;
	while (time < $deadline)
	{
		my $out = $node->safe_psql('postgres', "SELECT ($call) IS NULL; SELECT tier FROM housing_cache.last_lookup()");
		return 1 if $out eq "f\n$tier";
		usleep(100_000);
	}
	return 0;
}

sub stat_of
{
	my ($col) = @_;
	return scalar $dbh->selectrow_array("SELECT $col FROM housing_cache.stats");
}

# A write from another session, acknowledged when this returns.
sub write_sql { $node->safe_psql('postgres', $_[0]) }

# Make sure the answer of $call is in Redis; returns its key and stored bytes.
sub stored
{
	my ($call) = @_;
	my $r = cached($call);
	$r = cached($call) unless $r->{tier} eq 'l2';
	die "not served from Redis: $r->{tier}" unless $r->{tier} eq 'l2';
	return ($r->{key}, $resp->cmd('GET', $r->{key}));
}

# --- values that must not verify --------------------------------------------
my $call = 'housing_cache.get_listing(1)';
my ($key1, $valid) = stored($call);
my (undef, $valid2) = stored('housing_cache.get_listing(2)');
my (undef, $valid_search) = stored(q{housing_cache.search_listings(city => 'Boston')});
like($key1, qr/^hc:[0-9a-f]{32}$/, "last_lookup().key is the Redis key ($key1)");
is(substr($valid, 0, 4), "HCV\x02", 'stored values are of format 2');
is(length($valid), 64 + length(truth($call)), 'a stored value is a 64-byte header and the answer');

sub with_bytes
{
	my ($v, $offset, $bytes) = @_;
	substr($v, $offset, length $bytes, $bytes);
	return $v;
}

sub remac
{
	my ($v, $hmac_key) = @_;
	my $mac = substr(hmac_sha256(substr($v, 0, 48) . substr($v, 64), $hmac_key), 0, 16);
	return with_bytes($v, 48, $mac);
}

my $payload = substr($valid, 64);
(my $forged_payload = $payload) =~ s/31000000/11000000/ or die "no price in $payload";
my @cases = (
	[ 'garbage', 'garbage' ],
	[ 'an empty string', '' ],
	[ 'a value cut inside its header', substr($valid, 0, 40) ],
	[ 'the header alone', substr($valid, 0, 64) ],
	[ 'a value one byte short', substr($valid, 0, length($valid) - 1) ],
	[ 'a value one byte long', $valid . '}' ],
	[ 'the value of another listing', $valid2 ],
	[ 'the value of a search', $valid_search ],
	[ "another listing's value relabelled with this key's digest",
		with_bytes($valid2, 32, substr($valid, 32, 16)) ],
	[ 'the payload altered (a lower price), MAC kept', substr($valid, 0, 64) . $forged_payload ],
	[ 'the payload altered, MAC computed with an all-zero key',
		remac(substr($valid, 0, 64) . $forged_payload, "\0" x 32) ],
	[ 'the payload altered, MAC computed with the SHA-256 of an empty secret',
		remac(substr($valid, 0, 64) . $forged_payload, sha256('')) ],
	[ 'the TTL extended', with_bytes($valid, 28, "\xff\xff\xff\xff") ],
	[ 'the creation time moved forward', with_bytes($valid, 16, pack('Q<', unpack('Q<', substr($valid, 16, 8)) + 3_600_000_000)) ],
	[ 'format version 1', with_bytes($valid, 0, "HCV\x01") ],
	[ 'an unknown flag', with_bytes($valid, 4, "\x02") ],
	[ 'a forged SQL NULL (no such listing)',
		with_bytes(with_bytes(substr($valid, 0, 64), 4, "\x01"), 12, pack('V', 0)) ],
	[ '2 MB of garbage', 'x' x (2 * 1024 * 1024) ],
);

my $rejects_total0 = stat_of('l2_rejects');
for my $case (@cases)
{
	my ($what, $bad) = @$case;
	my ($key) = stored($call);
	is($resp->cmd('SET', $key, $bad, 'PX', 600000), 'OK', "$what: written under the key");
	my $rejects0 = stat_of('l2_rejects');
	my $r = cached($call);
	is($r->{error}, undef, "$what: no error");
	is($r->{value}, truth($call), "$what: the right answer");
	is_deeply([ $r->{tier}, $r->{key} ], [ 'miss', $key ], "$what: a miss on that key, computed from the database");
	cmp_ok(stat_of("l2_rejects") - $rejects0, ">=", 1, "$what: counted in l2_rejects");
	is(substr($resp->cmd('GET', $key) // '', 0, 4), "HCV\x02", "$what: replaced by a valid value");
	is(cached($call)->{tier}, 'l2', "$what: then served from Redis again");
}
# With L1 off, a miss's owner looks in Redis once more after claiming the
# fill, so one read of a bad value may count it twice.
my $rejected = stat_of('l2_rejects') - $rejects_total0;
cmp_ok($rejected, '>=', scalar @cases, 'l2_rejects counted every bad value');
diag("l2_rejects rose by $rejected for " . scalar(@cases) . ' reads of bad values') if $rejected != @cases;

# A key of another type: Redis answers GET with an error.
{
	my ($key) = stored($call);
	$resp->cmd('DEL', $key);
	$resp->cmd('RPUSH', $key, 'x');
	my $errors0 = stat_of('redis_errors');
	my $r = cached($call);
	is($r->{error}, undef, 'a list under the key: no error');
	is_deeply([ $r->{value}, $r->{tier} ], [ truth($call), 'miss' ], 'a list under the key: the right answer, from the database');
	cmp_ok(stat_of('redis_errors'), '>', $errors0, 'a list under the key: counted in redis_errors');
	is(cached($call)->{tier}, 'l2', 'a list under the key: replaced, then served from Redis');
}

# --- slow: Redis blocks past the command timeout ------------------------------
{
	my $before = cached('housing_cache.get_listing(3)');
	my $sleeper = fork;
	die "fork: $!" unless defined $sleeper;
	if ($sleeper == 0)
	{
		eval { HcReliability::Resp->new(port => $redis->port, timeout => 10)->cmd('DEBUG', 'SLEEP', '1.5') };
		POSIX::_exit(0);
	}
	usleep(200_000);    # Redis is asleep now

	my $t0 = time;
	my $ok = $node->psql('postgres', 'UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = 4');
	my $write_secs = time - $t0;
	is($ok, 0, 'slow Redis: a write commits');
	cmp_ok($write_secs, '<', 1.0, sprintf('slow Redis: the write took %.3f s (publishing is bounded by the command timeout)', $write_secs));

	$t0 = time;
	my $r = cached('housing_cache.get_listing(3)');
	my $read_secs = time - $t0;
	is($r->{error}, undef, 'slow Redis: a read gets no error');
	is($r->{value}, $before->{value}, 'slow Redis: ... and the right answer');
	cmp_ok($read_secs, '<', 0.8, sprintf('slow Redis: ... in %.3f s', $read_secs));
	$r = cached('housing_cache.get_listing(4)');
	is($r->{value}, truth('housing_cache.get_listing(4)'), 'slow Redis: the listing written meanwhile is read at its new version');
	waitpid($sleeper, 0);

	# Recovery by itself: the breaker closes, answers are stored and served again.
	my $deadline = time + 10;
	my $tier = '';
	while (time < $deadline)
	{
		$tier = cached('housing_cache.get_listing(4)')->{tier};
		last if $tier eq 'l2';
		usleep(100_000);
	}
	is($tier, 'l2', 'slow Redis: once it answers again, answers come from Redis again');
	is(scalar $dbh->selectrow_array('SELECT breaker_state FROM housing_cache.stats'), 'closed', 'slow Redis: the breaker closed');
}

# --- a hung Redis: only an answer proves it is back ----------------------------
#
# The breaker lets one backend probe after the backoff; only a reply from
# Redis may close it.  A committing session publishes its invalidation
# message without waiting for the reply: writing it to the socket succeeds
# even when Redis hangs (the kernel buffers it), so it proves nothing.
{
	my $w = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	$w->selectrow_array('SELECT housing_cache.get_listing(9)');    # its Redis connection
	$w->do('UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = 10');
	usleep(200_000);    # Redis has answered that publish
	$redis->pause;
	my $r = cached('housing_cache.get_listing(1)');
	is($r->{error}, undef, 'hung Redis: a read gets no error');
	is(scalar $dbh->selectrow_array('SELECT breaker_state FROM housing_cache.stats'), 'open', 'hung Redis: the breaker opened');
	usleep(300_000);    # past the backoff: the next call is the probe
	my $closes0 = stat_of('breaker_closes');
	ok($w->do('UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = 10'),
		'hung Redis: a write commits (a publish is never the probe)');
	is(stat_of('breaker_closes'), $closes0, 'hung Redis: a publish that got no reply does not close the breaker');
	isnt(scalar $dbh->selectrow_array('SELECT breaker_state FROM housing_cache.stats'), 'closed',
		'hung Redis: the breaker is not closed');
	$redis->resume;
	$w->disconnect;
	ok(poll_tier('housing_cache.get_listing(1)', 'l2'), 'hung Redis: once it answers, served from Redis again');
}

# --- full: maxmemory with noeviction ------------------------------------------
{
	my $c5 = 'housing_cache.get_listing(5)';
	my $c6 = 'housing_cache.get_listing(6)';
	stored($c5);
	is($resp->cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction'), 'OK', 'full: noeviction');
	is($resp->cmd('CONFIG', 'SET', 'maxmemory', '1mb'), 'OK', 'full: maxmemory 1mb');
	my ($n, $reply) = (0, 'OK');
	while (!ref $reply && $n < 2000)
	{
		$reply = $resp->cmd('SET', 'filler:' . $n++, 'f' x 10000);
	}
	like(ref $reply ? $reply->message : '', qr/^OOM/, "full: Redis refuses writes (after $n filler keys)");

	my ($stores0, $errors0) = (stat_of('l2_stores'), stat_of('redis_errors'));
	my $r = cached($c6);
	is($r->{error}, undef, 'full: a miss gets no error');
	is_deeply([ $r->{value}, $r->{tier} ], [ truth($c6), 'miss' ], 'full: ... and the right answer, from the database');
	is(stat_of('l2_stores'), $stores0, 'full: ... which Redis did not store');
	cmp_ok(stat_of('redis_errors'), '>', $errors0, 'full: the refused store is counted in redis_errors');
	is(cached($c6)->{tier}, 'miss', 'full: the same call is computed again');
	is(cached($c5)->{tier}, 'l2', 'full: answers stored before are still served from Redis');
	write_sql('UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = 5');
	$r = cached($c5);
	is_deeply([ $r->{error}, $r->{value} ], [ undef, truth($c5) ], 'full: a listing written meanwhile is read at its new version');
	is(scalar $dbh->selectrow_array('SELECT breaker_state FROM housing_cache.stats'), 'closed',
		'full: the breaker stays closed (Redis answers, it only refuses writes)');

	$resp->cmd('DEL', map { "filler:$_" } 0 .. $n);
	$resp->cmd('CONFIG', 'SET', 'maxmemory', '0');
	cached($c6);
	is(cached($c6)->{tier}, 'l2', 'full: once there is room, answers are stored and served again');
}

# --- no client slot left -------------------------------------------------------
{
	my $c7 = 'housing_cache.get_listing(7)';
	is($resp->cmd('CONFIG', 'SET', 'maxclients', '1'), 'OK', 'maxclients 1 (the test holds the one slot)');
	my ($rc, $out, $err) = (0, '', '');
	$rc = $node->psql('postgres',
		"SELECT ($c7)::text; SELECT tier FROM housing_cache.last_lookup()",
		stdout => \$out, stderr => \$err);
	is_deeply([ $rc, $err ], [ 0, '' ], 'no client slot: a new session reads without error');
	is($out, truth($c7) . "\nmiss", 'no client slot: ... the right answer, from the database');
	$resp->cmd('CONFIG', 'SET', 'maxclients', '10000');
	ok(poll_tier($c7, 'l2'),
		'no client slot: once slots are free, new sessions are served from Redis');
}

# --- restarted from an old snapshot --------------------------------------------
{
	my @calls = map { "housing_cache.get_listing($_)" } 8, 9;
	push @calls, q{housing_cache.search_listings(city => 'Denver')};
	my %old_key = map { $_ => (stored($_))[0] } @calls;
	is($resp->cmd('SAVE'), 'OK', 'snapshot: Redis saved its data (dump.rdb)');
	my %old_value = map { $_ => cached($_)->{value} } @calls;

	write_sql('UPDATE housing.listings SET price_cents = price_cents + 7 WHERE id IN (8, 9)');
	my %new_key = map { $_ => (stored($_))[0] } @calls;
	isnt($new_key{$_}, $old_key{$_}, "snapshot: $_ has a new key after the write") for @calls;

	$resp->close;
	$redis->kill9;
	$redis->start;
	$resp = HcReliability::Resp->new(port => $redis->port);
	is_deeply([ map { $resp->cmd('EXISTS', $old_key{$_}) } @calls ], [ (1) x @calls ],
		'snapshot: after the restart Redis holds the old answers again');
	is_deeply([ map { $resp->cmd('EXISTS', $new_key{$_}) } @calls ], [ (0) x @calls ],
		'snapshot: ... and not the new ones');
	for my $c (@calls)
	{
		my $r = cached($c);
		is($r->{error}, undef, "snapshot: $c: no error");
		is($r->{value}, truth($c), "snapshot: $c: the current answer");
		isnt($r->{value}, $old_value{$c}, "snapshot: $c: not the one the snapshot holds");
	}
	ok(poll_tier('housing_cache.get_listing(8)', 'l2'),
		'snapshot: Redis is used again');
}

$resp->close;
$dbh->disconnect;
$node->stop;
$redis->stop;
done_testing();
