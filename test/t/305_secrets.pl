# Secrets: housing_cache.redis_password and housing_cache.value_secret.
#
#   - AUTH works against a password-protected Redis; a wrong password means
#     misses (never an error for the caller) and a logged error that does
#     not carry the password;
#   - neither setting is readable by a role that is not a superuser: SHOW,
#     SHOW ALL, current_setting() (with and without missing_ok), pg_settings,
#     pg_show_all_settings(), pg_file_settings, pg_stat_activity, error
#     messages; nor may such a role set them (or redirect the cache to a
#     Redis of its own);
#   - neither ever reaches the server log: after a failed AUTH, after a
#     superuser's SET (log_statement = 'none'), with log_min_error_statement
#     = 'log' so that a message logged during a statement would carry the
#     statement's text unless the extension hides it;
#   - values in Redis are authenticated with value_secret: the stored MAC is
#     HMAC-SHA256 under SHA-256(value_secret); a value forged with any other
#     key is a miss counted in l2_rejects, one forged with the right key is
#     accepted (so the MAC is what stops forgeries); rotating the secret
#     makes every stored value a miss.
#
# Not tested, documented: with log_statement = 'all' (or 'ddl'/'mod' for
# ALTER SYSTEM) PostgreSQL logs the text of a SET or ALTER SYSTEM statement
# that carries the password; a setting made with ALTER ROLE/DATABASE ... SET
# is stored in pg_db_role_setting, which every role can read; members of
# pg_read_all_settings may read both settings (as PostgreSQL documents for
# superuser-only settings).  Set the secrets in postgresql.conf (mode 0600).
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

# blanks, a quote, a backslash and a printf directive: passed through intact
my $password = q{redis pw'305 %s\Zq8vT};
my $secret = 'value-secret-305-Kx7Lm';
my $wrong_password = 'wrong-pw-305-Hh3Qa';
my $other_secret = 'rotated-secret-305-Pp2Ww';
my $new_password = 'rotated-pw-305-Tt6Yy';
my @secrets = ($password, $secret, $wrong_password, $other_secret, $new_password);

my $redis = HousingCache::Redis->new(password => $password);
my $node = new_node('secrets',
	redis => $redis,
	conf => join("\n",
		'log_statement = none',
		'log_min_error_statement = log',
		'housing_cache.l1_size_mb = 0',
		'housing_cache.breaker_backoff_ms = 100',
		'housing_cache.breaker_max_backoff_ms = 200',
		"housing_cache.value_secret = '$secret'"));

$node->safe_psql('postgres', q{
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms, area_sqm, lat, lon,
     created_at, updated_at)
SELECT i, 'Listing ' || i, 'Boston', 'Center', 31000000 + i, 2, 1.0, 60, 42, -71,
       timestamptz '2024-01-01 00:00:00+00', timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, 6) AS i;
CREATE ROLE snoop LOGIN;
CREATE ROLE settings_reader LOGIN;
GRANT pg_read_all_settings TO settings_reader;
});

my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;
my $admin = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 }) or die;
my $snoop = DBI->connect($dsn, 'snoop', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 }) or die;

sub leaks
{
	my ($text) = @_;
	return [ grep { index($text // '', $_) >= 0 } @secrets ];
}

sub cached
{
	my ($dbh, $call) = @_;
	my $row = $dbh->selectrow_arrayref("SELECT ($call)::text");
	return { error => $dbh->errstr } unless $row;
	my ($tier, $key) = $dbh->selectrow_array('SELECT tier, key FROM housing_cache.last_lookup()');
	return { value => $row->[0], tier => $tier, key => $key };
}

sub truth
{
	my ($call) = @_;
	return $node->safe_psql('postgres', "SET housing_cache.enabled = off; SELECT ($call)::text");
}

sub stat_of { return scalar $admin->selectrow_array("SELECT $_[0] FROM housing_cache.stats") }

# --- AUTH ----------------------------------------------------------------------------

is(cached($admin, 'housing_cache.get_listing(1)')->{tier}, 'miss', 'AUTH: a first read computes');
is(cached($admin, 'housing_cache.get_listing(1)')->{tier}, 'l2', 'AUTH: the second is served from the password-protected Redis');
cmp_ok($redis->cli('DBSIZE'), '>', 0, 'AUTH: Redis holds the answer');
{
	my $anon = HcReliability::Resp->new(port => $redis->port);
	my $reply = $anon->cmd('GET', 'x');
	like(ref $reply ? $reply->message : '', qr/^NOAUTH/, 'AUTH: that Redis refuses clients without the password');
	$anon->close;
}
is(stat_of('redis_errors'), 0, 'AUTH: no Redis error');

# --- not readable by non-superusers ------------------------------------------------

is($admin->selectrow_array('SHOW housing_cache.redis_password'), $password, 'a superuser can SHOW redis_password');
is($admin->selectrow_array('SHOW housing_cache.value_secret'), $secret, 'a superuser can SHOW value_secret');

for my $guc (qw(housing_cache.redis_password housing_cache.value_secret))
{
	for my $sql ("SHOW $guc", "SELECT current_setting('$guc')", "SELECT current_setting('$guc', true)")
	{
		my $v = $snoop->selectrow_array($sql);
		my $err = $snoop->errstr;
		ok(!defined $v, "snoop: $sql returns nothing");
		is($snoop->state, '42501', "snoop: $sql is refused (42501)");
		is_deeply(leaks($err), [], "snoop: $sql: the error message carries no secret");
	}
}
for my $sql ('SELECT name, setting, reset_val, boot_val FROM pg_settings',
	'SELECT name, setting, reset_val, boot_val FROM pg_show_all_settings()')
{
	my $rows = $snoop->selectall_arrayref($sql);
	ok($rows && @$rows > 100, "snoop: $sql works");
	is_deeply([ grep { $_->[0] =~ /redis_password|value_secret/ } @$rows ], [], "snoop: $sql lists neither setting");
	is_deeply(leaks(join("\n", map { join('|', map { $_ // '' } @$_) } @$rows)), [], "snoop: $sql shows no secret");
}
{
	my $rows = $snoop->selectall_arrayref('SHOW ALL');
	is_deeply(leaks(join("\n", map { join('|', map { $_ // '' } @$_) } @{ $rows || [] })), [], 'snoop: SHOW ALL shows no secret');
	my $v = $snoop->selectrow_array('SELECT count(*) FROM pg_file_settings');
	is($snoop->state, '42501', 'snoop: pg_file_settings (which shows postgresql.conf) is refused');
}

# Setting them, or pointing the cache elsewhere
for my $set (
	"SET housing_cache.redis_password = 'mine'",
	"SET housing_cache.redis_host = '10.0.0.1'",
	'SET housing_cache.redis_port = 1',
	"SET housing_cache.key_prefix = 'x:'",
	"SET housing_cache.value_secret = 'mine'",
	"ALTER SYSTEM SET housing_cache.redis_password = 'mine'")
{
	ok(!$snoop->do($set), "snoop: $set is refused");
	like($snoop->state, qr/^(42501|55P02)$/, "snoop: $set: " . ($snoop->errstr =~ s/\n.*//sr));
}
ok(!$admin->do("SET housing_cache.value_secret = 'mine'"), 'even a superuser cannot change value_secret in a session (reload only)');

# A superuser session's SET is not visible to others through pg_stat_activity
{
	my $other = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	$other->do('SET housing_cache.redis_password = ' . $other->quote($password));
	my $rows = $snoop->selectall_arrayref('SELECT query FROM pg_stat_activity');
	is_deeply(leaks(join("\n", map { $_->[0] // '' } @$rows)), [], 'snoop: pg_stat_activity shows no secret');
	$other->disconnect;
}

# As PostgreSQL documents for superuser-only settings, pg_read_all_settings
# members may read them.
{
	my $reader = DBI->connect($dsn, 'settings_reader', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	is($reader->selectrow_array('SHOW housing_cache.redis_password'), $password,
		'a member of pg_read_all_settings can read redis_password (PostgreSQL\'s rule; grant it with care)');
	$reader->disconnect;
}

# --- a wrong password -----------------------------------------------------------------

# Poll with new sessions (the right password) until $call is served from Redis.
sub wait_l2
{
	my ($call) = @_;
	my $deadline = time + 10;
	while (time < $deadline)
	{
		my $s = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
		cached($s, $call);
		my $tier = cached($s, $call)->{tier};
		$s->disconnect;
		return 1 if $tier eq 'l2';
		usleep(100_000);
	}
	return 0;
}

{
	my $s = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	my $log_offset = -s $node->logfile;
	ok($s->do("SET housing_cache.redis_password = '$wrong_password'"), 'wrong password: a superuser sets it in a session');
	my $errors0 = stat_of('redis_errors');
	my $r = cached($s, 'housing_cache.get_listing(2)');
	is($r->{error}, undef, 'wrong password: no error for the caller');
	is_deeply([ $r->{value}, $r->{tier} ], [ truth('housing_cache.get_listing(2)'), 'miss' ], 'wrong password: the right answer, computed');
	is(HcReliability::Resp->new(port => $redis->port, password => $password)->cmd('EXISTS', $r->{key}), 0,
		'wrong password: nothing was stored');
	cmp_ok(stat_of('redis_errors'), '>', $errors0, 'wrong password: counted in redis_errors');
	is(cached($s, 'housing_cache.get_listing(2)')->{tier}, 'miss', 'wrong password: every read is a miss');
	my $log = slurp_file($node->logfile, $log_offset);
	like($log, qr/housing_cache: Redis at 127\.0\.0\.1:\d+ is unavailable \(AUTH: [^)]+\)/,
		'wrong password: the failed AUTH is logged');
	is_deeply(leaks($log), [], 'wrong password: the log carries no password');
	$s->disconnect;
}
ok(wait_l2('housing_cache.get_listing(4)'), 'other sessions (the right password): served from Redis again, no manual step');

# The password set in the very statement whose call fails AUTH: with
# log_min_error_statement = 'log', the failure's message would carry the
# statement's text (and the password) unless the extension hides it.
{
	my $s = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	my $log_offset = -s $node->logfile;
	my $r = cached($s, "housing_cache.get_listing(3 + 0 * length(set_config('housing_cache.redis_password', '$wrong_password', false)))");
	is($r->{error}, undef, 'wrong password set in the failing statement: no error');
	my $log = slurp_file($node->logfile, $log_offset);
	like($log, qr/is unavailable \(AUTH: /, 'wrong password set in the failing statement: the failure is logged');
	is_deeply(leaks($log), [], 'wrong password set in the failing statement: the log carries neither the password nor the statement');
	$s->disconnect;
}
ok(wait_l2('housing_cache.get_listing(4)'), 'and served from Redis again');

# --- values are authenticated with value_secret ------------------------------------------

my $resp = HcReliability::Resp->new(port => $redis->port, password => $password);
my $call = 'housing_cache.get_listing(5)';
cached($admin, $call);
my $r = cached($admin, $call);
is($r->{tier}, 'l2', 'MAC: listing 5 is in Redis');
my $key = $r->{key};
my $valid = $resp->cmd('GET', $key);

sub mac_with
{
	my ($v, $hmac_key) = @_;
	return substr(hmac_sha256(substr($v, 0, 48) . substr($v, 64), $hmac_key), 0, 16);
}

sub with_mac
{
	my ($v, $hmac_key) = @_;
	substr($v, 48, 16, mac_with($v, $hmac_key));
	return $v;
}

is(unpack('H*', substr($valid, 48, 16)), unpack('H*', mac_with($valid, sha256($secret))),
	'MAC: the stored MAC is HMAC-SHA256(SHA-256(value_secret), header . payload), truncated to 16 bytes');
(my $forged = $valid) =~ s/"price_cents":31000005/"price_cents":11000005/ or die 'no price in the value';

for my $case (
	[ 'the MAC of the real value kept', $forged ],
	[ 'a MAC under SHA-256 of another secret', with_mac($forged, sha256($other_secret)) ],
	[ 'a MAC under the secret itself (not its SHA-256)', with_mac($forged, $secret) ],
	[ 'a MAC under SHA-256 of the Redis password', with_mac($forged, sha256($password)) ])
{
	my ($what, $bytes) = @$case;
	$resp->cmd('SET', $key, $bytes, 'PX', 600000);
	my $rejects0 = stat_of('l2_rejects');
	$r = cached($admin, $call);
	is_deeply([ $r->{error}, $r->{tier}, $r->{value} ], [ undef, 'miss', truth($call) ],
		"MAC: forged value, $what: a miss, the right answer");
	cmp_ok(stat_of('l2_rejects'), '>', $rejects0, "MAC: forged value, $what: counted in l2_rejects");
}

# Positive control: whoever knows value_secret can forge (so keep it secret).
$resp->cmd('SET', $key, with_mac($forged, sha256($secret)), 'PX', 600000);
$r = cached($admin, $call);
is_deeply([ $r->{tier}, $r->{value} =~ /"price_cents":11000005/ ? 'forged' : 'real' ], [ 'l2', 'forged' ],
	'MAC: a value forged with the real secret is accepted (the MAC is what stops the others)');
$resp->cmd('DEL', $key);

is_deeply(leaks(slurp_file($node->logfile)), [], 'the server log carries no secret so far');

# Rotation: after a reload with another secret, stored values no longer verify.
my $call6 = 'housing_cache.get_listing(6)';
cached($admin, $call6);
is(cached($admin, $call6)->{tier}, 'l2', 'rotation: listing 6 is in Redis');
my $log_offset = -s $node->logfile;
# secrets rotated through files: PostgreSQL logs the new value of every
# setting a reload changes, so only the file name reaches the log
my $secret_file = $node->basedir . '/value_secret';
my $password_file = $node->basedir . '/redis_password';
for ([ $secret_file, $other_secret ], [ $password_file, $new_password ])
{
	open(my $fh, '>', $_->[0]) or die "could not write $_->[0]: $!";
	print $fh "$_->[1]\n";
	close $fh;
	chmod 0600, $_->[0];
}
$node->append_conf('postgresql.conf', "housing_cache.value_secret_file = '$secret_file'");
$node->reload;
my $s = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
is($s->selectrow_array('SHOW housing_cache.value_secret_file'), $secret_file, 'rotation: the new secret file is in force');
my $rejects0 = stat_of('l2_rejects');
$r = cached($s, $call6);
is_deeply([ $r->{error}, $r->{tier}, $r->{value} ], [ undef, 'miss', truth($call6) ],
	'rotation: the value stored under the old secret is a miss');
cmp_ok(stat_of('l2_rejects'), '>', $rejects0, 'rotation: ... counted in l2_rejects');
is(cached($s, $call6)->{tier}, 'l2', 'rotation: stored again under the new secret');
$s->disconnect;

# Rotating the Redis password: Redis first, then postgresql.conf and a
# reload; sessions pick it up without a restart.
is($resp->cmd('CONFIG', 'SET', 'requirepass', $new_password), 'OK', 'password rotation: Redis has a new password');
$node->append_conf('postgresql.conf', "housing_cache.redis_password_file = '$password_file'");
$node->reload;
ok(wait_l2('housing_cache.get_listing(1)'), 'password rotation: new sessions are served from Redis with the new password');
is(cached($admin, 'housing_cache.get_listing(2)')->{error}, undef, 'password rotation: an old session reads without error');

# PostgreSQL logs every setting a reload changes, with its value
# ("parameter ... changed to ..."), superuser-only settings included: the
# *_file settings keep the secrets themselves out of the log.
is_deeply(leaks(slurp_file($node->logfile, $log_offset)), [], 'the server log carries no secret after the reloads');

is_deeply(leaks(slurp_file($redis->logfile)), [], 'the Redis log carries no secret');

$resp->close;
$admin->disconnect;
$snoop->disconnect;
$node->stop;
$redis->stop;
done_testing();
