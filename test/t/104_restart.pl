# A server restart must not bring old answers back.
#
# Generations live in shared memory and start again from zero at every
# start, so an answer stored in Redis before a restart could carry the very
# key of a later read.  The restart epoch in every key prevents that: after
# a restart L1 is empty and nothing stored in Redis before it is reachable,
# so the first read runs the query ('miss'), whatever Redis still holds.
#
# Cases: fill, write, restart, read (the dangerous one: the generation after
# the restart equals the one of the first, now stale, answer); fill, restart
# without writes, read; fill, restart, write, read; a crash restart (a
# backend killed with SIGKILL).
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('restart',
	redis => $redis,
	conf => "restart_after_crash = on");

$node->safe_psql('postgres', q{
CREATE SCHEMA rs;
CREATE TABLE rs.items (id int PRIMARY KEY, version int NOT NULL);
INSERT INTO rs.items SELECT i, 1 FROM generate_series(1, 20) AS i;
SELECT housing_cache.watch_table('rs.items');
SELECT housing_cache.register_query('rs.item',
  $q$SELECT json_build_object('id', id, 'version', version) FROM rs.items WHERE id = $1$q$,
  '{int}', '{rs.items/id=$1}');
});

# One cached read in a new session: version, tier and key.
sub read_item
{
	my ($id) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT housing_cache.fetch('rs.item', '$id')::json->>'version';\n"
		  . "SELECT tier || ' ' || key FROM housing_cache.last_lookup();");
	my ($version, $lookup) = split /\n/, $out;
	my ($tier, $key) = split / /, $lookup;
	return { version => $version, tier => $tier, key => $key };
}

sub set_version
{
	my ($id, $v) = @_;
	$node->safe_psql('postgres', "UPDATE rs.items SET version = $v WHERE id = $id");
}

# --- fill, write, restart, read ---------------------------------------------

# Item 1 at version 1 is cached under generation 0 of its tag...
my $r = read_item(1);
is_deeply([ $r->{tier}, $r->{version} ], [ 'miss', 1 ], 'item 1: first read runs the query');
my $old_key = $r->{key};
is(read_item(1)->{tier}, 'l1', 'item 1: second read is an L1 hit');
is($redis->cli('EXISTS', $old_key), '1', 'item 1: its answer is in Redis');

# ...then written (generation 1) and cached again at version 2.
set_version(1, 2);
$r = read_item(1);
is_deeply([ $r->{tier}, $r->{version} ], [ 'miss', 2 ], 'item 1: after the write, the new version');
isnt($r->{key}, $old_key, 'item 1: ... under a new key');
is(read_item(1)->{tier}, 'l1', 'item 1: ... then cached');

# Item 2: cached, nothing written (for the restart without writes).
is(read_item(2)->{version}, 1, 'item 2: cached at version 1');
my $key2 = read_item(2)->{key};

# Item 3: cached now, written after the restart.
is(read_item(3)->{version}, 1, 'item 3: cached at version 1');

$node->restart;

# Generations are back at 0: without the epoch the key of item 1 would be
# $old_key again, whose answer in Redis is version 1.
is($redis->cli('EXISTS', $old_key), '1', 'the stale answer of item 1 is still in Redis');
$r = read_item(1);
is($r->{version}, 2, 'item 1 after the restart: the current version, not the one Redis still holds');
is($r->{tier}, 'miss', 'item 1 after the restart: first read runs the query (L1 empty, old L2 entries unreachable)');
isnt($r->{key}, $old_key, 'item 1 after the restart: a key unlike the one before the write');
is(read_item(1)->{tier}, 'l1', 'item 1 after the restart: second read is an L1 hit');

# Restart without writes: still right, filled again once.
$r = read_item(2);
is_deeply([ $r->{tier}, $r->{version} ], [ 'miss', 1 ],
	'item 2 after the restart, no write: right answer, from the database');
isnt($r->{key}, $key2, 'item 2 after the restart: a new key (new epoch)');
is($redis->cli('EXISTS', $key2), '1', '... although its old answer is still in Redis');
is(read_item(2)->{tier}, 'l1', 'item 2 after the restart: then cached');

# Restart, then write, then read.
set_version(3, 2);
$r = read_item(3);
is_deeply([ $r->{tier}, $r->{version} ], [ 'miss', 2 ],
	'item 3: written after the restart, read: the new version');
is(read_item(3)->{version}, 2, 'item 3: and again, cached');

# --- a crash restart starts a new epoch too ---------------------------------

$r = read_item(4);
is($r->{version}, 1, 'item 4: cached at version 1');
is(read_item(4)->{tier}, 'l1', 'item 4: an L1 hit before the crash');
my $key4 = $r->{key};
set_version(4, 2);
is(read_item(4)->{version}, 2, 'item 4: version 2 cached before the crash');

my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
kill 'KILL', $pid;
$bg->{run}->kill_kill;
# The postmaster notices, reinitializes shared memory and accepts again.
ok( $node->poll_query_until('postgres',
		"SELECT pg_postmaster_start_time() IS NOT NULL AND "
		  . "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') >= 1"),
	'the server is back after the crash');
like(slurp_file($node->logfile), qr/all server processes terminated; reinitializing/,
	'the server went through a crash restart');

$r = read_item(4);
is($r->{version}, 2, 'item 4 after the crash restart: the current version');
is($r->{tier}, 'miss', 'item 4 after the crash restart: first read runs the query');
isnt($r->{key}, $key4, 'item 4 after the crash restart: not the key of its first, stale answer');

is(stat($node, 'redis_errors'), 0, 'no Redis error along the way');

$node->stop;
$redis->stop;

done_testing();
