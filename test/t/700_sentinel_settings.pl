# Redis Sentinel settings, and discovery on a small setup.
#
#   - housing_cache.redis_sentinels, redis_sentinel_master: malformed lists,
#     ports out of range, too many sentinels, an empty master name while
#     sentinels are set are refused with a message that says what is wrong
#     (SET, and a reload of postgresql.conf, which keeps the old value);
#   - redis_sentinel_password and redis_sentinel_password_file: superusers
#     only, to set and to see (SHOW, current_setting, pg_settings), and the
#     password never reaches the server log;
#   - with sentinels set, redis_host/redis_port are not used: the master is
#     discovered (a dead sentinel first in the list is skipped), confirmed,
#     shown as housing_cache.stats.redis_master, counted in
#     redis_discoveries, and answers are stored and served there; the
#     sentinels are asked once, not per session or per call;
#   - a session that SETs other sentinels or another master name discovers
#     for itself (unknown name, dead sentinels: misses, never an error) and
#     does not move the other sessions.
use strict;
use warnings;

use DBI;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HousingCache::Redis;
use HousingCache::Sentinel;
use HousingCache::Test;

my $redis_pw = 'redis-pw-700-Qx1';
my $sentinel_pw = 'sentinel-pw-700-Zk9';

my $master = HousingCache::Redis->new(name => 'master', password => $redis_pw);
my ($sentinel) = HousingCache::Sentinel->group(1, master => $master, quorum => 1,
	master_name => 'hc700', password => $sentinel_pw);

# a port where nothing listens: neither redis_port nor the first sentinel
my $dead = HousingCache::Redis->new(name => 'dead');
my $dead_port = $dead->port;
$dead->stop;

my $pwfile = PostgreSQL::Test::Utils::tempdir() . '/sentinel_pw';
PostgreSQL::Test::Utils::append_to_file($pwfile, "$sentinel_pw\n");
chmod 0600, $pwfile;

my $node = new_node('sentinel_settings',
	redis_port => $dead_port,
	conf => join("\n",
		'log_statement = none',
		'log_min_error_statement = log',
		"housing_cache.redis_password = '$redis_pw'",
		'housing_cache.l1_size_mb = 0',
		'housing_cache.breaker_backoff_ms = 100',
		'housing_cache.breaker_max_backoff_ms = 400',
		'housing_cache.redis_sentinel_master = hc700',
		"housing_cache.redis_sentinels = '127.0.0.1:$dead_port, 127.0.0.1:" . $sentinel->port . "'",
		"housing_cache.redis_sentinel_password_file = '$pwfile'"));
$node->safe_psql('postgres', 'CREATE ROLE snoop LOGIN;');

# --- refused values ------------------------------------------------------------

sub refused
{
	my ($setting, $value, $re, $name) = @_;
	(my $v = $value) =~ s/'/''/g;
	my ($rc, $out, $err) = $node->psql('postgres', "SET housing_cache.$setting = '$v'");
	isnt($rc, 0, "$name: refused");
	like($err, $re, "$name: the message says why");
	return;
}

refused('redis_sentinels', 'sentinel.example', qr/"sentinel\.example" is not host:port/, 'no port');
refused('redis_sentinels', '127.0.0.1:0', qr/port of "127\.0\.0\.1:0" must be a number from 1 to 65535/, 'port 0');
refused('redis_sentinels', '127.0.0.1:65536', qr/must be a number from 1 to 65535/, 'port 65536');
refused('redis_sentinels', '127.0.0.1:26379x', qr/must be a number from 1 to 65535/, 'port not a number');
refused('redis_sentinels', '127.0.0.1:', qr/must be a number from 1 to 65535/, 'empty port');
refused('redis_sentinels', ':26379', qr/":26379" has no host/, 'no host');
refused('redis_sentinels', 'a:1,,b:2', qr/has an empty entry/, 'empty entry');
refused('redis_sentinels', 'a:1, b:2,', qr/has an empty entry/, 'trailing comma');
refused('redis_sentinels', 'a b:1', qr/contains blanks/, 'blank in a host');
refused('redis_sentinels', '::1:26379', qr/IPv6 address in brackets/, 'IPv6 without brackets');
refused('redis_sentinels', '[::1:26379', qr/is not \[address\]:port/, 'unclosed bracket');
refused('redis_sentinels', 'a:1, a:1', qr/lists "a:1" twice/, 'duplicate');
refused('redis_sentinels', join(',', map { "10.0.0.$_:26379" } 1 .. 17),
	qr/lists more than 16 sentinels/, '17 sentinels');
refused('redis_sentinel_master', '', qr/redis_sentinel_master must not be empty while housing_cache\.redis_sentinels is set/,
	'empty master name with sentinels');
refused('redis_sentinel_master', 'my master', qr/must not contain blanks/, 'blank in the master name');

my ($rc, $out, $err) = $node->psql('postgres', q{
BEGIN;
SET LOCAL housing_cache.redis_sentinels = '';
SET LOCAL housing_cache.redis_sentinel_master = '';
SET LOCAL housing_cache.redis_sentinels = 's1.example:26379';
ROLLBACK;});
like($err, qr/redis_sentinels is set, but housing_cache\.redis_sentinel_master is empty/,
	'sentinels set while the master name is empty: refused');

is($node->safe_psql('postgres', q{
BEGIN;
SET LOCAL housing_cache.redis_sentinels = ' [::1]:26379 , s2.example:26380,10.0.0.3:1 ';
SELECT '<' || current_setting('housing_cache.redis_sentinels') || '>';
ROLLBACK;}), '< [::1]:26379 , s2.example:26380,10.0.0.3:1 >',
	'a valid list (IPv6 in brackets, blanks around entries) is taken');
is($node->safe_psql('postgres', q{
BEGIN;
SET LOCAL housing_cache.redis_sentinels = '';
SET LOCAL housing_cache.redis_sentinel_master = '';
SELECT '<' || current_setting('housing_cache.redis_sentinel_master') || '>';
ROLLBACK;}), '<>', 'an empty master name without sentinels is taken');
is($node->safe_psql('postgres', q{SELECT context FROM pg_settings
   WHERE name = 'housing_cache.redis_sentinels'}), 'superuser',
   'redis_sentinels: superuser context, like the other Redis settings');

# --- an invalid value in postgresql.conf: logged, the old value stays ----------------
{
	my $offset = -s $node->logfile;
	$node->append_conf('postgresql.conf', "housing_cache.redis_sentinels = '127.0.0.1:99999'");
	$node->reload;
	my $logged = 0;
	for (1 .. 100)
	{
		my $log = slurp_file($node->logfile, $offset);
		$logged = 1, last if $log =~ /port of "127\.0\.0\.1:99999" must be a number from 1 to 65535/;
		usleep(100_000);
	}
	ok($logged, 'reload with an invalid list: the message is logged');
	like($node->safe_psql('postgres', 'SHOW housing_cache.redis_sentinels'),
		qr/127\.0\.0\.1:$dead_port, 127\.0\.0\.1:\d+/, '... and the sentinels in use stay');
	# later lines win: put the good value back
	$node->append_conf('postgresql.conf', "housing_cache.redis_sentinels = '127.0.0.1:$dead_port, 127.0.0.1:"
		  . $sentinel->port . "'");
	$node->reload;
}

# --- the password: superusers only -------------------------------------------------
my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my $snoop = DBI->connect($dsn, 'snoop', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 }) or die;
for my $setting (qw(redis_sentinel_password redis_sentinel_password_file))
{
	ok(!defined $snoop->selectrow_array("SHOW housing_cache.$setting"), "$setting: SHOW refused to a non-superuser");
	like($snoop->errstr // '', qr/must be superuser|pg_read_all_settings|permission denied/,
		"$setting: ... with a privilege error");
	ok(!defined $snoop->selectrow_array("SELECT current_setting('housing_cache.$setting')"),
		"$setting: current_setting() refused");
	is($snoop->selectrow_array("SELECT count(*) FROM pg_settings WHERE name = 'housing_cache.$setting'"), 0,
		"$setting: not in pg_settings for a non-superuser");
	ok(!$snoop->do("SET housing_cache.$setting = 'x'"), "$setting: SET refused to a non-superuser");
}
ok(!$snoop->do("SET housing_cache.redis_sentinels = '127.0.0.1:1'"), 'redis_sentinels: SET refused to a non-superuser');
ok(!$snoop->do("SET housing_cache.redis_sentinel_master = 'evil'"), 'redis_sentinel_master: SET refused to a non-superuser');
is($snoop->selectrow_array("SELECT count(*) FROM pg_settings WHERE setting LIKE '%$sentinel_pw%'"), 0,
	'the sentinel password is in no setting a non-superuser sees');
is($node->safe_psql('postgres', 'SHOW housing_cache.redis_sentinel_password_file'), $pwfile,
	'a superuser sees the password file setting');

# --- discovery -------------------------------------------------------------------------
# CREATE EXTENSION published an invalidation message: that discovered the
# master (redis_master is '' until then: see the session below).
$node->safe_psql('postgres', ten_listings_sql());
my $master_addr = '127.0.0.1:' . $master->port;
is($node->safe_psql('postgres', 'SELECT redis_master FROM housing_cache.stats'), $master_addr,
	'the master was discovered through the second sentinel (the first is dead)');
is(HousingCache::Test::stat($node, 'redis_discoveries'), 1, 'one discovery');

my $get = sub { cached_call(sub { $node->safe_psql('postgres', $_[0]) }, "housing_cache.get_listing($_[0])") };
my $first = $get->(1);
is($first->{json}{id}, 1, 'first call answers');
is(HousingCache::Test::stat($node, 'redis_discoveries'), 1, 'still one discovery');
my $second = $get->(1);
is($second->{tier}, 'l2', 'the answer was stored on the master and is served from it');
like($master->cli('EXISTS', $second->{key}), qr/^1$/, '... under its key');

# many sessions: nobody asks the sentinels again
my @sessions = map { $node->background_psql('postgres') } 1 .. 6;
for my $i (0 .. $#sessions)
{
	my $r = cached_call(sub { $sessions[$i]->query_safe($_[0]) }, 'housing_cache.get_listing(' . (1 + $i % 3) . ')');
	ok($r->{tier} eq 'l2' || $r->{tier} eq 'miss', "session $i is served ($r->{tier})");
}
is(HousingCache::Test::stat($node, 'redis_discoveries'), 1, 'six more sessions: still one discovery');
is(HousingCache::Test::stat($node, 'redis_failovers'), 0, 'no failover');

# --- a session with its own settings --------------------------------------------------
{
	my $s = $sessions[0];
	$s->query_safe('SET housing_cache.redis_sentinel_master = nosuch700');
	my $r = cached_call(sub { $s->query_safe($_[0]) }, 'housing_cache.get_listing(2)');
	is($r->{json}{id}, 2, 'a master name the sentinels do not know: the answer, no error');
	is($r->{tier}, 'miss', '... computed');
	is($s->query_safe('SELECT redis_master FROM housing_cache.stats'), '',
		'... and that session knows no master');
	is($node->safe_psql('postgres', 'SELECT redis_master FROM housing_cache.stats'), $master_addr,
		'the other sessions still use the master');
	$s->query_safe("SET housing_cache.redis_sentinels = '127.0.0.1:$dead_port'");
	$s->query_safe('RESET housing_cache.redis_sentinel_master');
	$r = cached_call(sub { $s->query_safe($_[0]) }, 'housing_cache.get_listing(3)');
	is($r->{json}{id}, 3, 'no sentinel answers: the answer, no error');
	$s->query_safe('RESET housing_cache.redis_sentinels');
}
# the failed discoveries opened the breaker for everyone, as a bad
# redis_host set in a session does: it closes by itself
my $served = 0;
for (1 .. 100)
{
	$served = 1, last if $get->(1)->{tier} eq 'l2';
	usleep(100_000);
}
ok($served, 'answers are served from the master again');
is($node->safe_psql('postgres', 'SELECT breaker_state FROM housing_cache.stats'), 'closed', 'the breaker is closed');
$_->quit for @sessions;

my $log = slurp_file($node->logfile);
like($log, qr/Redis master "hc700" is at \Q$master_addr\E/, 'the discovery is logged');
like($log, qr/Sentinel 127\.0\.0\.1:\d+ does not know master "nosuch700"/, 'an unknown master name is logged');
unlike($log, qr/\Q$sentinel_pw\E/, 'the sentinel password is not in the server log');
unlike($log, qr/\Q$redis_pw\E/, 'the Redis password is not in the server log');

$node->stop;
done_testing();
