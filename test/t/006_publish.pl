# Committed invalidations are published on the Redis channel
# (housing_cache.channel) as one JSON message per transaction, listing the
# tags the transaction wrote; a rolled-back transaction publishes nothing;
# a failed publish (Redis down) neither fails the write nor stops it from
# invalidating, and is counted in publish_failures.
use strict;
use warnings;

use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('publish', redis => $redis);

# Ten listings: ids 1-5 in Boston, 6-10 in Denver; nothing depends on now().
$node->safe_psql('postgres', ten_listings_sql());

my $channel = $node->safe_psql('postgres', 'SHOW housing_cache.channel');
is($channel, 'housing_cache:invalidations', 'the default channel');
my $sysid = $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');

# --- a subscriber: redis-cli SUBSCRIBE in the background -------------------
# Its output (not a terminal) is raw: each reply element on its own line,
# "message", the channel, then the payload.
my $sub_out = '';
my $sub_err = '';
my $sub = IPC::Run::start(
	[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, 'SUBSCRIBE', $channel ],
	'<', \undef, '>', \$sub_out, '2>', \$sub_err);

# Never leave the subscriber behind, whatever happens.
END { eval { $sub->kill_kill if $sub; }; }

sub wait_for_output
{
	my ($re, $secs) = @_;
	my $deadline = time + $secs;
	while ($sub_out !~ $re)
	{
		return 0 if time > $deadline || !$sub->pumpable;
		$sub->pump_nb;
		usleep(10_000);
	}
	return 1;
}

# The next message on the channel, decoded; undef if none came in time.
# Heartbeats are kept aside in @heartbeats unless asked for.
my @heartbeats;
my @pending;    # the rest of a payload that carried several messages

sub next_message
{
	my ($secs, $with_heartbeats) = @_;
	my $re = qr/message\n\Q$channel\E\n([^\n]*)\n/;
	my $deadline = time + ($secs // 30);
	while (1)
	{
		if (!@pending)
		{
			return undef unless wait_for_output($re, $deadline - time);
			$sub_out =~ s/^.*?$re//s or return undef;
			push @pending, channel_messages($1);
			next;
		}
		my $m = shift @pending;
		return $m if $with_heartbeats || ($m->{type} // '') ne 'heartbeat';
		push @heartbeats, $m;
	}
}

ok(wait_for_output(qr/^subscribe\n\Q$channel\E\n1\n/, 30), 'the subscriber is subscribed')
  or diag("subscriber output: '$sub_out', errors: '$sub_err'");
$sub_out =~ s/^subscribe\n\Q$channel\E\n1\n//;

sub sorted { return [ sort @{ $_[0] } ] }

# A counter of housing_cache.stats once it reached $want (or after 30 s):
# the publisher worker counts publishes and failures after the commit, and
# after the subscriber may already have the message.
sub stat_reaches
{
	my ($node, $column, $want) = @_;
	my $deadline = time + 30;
	my $v = stat($node, $column);
	while ($v < $want && time < $deadline)
	{
		usleep(50_000);
		$v = stat($node, $column);
	}
	return $v;
}

# --- a rolled-back transaction, then a committed one ----------------------------
my $publishes0 = stat($node, 'publishes');
$node->safe_psql('postgres',
	'BEGIN; UPDATE housing.listings SET price_cents = 1 WHERE id = 4; ROLLBACK;');

my $lsn_before = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my $xid = $node->safe_psql('postgres', q{
BEGIN;
UPDATE housing.listings SET price_cents = 39900000 WHERE id = 1;
SELECT pg_current_xact_id();
COMMIT;});

my $m = next_message();
ok(defined $m, 'a message arrived after the commit');
is($m->{xid}, $xid, 'the first message is the committed transaction\'s: the rollback published nothing');
is($m->{v}, 1, 'message format version 1');
is($m->{type}, 'invalidation', 'of type invalidation');
like($m->{seq}, qr/^\d+$/, 'numbered');
is($m->{cluster}, $sysid, 'the cluster is the system identifier');
is($m->{database}, 'postgres', 'the database is named');
like($m->{epoch}, qr/^\d+$/, 'the epoch is a number, as a string');
is_deeply(sorted($m->{tags}),
	[ 'housing.listings', 'housing.listings/city=Boston', 'housing.listings/id=1' ],
	'the tags are the table, the city and the row written');
ok(JSON::PP::is_bool($m->{truncated}) && !$m->{truncated}, 'the tag list is not truncated');
like($m->{lsn}, qr{^[0-9A-F]+/[0-9A-F]+$}, 'the LSN is an LSN');
is($node->safe_psql('postgres',
		"SELECT '$m->{lsn}'::pg_lsn > '$lsn_before'::pg_lsn "
		  . "AND '$m->{lsn}'::pg_lsn <= pg_current_wal_insert_lsn()"),
	't', 'the LSN is the commit\'s: after the transaction began, not past the WAL written');
is(stat_reaches($node, 'publishes', $publishes0 + 1), $publishes0 + 1, 'one publish counted');
my $epoch = $m->{epoch};
my $seq = $m->{seq};

# --- a listing moved between cities --------------------------------------------
$node->safe_psql('postgres', "UPDATE housing.listings SET city = 'Denver' WHERE id = 2");
$m = next_message();
ok(defined $m, 'a message for the move');
is_deeply(sorted($m->{tags}),
	[
		'housing.listings', 'housing.listings/city=Boston',
		'housing.listings/city=Denver', 'housing.listings/id=2'
	],
	'the move lists both cities and the row');
is($m->{epoch}, $epoch, 'the epoch is the same until the server restarts');
is($m->{seq}, $seq + 1, 'the next message has the next number');
$seq = $m->{seq};

# --- several rows in one transaction: one message -----------------------------
$node->safe_psql('postgres', q{
BEGIN;
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms,
    bathrooms, area_sqm, lat, lon)
VALUES (11, 'New 11', 'Boston', 'Center', 1000000, 1, 1, 30, 0, 0),
       (12, 'New 12', 'Chicago', 'Loop', 2000000, 1, 1, 30, 0, 0);
DELETE FROM housing.listings WHERE id = 10;
COMMIT;});
$m = next_message();
is_deeply(sorted($m->{tags}),
	[
		'housing.listings', 'housing.listings/city=Boston',
		'housing.listings/city=Chicago', 'housing.listings/city=Denver',
		'housing.listings/id=10', 'housing.listings/id=11',
		'housing.listings/id=12'
	],
	'one message lists every tag of the transaction, once');

# --- numbers, heartbeats, "*" and truncated messages (edge/README.md) -----------
$seq = $m->{seq};
my @seqs;
for my $id (1 .. 3)
{
	$node->safe_psql('postgres', "UPDATE housing.listings SET price_cents = $id WHERE true");
	push @seqs, next_message()->{seq};
}
is_deeply(\@seqs, [ $seq + 1 .. $seq + 3 ], 'commits are numbered one after the other');
$seq = $seqs[-1];

# A heartbeat says the last number given; none comes from a rolled-back write.
$node->safe_psql('postgres', 'BEGIN; UPDATE housing.listings SET price_cents = 0; ROLLBACK;');
@heartbeats = ();
my $hb = next_message(5, 1);
$hb = next_message(5, 1) while $hb && ($hb->{type} // '') ne 'heartbeat';
ok($hb, 'a heartbeat within 5 s') or diag("messages so far: $sub_out");
is_deeply([ @{$hb}{qw(v type cluster epoch seq)} ], [ 1, 'heartbeat', $sysid, $epoch, $seq ],
	'it names the cluster, the epoch and the last number given');
my $t0 = time;
my $hb2 = next_message(5, 1);
cmp_ok(time - $t0, '<', 3, '... and comes again about every second (housing_cache.heartbeat_ms)');

# purge_edge(), a query registered: "*", numbered, without an LSN when
# nothing was written
$node->safe_psql('postgres', 'SELECT housing_cache.purge_edge()');
$m = next_message();
is_deeply([ $m->{tags}, $m->{seq}, $m->{xid}, $m->{lsn} ], [ ['*'], $seq + 1, undef, undef ],
	'purge_edge(): "*", the next number, no xid and no LSN');
$node->safe_psql('postgres',
	q{SELECT housing_cache.register_query('pub_probe', 'SELECT 1::text::json', '{}', '{housing.listings}')});
$m = next_message();
is_deeply($m->{tags}, ['*'], 'registering a query: "*"');
$node->safe_psql('postgres', q{SELECT housing_cache.unregister_query('pub_probe')});
$m = next_message();
is_deeply($m->{tags}, ['*'], 'removing it: "*"');
$seq = $m->{seq};

# A message with more tags than publish_max_tags names T/* for its tables.
$node->safe_psql('postgres', q{
SET housing_cache.publish_max_tags = 2;
UPDATE housing.listings SET price_cents = price_cents + 1;});
$m = next_message();
ok($m->{truncated}, 'past publish_max_tags the message is truncated');
ok((grep { $_ eq 'housing.listings/*' } @{ $m->{tags} }) && (grep { $_ eq 'housing.listings' } @{ $m->{tags} }),
	'... and lists the table and its reset tag, which every answer of it carries')
  or diag(explain($m->{tags}));
is($m->{seq}, $seq + 1, '... numbered like any other');

# --- TRUNCATE, and an explicit invalidate() ----------------------------------------
$node->safe_psql('postgres', 'TRUNCATE housing.listings');
$m = next_message();
is_deeply(sorted($m->{tags}), [ 'housing.listings', 'housing.listings/*' ],
	'TRUNCATE lists the table and its reset tag');

$node->safe_psql('postgres', "SELECT housing_cache.invalidate('housing.listings/city=Boston')");
$m = next_message();
is_deeply($m->{tags}, ['housing.listings/city=Boston'], 'invalidate() lists its tag');

# Nothing else was published.
$node->safe_psql('postgres', 'SELECT housing_cache.search_listings()');
ok(!defined next_message(1.5), 'reads publish nothing');

$sub->kill_kill;
undef $sub;

# --- Redis down: the write commits, the publish fails and is counted ----------------
$node->safe_psql('postgres', q{
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms,
    bathrooms, area_sqm, lat, lon)
VALUES (20, 'Listing 20', 'Boston', 'Center', 5000000, 2, 1, 40, 0, 0);});
is($node->safe_psql('postgres',
		'SELECT (housing_cache.get_listing(20))->>\'title\''),
	'Listing 20', 'listing 20 read once');
like($node->safe_psql('postgres',
		'SELECT housing_cache.get_listing(20) IS NOT NULL; SELECT tier FROM housing_cache.last_lookup()'),
	qr/^t\nl[12]$/, 'listing 20 is cached');

# the heartbeat worker's own publishes would fail too: counted here is the write's
$node->safe_psql('postgres', 'ALTER SYSTEM SET housing_cache.heartbeat_ms = 0; SELECT pg_reload_conf()');
usleep(500_000);
$redis->stop;
my $failures0 = stat($node, 'publish_failures');
$publishes0 = stat($node, 'publishes');
my ($ret, $out, $err) = $node->psql('postgres',
	"UPDATE housing.listings SET title = 'Listing 20, renamed' WHERE id = 20");
is($ret, 0, 'with Redis down, the UPDATE commits');
is($err, '', '... without an error or a warning');
is(stat_reaches($node, 'publish_failures', $failures0 + 1), $failures0 + 1,
	'... and its failed publish is counted (by the publisher worker, soon after)');
is(stat($node, 'publishes'), $publishes0, '... and not as a publish');
is($node->safe_psql('postgres', 'SELECT title FROM housing.listings WHERE id = 20'),
	'Listing 20, renamed', 'the write is committed');
is($node->safe_psql('postgres',
		"SELECT (housing_cache.get_listing(20))->>'title'; SELECT tier FROM housing_cache.last_lookup()"),
	"Listing 20, renamed\nmiss", 'the write invalidated the cached listing anyway');

$node->stop;

done_testing();
