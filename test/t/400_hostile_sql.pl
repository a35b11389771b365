# Hostile input through SQL: every public function of the extension, called
# with a table of bad values (wrong types, out of range, NULL, empty, 1 MB
# and 100 MB strings, invalid UTF-8 and NUL attempts, control characters,
# quotes and backslashes that would break JSON, SQL-injection and format
# strings), must either answer or refuse with a clear error: a SQLSTATE of
# the expected class, never XX000 (internal error), never a crash.
#
# Each case runs as its own top-level statement in its own session (so a
# transaction callback or a session state left behind by one case is seen
# by the checks, not by the next case); each function's cases then run
# again one after the other in a single session, which must survive them
# and still answer correctly.  After every group: the server is up, the
# listings are unchanged (a checksum of every row), a sentinel table and
# its row still exist.  At the end: the cached answers equal the uncached
# ones, no unexpected query was registered, and the server log holds no
# crash, assertion failure, PANIC or resource-leak warning.
#
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
my $node = new_node('hostile_sql', redis => $redis,
	conf => "log_min_messages = warning\nhousing_cache.publish_max_tags = 64");

# A UTF8 database, whatever the locale initdb ran in, and psql speaking UTF-8:
# invalid byte sequences must then be refused, and every message the server
# sends must itself be valid UTF-8.
my $db = 'hostile';
$node->safe_psql('postgres',
	"CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql($db, 'CREATE EXTENSION housing_portal CASCADE');
$ENV{PGCLIENTENCODING} = 'UTF8';

# --- setup ------------------------------------------------------------------------

$node->safe_psql($db, q{
SELECT housing_cache.generate_listings(2000);
CREATE TABLE public.hostile_sentinel (x int);
INSERT INTO public.hostile_sentinel VALUES (42);
CREATE TABLE public.t_hostile (id bigint PRIMARY KEY, city text NOT NULL, note text);
INSERT INTO public.t_hostile SELECT i, CASE WHEN i % 2 = 0 THEN 'Boston' ELSE 'Denver' END, 'n' || i
  FROM generate_series(1, 20) i;
SELECT housing_cache.watch_table('public.t_hostile', 'city');
SELECT housing_cache.register_query('hostile.by_city',
    $q$SELECT json_build_object('n', count(*)) FROM public.t_hostile WHERE city = $1$q$,
    '{text}', '{public.t_hostile/city=$1}');
SELECT housing_cache.register_query('hostile.by_id',
    $q$SELECT row_to_json(t) FROM public.t_hostile t WHERE id = $1$q$,
    '{bigint}', '{public.t_hostile/id=$1}');
CREATE VIEW public.hostile_view AS SELECT 1 AS x;
CREATE SEQUENCE public.hostile_seq;
CREATE TABLE public."we""ird; DROP TABLE housing.listings; --" (id int PRIMARY KEY, "c""ol" text);
CREATE ROLE hostile_user LOGIN;
});

# The listing api.update_listing may change; every other row must stay as it is.
my $target_id = $node->safe_psql($db, 'SELECT max(id) FROM housing.listings');
my $listings_sum_sql = "SELECT count(*) || ':' || md5(string_agg(l::text, ',' ORDER BY id)) "
  . "FROM housing.listings l WHERE id <> $target_id";
my $listings_sum = $node->safe_psql($db, $listings_sum_sql);
my $target_sum_sql = "SELECT md5(row(city, neighborhood, bedrooms, bathrooms, area_sqm, lat, lon, created_at)::text) "
  . "FROM housing.listings WHERE id = $target_id";
my $target_sum = $node->safe_psql($db, $target_sum_sql);
my $hostile_sum_sql = "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM public.t_hostile t";
my $hostile_sum = $node->safe_psql($db, $hostile_sum_sql);

# --- values -----------------------------------------------------------------------

# An SQL string literal (standard_conforming_strings is on).
sub lit
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# Text values: [label, SQL expression, characters, bytes, SQLSTATE the
# expression itself raises before any function is called (or undef)].
# characters/bytes undef: SQL NULL.
my @TEXT;
sub text_value
{
	my ($label, $s) = @_;
	utf8::encode(my $enc = $s);
	push @TEXT, [ $label, lit($enc), length($s), length($enc), undef ];
	return;
}
push @TEXT, [ 'NULL', 'NULL', undef, undef, undef ];
text_value('empty', '');
text_value('blanks', "   ");
text_value('Boston', 'Boston');
text_value('injection-drop', q{'); DROP TABLE housing.listings; --});
text_value('injection-or', q{Boston' OR '1'='1});
text_value('injection-semicolon', q{x; DELETE FROM housing.listings});
text_value('dollar-param', '$1');
text_value('dollar-quote', '$$ $q$');
text_value('format-string', '%s%n%x%p%99999999s');
text_value('double-quote', '"');
text_value('backslash', '\\');
text_value('json-breaker', q!Bo"st\on","x":1}\u0000!);
text_value('control', "a\x01b\x1f\x7f\n\r\tc");
text_value('unicode-separators', "\x{2028}\x{2029}\x{feff}");
text_value('emoji', "\x{1F3E0}\x{1F525}");
text_value('100-chars', 'x' x 100);
text_value('101-chars', 'x' x 101);
text_value('100-multibyte', "\x{e9}" x 100);
text_value('101-multibyte', "\x{e9}" x 101);
text_value('8192-bytes', 'y' x 8192);
text_value('8193-bytes', 'y' x 8193);
push @TEXT,
  [ '1MB', "repeat('x', 1048576)", 1048576, 1048576, undef ],
  [ '100MB', "repeat('x', 104857600)", 104857600, 104857600, undef ],
  [ 'invalid-utf8', q{convert_from('\xc328'::bytea, 'UTF8')}, undef, undef, '22021' ],
  [ 'overlong-utf8', q{convert_from('\xc0af'::bytea, 'UTF8')}, undef, undef, '22021' ],
  [ 'surrogate-utf8', q{convert_from('\xeda080'::bytea, 'UTF8')}, undef, undef, '22021' ],
  [ 'nul-chr', 'chr(0)', undef, undef, '54000' ],
  [ 'nul-escape', q{E'a\\x00b'}, undef, undef, '22021' ],
  [ 'nul-unicode', q{U&'a\\0000b'}, undef, undef, '22P05|22021|42601' ];

# Integer values: [label, SQL expression, value (undef: NULL), pre-error]
my @INT = (
	[ 'NULL', 'NULL::int', undef, undef ],
	[ '0', '0', 0, undef ],
	[ '1', '1', 1, undef ],
	[ '-1', '-1', -1, undef ],
	[ '100', '100', 100, undef ],
	[ '101', '101', 101, undef ],
	[ '10000', '10000', 10000, undef ],
	[ '10001', '10001', 10001, undef ],
	[ 'int-max', '2147483647', 2147483647, undef ],
	[ 'int-min', '(-2147483648)::int', -2147483648, undef ],
	[ 'int-overflow', q{'2147483648'::int}, undef, '22003' ],
	[ 'not-a-number', q{'abc'::int}, undef, '22P02' ],
	[ 'fraction', q{'1.5'::int}, undef, '22P02' ],
	[ 'injection', q{'1; DROP TABLE housing.listings'::int}, undef, '22P02' ],
);
my @BIGINT = (
	[ 'NULL', 'NULL::bigint', undef, undef ],
	[ '0', '0::bigint', 0, undef ],
	[ '1', '1::bigint', 1, undef ],
	[ '-1', '(-1)::bigint', -1, undef ],
	[ 'bigint-max', '9223372036854775807', 1, undef ],
	[ 'bigint-min', '(-9223372036854775808)::bigint', -1, undef ],
	[ 'bigint-overflow', q{'9223372036854775808'::bigint}, undef, '22003' ],
	[ 'not-a-number', q{'abc'::bigint}, undef, '22P02' ],
	[ 'float', q{'1e30'::float8::bigint}, undef, '22003' ],
	[ 'nan', q{'NaN'::float8::bigint}, undef, '22003' ],
);

# --- running cases --------------------------------------------------------------

my @group;    # SQL of the current group, for the single-session rerun
my $case_db = $db;    # where run_case runs

# run_case(label, sql, expect[, todo]): expect is 'ok', 'any', or a regex
# alternation of SQLSTATEs ('22023|54000').  The statement runs alone in a
# new session with VERBOSITY verbose, so the SQLSTATE is on the ERROR line.
sub run_case
{
	my ($label, $sql, $expect, $todo) = @_;
	push @group, $sql;
	my ($ret, $out, $err) = $node->psql($case_db, "\\set VERBOSITY verbose\n$sql;\n",
		on_error_stop => 1);
	my ($state) = $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	my $lost = ($ret == 2
		  || $err =~ /server closed the connection|connection to server was lost|could not connect/);
	my %allowed = map { $_ => 1 } split /\|/, $expect;
	my $msg = '';
	my $err_copy = $err;
	if ($lost) { $msg = "the connection was lost (crash?)" }
	elsif ($case_db eq $db && !utf8::decode($err_copy)) { $msg = "the server's message is not valid UTF-8" }
	elsif (defined $state && $state =~ /^XX/) { $msg = "internal error $state" }
	elsif ($ret != 0 && !defined $state) { $msg = "psql failed ($ret) without a SQLSTATE" }
	elsif ($allowed{any}) { }
	elsif (!defined $state && !$allowed{ok}) { $msg = "expected $expect, got success" }
	elsif (defined $state && !$allowed{$state}) { $msg = "expected $expect, got $state" }

	my $name = sprintf('%s -> %s', $label, defined $state ? $state : 'ok');
	TODO:
	{
		local $TODO = $todo if defined $todo;
		ok($msg eq '', $name) or diag("$msg\nSQL: " . substr($sql, 0, 300) . "\nstderr: " . substr($err, 0, 500));
	}
	return $state;
}

# The expectation for a text value, given a rule for values that get through.
sub text_expect
{
	my ($v, $rule) = @_;
	return $v->[4] if defined $v->[4];
	return $rule->($v);
}

# After a group: one session runs all its statements in turn (errors do not
# stop it) and must still answer; then the database must be intact.
sub check_group
{
	my ($name, $probe, $want, $reset) = @_;
	# settings and roles a case sets would otherwise stay for the next ones
	my $between = $reset ? "RESET ALL;\nRESET ROLE;\n" : '';
	my $script = "\\set VERBOSITY verbose\n" . join('', map { "$_;\n$between" } @group)
	  . "SELECT 'session-alive:' || coalesce(($probe)::text, 'null');\n";
	my ($ret, $out, $err) = $node->psql($case_db, $script, on_error_stop => 0);
	like($out, qr/session-alive:\Q$want\E/, "$name: one session survives every case and still answers");
	unlike($err, qr/ERROR:\s+XX\d{3}|server closed the connection|connection to server was lost/,
		"$name: no internal error or lost connection in that session");
	@group = ();

	is($node->safe_psql($db, 'SELECT 1'), '1', "$name: the server is up");
	is($node->safe_psql($db, $listings_sum_sql), $listings_sum, "$name: housing.listings unchanged");
	is($node->safe_psql($db, $target_sum_sql), $target_sum, "$name: the api target listing's fixed columns unchanged");
	is($node->safe_psql($db, 'SELECT x FROM public.hostile_sentinel'), '42',
		"$name: the sentinel table and its row exist");
	is($node->safe_psql($db, $hostile_sum_sql), $hostile_sum, "$name: public.t_hostile unchanged");
	return;
}

my $sl = 'housing_cache.search_listings';

# --- search_listings ---------------------------------------------------------------

for my $v (@TEXT)
{
	run_case("search_listings(city => $v->[0])", "SELECT $sl(city => $v->[1])",
		text_expect($v, sub { defined $_[0][2] && $_[0][2] > 100 ? '22023' : 'ok' }));
	run_case("search_listings(sort => $v->[0])", "SELECT $sl(sort => $v->[1])",
		text_expect($v, sub { !defined $_[0][2] ? 'ok' : '22023' }));
}
run_case("search_listings(sort => '$_')", "SELECT $sl(sort => '$_')", 'ok')
  for qw(newest price_asc price_desc);
run_case("search_listings(sort => 'NEWEST')", "SELECT $sl(sort => 'NEWEST')", '22023');
run_case("search_listings(sort => 'newest ')", "SELECT $sl(sort => 'newest ')", '22023');
for my $p (qw(min_price_cents max_price_cents))
{
	for my $v (@BIGINT)
	{
		run_case("search_listings($p => $v->[0])", "SELECT $sl($p => $v->[1])",
			$v->[3] // (defined $v->[2] && $v->[2] < 0 ? '22023' : 'ok'));
	}
}
run_case('search_listings(min > max)', "SELECT $sl(min_price_cents => 10, max_price_cents => 5)", '22023');
my %int_ok = (min_bedrooms => [ 0, 100 ], page => [ 1, 10000 ], page_size => [ 1, 100 ]);
for my $p (sort keys %int_ok)
{
	my ($lo, $hi) = @{ $int_ok{$p} };
	for my $v (@INT)
	{
		run_case("search_listings($p => $v->[0])", "SELECT $sl($p => $v->[1])",
			$v->[3] // (!defined $v->[2] || ($v->[2] >= $lo && $v->[2] <= $hi) ? 'ok' : '22023'));
	}
}
run_case('search_listings(city => 42): no such function', "SELECT $sl(city => 42)", '42883');
run_case('search_listings(page => 1.5)', "SELECT $sl(page => 1.5)", '42883');
run_case("search_listings(page => 'abc')", "SELECT $sl(page => 'abc')", '22P02');
run_case('search_listings(nonexistent => 1)', "SELECT $sl(nonexistent => 1)", '42883');
run_case('search_listings(8 arguments)', "SELECT $sl('a', 1, 2, 3, 'newest', 1, 1, 1)", '42883');
run_case('search_listings(page 10000 of 100)', "SELECT $sl(page => 10000, page_size => 100)", 'ok');
check_group('search_listings', "$sl(city => 'Boston', page_size => 1)::jsonb->'page_size'", '1');

# --- get_listing -----------------------------------------------------------------------

for my $v (@BIGINT)
{
	run_case("get_listing($v->[0])", "SELECT housing_cache.get_listing($v->[1])", $v->[3] // 'ok');
}
run_case("get_listing('abc')", "SELECT housing_cache.get_listing('abc')", '22P02');
run_case("get_listing(text)", "SELECT housing_cache.get_listing('1'::text)", '42883');
run_case('get_listing(1, 2)', 'SELECT housing_cache.get_listing(1, 2)', '42883');
run_case("get_listing(' 1 ')", "SELECT housing_cache.get_listing(' 1 ')", 'ok');
check_group('get_listing', "housing_cache.get_listing(1)::jsonb->'id'", '1');

# --- city_stats -------------------------------------------------------------------------

for my $v (@TEXT)
{
	run_case("city_stats($v->[0])", "SELECT housing_cache.city_stats($v->[1])",
		text_expect($v, sub { defined $_[0][2] && $_[0][2] > 100 ? '22023' : 'ok' }));
}
run_case('city_stats(42)', 'SELECT housing_cache.city_stats(42)', '42883');
check_group('city_stats', "housing_cache.city_stats('Boston')::jsonb->'city'", '"Boston"');

# --- fetch ---------------------------------------------------------------------------------

my $valid_name = qr/^[A-Za-z0-9_.:-]{1,63}$/;
for my $v (@TEXT)
{
	run_case("fetch(name => $v->[0])", "SELECT housing_cache.fetch($v->[1], 'Boston')",
		text_expect($v, sub { !defined $_[0][2] ? '22004' : '42704' }));
	run_case("fetch(hostile.by_city, $v->[0])", "SELECT housing_cache.fetch('hostile.by_city', $v->[1])",
		text_expect($v, sub { 'ok' }));
}
for my $p ([ '42', 'ok' ], [ ' 42 ', 'ok' ], [ '042', 'ok' ], [ '+42', 'ok' ], [ '', '22P02' ],
	[ 'abc', '22P02' ], [ '1e3', '22P02' ], [ '9223372036854775808', '22003' ],
	[ '-9223372036854775809', '22003' ], [ "1; DELETE FROM public.t_hostile", '22P02' ])
{
	run_case("fetch(hostile.by_id, '$p->[0]')",
		"SELECT housing_cache.fetch('hostile.by_id', " . lit($p->[0]) . ")", $p->[1]);
}
run_case('fetch(hostile.by_id, 1MB of digits)',
	"SELECT housing_cache.fetch('hostile.by_id', repeat('9', 1048576))", '22003');
run_case('fetch(NULL)', 'SELECT housing_cache.fetch(NULL)', '22004');
# the "does not exist" message cuts a long name at a character boundary
run_case("fetch(a name of 'a' and 40 'é')", "SELECT housing_cache.fetch('a' || repeat('\xc3\xa9', 40))", '42704');
run_case('fetch(built-in query)', "SELECT housing_cache.fetch('housing.listing', '1')", '42501');
run_case('fetch(64-character name)', "SELECT housing_cache.fetch(repeat('a', 64))", '42704');
run_case('fetch(no parameter)', "SELECT housing_cache.fetch('hostile.by_city')", '22023');
run_case('fetch(two parameters)', "SELECT housing_cache.fetch('hostile.by_city', 'a', 'b')", '22023');
run_case('fetch(VARIADIC NULL)', "SELECT housing_cache.fetch('hostile.by_city', VARIADIC NULL::text[])", '22023');
run_case('fetch(VARIADIC empty)', "SELECT housing_cache.fetch('hostile.by_city', VARIADIC '{}'::text[])", '22023');
run_case('fetch(VARIADIC 2-D array)', "SELECT housing_cache.fetch('hostile.by_city', VARIADIC ARRAY[['Boston']])", '2202E');
run_case('fetch(VARIADIC array with lower bound 5)',
	"SELECT housing_cache.fetch('hostile.by_city', VARIADIC '[5:5]={Boston}'::text[])", 'ok');
run_case('fetch(VARIADIC 100000 parameters)',
	"SELECT housing_cache.fetch('hostile.by_city', VARIADIC array_fill('x'::text, ARRAY[100000]))", '22023');
run_case('fetch(VARIADIC NULL element)', "SELECT housing_cache.fetch('hostile.by_city', VARIADIC ARRAY[NULL::text])", 'ok');
check_group('fetch', "housing_cache.fetch('hostile.by_city', 'Boston')::jsonb->'n'", '10');

# --- register_query / unregister_query -----------------------------------------------------

my $rq = 'housing_cache.register_query';
my $ok_sql = lit(q{SELECT json_build_object('n', count(*)) FROM public.t_hostile WHERE city = $1});
my %registered;    # names a case registered on purpose
for my $v (@TEXT)
{
	my $expect = text_expect($v,
		sub {
			return '22004' unless defined $_[0][2];
			return '22023' if $_[0][3] > 63 || $_[0][3] == 0;
			my $s = eval { my $x = $_[0][1]; $x =~ s/^'|'$//g; $x =~ s/''/'/g; $x };
			return $s =~ $valid_name ? 'ok' : '22023';
		});
	run_case("register_query(name => $v->[0])",
		"SELECT $rq($v->[1], $ok_sql, '{text}', '{public.t_hostile/city=\$1}')", $expect);
	if ($expect eq 'ok')
	{
		(my $s = $v->[1]) =~ s/^'|'$//g;
		$s =~ s/''/'/g;
		$registered{$s} = 1;
	}
}
my @rq_cases = (
	# [label, sql, param_types, tags, ttl, expect, todo]
	[ 'sql NULL', 'NULL', q{'{text}'}, q{'{public.t_hostile/city=$1}'}, 'NULL', '22004' ],
	[ 'sql empty', q{''}, q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql blanks', lit(" \t\r\n "), q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql syntax error', q{'SELEC 1'}, q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '42601' ],
	[ 'sql injection', lit(q{'); DROP TABLE housing.listings; --}), q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '42601' ],
	[ 'sql DROP TABLE', q{'DROP TABLE housing.listings'}, q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql DELETE', q{'DELETE FROM housing.listings'}, q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql data-modifying CTE',
		lit(q{WITH d AS (DELETE FROM housing.listings RETURNING 1) SELECT json_build_object('n', (SELECT count(*) FROM d))}),
		q{'{}'}, q{'{housing.listings}'}, 'NULL', '22023' ],
	[ 'sql FOR UPDATE', lit(q{SELECT json_build_object('n', id) FROM public.t_hostile FOR UPDATE}),
		q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql two statements', lit(q{SELECT json_build_object(); SELECT json_build_object()}),
		q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql not json', q{'SELECT 1'}, q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '42804' ],
	[ 'sql two columns', lit(q{SELECT json_build_object(), 1}), q{'{}'}, q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql parameter without a type', lit(q{SELECT json_build_object('x', $2)}), q{'{text}'},
		q{'{public.t_hostile}'}, 'NULL', '42P18|42P02' ],
	[ 'sql reads an untagged table', lit(q{SELECT json_agg(s) FROM public.hostile_sentinel s}), q{'{}'},
		q{'{public.t_hostile}'}, 'NULL', '22023' ],
	[ 'sql 1 MB deep expression', q{'SELECT json_build_object(''x'', ' || repeat('1+', 500000) || '1)'},
		q{'{}'}, q{'{public.t_hostile}'}, 'NULL', 'any' ],
	[ 'param_types 33', q{'SELECT json_build_object()'}, "array_fill('text'::regtype, ARRAY[33])",
		q{'{public.t_hostile}'}, 'NULL', '54000' ],
	[ 'param_types NULL element', q{'SELECT json_build_object()'}, q{'{text,NULL}'},
		q{'{public.t_hostile}'}, 'NULL', '22004' ],
	[ 'param_types unknown type', q{'SELECT json_build_object()'}, q{'{no_such_type}'},
		q{'{public.t_hostile}'}, 'NULL', '42704' ],
	[ 'param_types NULL', q{'SELECT json_build_object()'}, 'NULL', q{'{public.t_hostile}'}, 'NULL', '22004' ],
	[ 'param_types internal', lit(q{SELECT json_build_object('x', $1::text)}), q{'{internal}'},
		q{'{public.t_hostile}'}, 'NULL', 'any' ],
	[ 'param_types cstring', lit(q{SELECT json_build_object('x', $1::text)}), q{'{cstring}'},
		q{'{public.t_hostile}'}, 'NULL', 'any' ],
	[ 'tags NULL', $ok_sql, q{'{text}'}, 'NULL', 'NULL', '22004' ],
	[ 'tags empty', $ok_sql, q{'{text}'}, q{'{}'}, 'NULL', '22023' ],
	[ 'tags NULL element', $ok_sql, q{'{text}'}, q{'{NULL}'}, 'NULL', '22004' ],
	[ 'tags empty tag', $ok_sql, q{'{text}'}, q{'{""}'}, 'NULL', '22023' ],
	[ 'tags 9', $ok_sql, q{'{text}'}, "array_fill('public.t_hostile'::text, ARRAY[9])", 'NULL', '22023' ],
	[ 'tags $2 of 1', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$2}'}, 'NULL', '22023' ],
	[ 'tags $0', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$0}'}, 'NULL', '22023' ],
	[ 'tags $-1', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$-1}'}, 'NULL', '22023' ],
	[ 'tags $99999999999999999999', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$99999999999999999999}'}, 'NULL', '22023' ],
	# only digits after '$': no blank, sign or leading zero
	[ 'tags $ 1', $ok_sql, q{'{text}'}, q{'{"public.t_hostile/city=$ 1"}'}, 'NULL', '22023' ],
	[ 'tags $+1', $ok_sql, q{'{text}'}, q{'{"public.t_hostile/city=$+1"}'}, 'NULL', '22023' ],
	[ 'tags $01', $ok_sql, q{'{text}'}, q{'{"public.t_hostile/city=$01"}'}, 'NULL', '22023' ],
	[ 'tags unknown column', $ok_sql, q{'{text}'}, q{'{public.t_hostile/nocol=$1}'}, 'NULL', '22023' ],
	[ 'tags key column of another type', $ok_sql, q{'{text}'}, q{'{public.t_hostile/id=$1}'}, 'NULL', '42804' ],
	[ 'tags unwatched table', $ok_sql, q{'{text}'}, q{'{public.hostile_sentinel}'}, 'NULL', '22023' ],
	[ 'tags no table', $ok_sql, q{'{text}'}, q{'{/city=$1}'}, 'NULL', '22023' ],
	[ 'tags no column', $ok_sql, q{'{text}'}, q{'{public.t_hostile/=$1}'}, 'NULL', '22023' ],
	[ 'tags injection', $ok_sql, q{'{text}'}, 'ARRAY[' . lit(q{'); DROP TABLE housing.listings; --}) . ']', 'NULL', '22023' ],
	[ 'tags 1 MB', $ok_sql, q{'{text}'}, "ARRAY[repeat('t', 1048576)]", 'NULL', '22023' ],
	[ 'tags json-breaking literal', lit(q{SELECT json_build_object('n', count(*)) FROM public.t_hostile WHERE city = 'Bo"st\on'}),
		q{'{}'}, 'ARRAY[' . lit(q{public.t_hostile/city=Bo"st\on}) . ']', 'NULL', 'ok' ],
	[ 'ttl 0', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$1}'}, '0', '22023' ],
	[ 'ttl -1', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$1}'}, '-1', '22023' ],
	[ 'ttl 30 days + 1 s', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$1}'}, '2592001', '22023' ],
	[ 'ttl int max', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$1}'}, '2147483647', '22023' ],
	[ 'ttl int min', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$1}'}, '(-2147483648)::int', '22023' ],
	[ 'ttl 30 days', $ok_sql, q{'{text}'}, q{'{public.t_hostile/city=$1}'}, '2592000', 'ok' ],
);
for my $c (@rq_cases)
{
	my ($label, $sql, $types, $tags, $ttl, $expect, $todo) = @$c;
	my $name = 'hostile.rq_' . ($label =~ s/[^A-Za-z0-9]+/_/gr);
	$name = substr($name, 0, 63);
	$registered{$name} = 1 if $expect eq 'ok' || $expect eq 'any' || defined $todo;
	run_case("register_query($label)",
		"SELECT $rq('$name', $sql, $types, $tags, $ttl, NULL)", $expect, $todo);
}
# Parameters of unusual types: registering may be refused, fetching through
# the type's input and output functions must never fail internally.
for my $type (qw(cstring anyelement record void unknown "char" bytea json jsonb xml money
	timestamptz interval tsvector regclass regproc oid name numeric float8 bool uuid inet))
{
	(my $name = "hostile.type_$type") =~ s/"//g;
	$registered{$name} = 1;
	run_case("register_query(param_types {$type})",
		"SELECT $rq('$name', " . lit(q{SELECT json_build_object('x', $1::text)}) . ", '{$type}', '{public.t_hostile}')",
		'any');
	for my $v (grep { $_->[0] =~ /^(NULL|empty|Boston|json-breaker|1MB)$/ } @TEXT)
	{
		run_case("fetch($name, $v->[0])", "SELECT housing_cache.fetch('$name', $v->[1])", 'any');
	}
}

# A regclass (regproc, regtype, ...) parameter prints as the caller's
# search_path spells it, so the same text can name different objects: such
# parameters are keyed by OID.
$node->safe_psql($db, q{
CREATE SCHEMA hostile_a; CREATE TABLE hostile_a.tbl (x int);
CREATE SCHEMA hostile_b; CREATE TABLE hostile_b.tbl (x int);
GRANT USAGE ON SCHEMA hostile_a, hostile_b TO PUBLIC;
SELECT housing_cache.register_query('hostile.regclass',
    $q$SELECT json_build_object('relid', $1::oid)$q$, '{regclass}', '{public.t_hostile}');
});
$registered{'hostile.regclass'} = 1;
my $relid_a = $node->safe_psql($db, q{SELECT 'hostile_a.tbl'::regclass::oid});
my $relid_b = $node->safe_psql($db, q{SELECT 'hostile_b.tbl'::regclass::oid});
is($node->safe_psql($db,
		q{SET search_path = hostile_a; SELECT housing_cache.fetch('hostile.regclass', 'tbl')::jsonb->>'relid'}),
	$relid_a, 'fetch(regclass parameter) in search_path hostile_a: its own table');
is($node->safe_psql($db,
		q{SET search_path = hostile_b; SELECT housing_cache.fetch('hostile.regclass', 'tbl')::jsonb->>'relid'}),
	$relid_b, 'fetch(regclass parameter) in search_path hostile_b: its own table, not hostile_a\'s cached answer');

run_case('register_query(replace a built-in)',
	"SELECT $rq('housing.listing', $ok_sql, '{text}', '{public.t_hostile/city=\$1}')", '42501');
for my $v (grep { $_->[0] =~ /^(NULL|empty|injection-drop|1MB|100MB|json-breaker)$/ } @TEXT)
{
	run_case("unregister_query($v->[0])", "SELECT housing_cache.unregister_query($v->[1])", 'ok');
}
run_case('unregister_query(built-in)', "SELECT housing_cache.unregister_query('housing.listing')", '42501');
check_group('register_query', "housing_cache.fetch('hostile.by_city', 'Denver')::jsonb->'n'", '10');

# --- invalidate, and the messages it publishes --------------------------------------------

for my $v (@TEXT)
{
	run_case("invalidate($v->[0])", "SELECT housing_cache.invalidate($v->[1])",
		text_expect($v, sub {
			return 'ok' unless defined $_[0][3];
			return '22023' if $_[0][3] == 0;
			return $_[0][3] > 8192 ? '54000' : 'ok';
		}));
}
run_case('invalidate(42)', 'SELECT housing_cache.invalidate(42)', '42883');

# Tags that would break JSON reach subscribers intact.
my $channel = $node->safe_psql($db, 'SHOW housing_cache.channel');
my $sub_out = '';
my $sub_err = '';
my $sub = IPC::Run::start(
	[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, 'SUBSCRIBE', $channel ],
	'<', \undef, '>', \$sub_out, '2>', \$sub_err);
END { local $?; eval { $sub->kill_kill if $sub; }; }

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

# The next invalidation message (heartbeats are skipped).
my @pending;    # the rest of a payload that carried several messages

sub next_message
{
	my $re = qr/message\n\Q$channel\E\n([^\n]*)\n/;
	while (1)
	{
		if (!@pending)
		{
			return undef unless wait_for_output($re, 30);
			$sub_out =~ s/^.*?$re//s or return undef;
			my $raw = $1;
			my @m = eval { channel_messages($raw) };
			diag("not JSON: $raw") unless @m;
			return undef unless @m;
			push @pending, @m;
		}
		my $m = shift @pending;
		return $m unless ($m->{type} // '') eq 'heartbeat';
	}
}

ok(wait_for_output(qr/^subscribe\n\Q$channel\E\n1\n/, 30), 'the subscriber is subscribed');
$sub_out =~ s/^subscribe\n\Q$channel\E\n1\n//;

for my $tag (q{public.t_hostile/city=Bo"st\on}, q{x/y=a\"b}, qq{x/y=line\nbreak\ttab\r}, "x/y=\x01\x1f\x7f",
	"x/y=\x{2028}\x{2029}", "x/y=\x{1F3E0}", q{x/y=</script><script>alert(1)</script>},
	q{x/y='); DROP TABLE housing.listings; --}, q{x/y="}, 'x/y=' . ('z' x 8000), q{we"ird\table})
{
	utf8::encode(my $enc = $tag);
	$node->safe_psql($db, 'SELECT housing_cache.invalidate(' . lit($enc) . ')');
	my $m = next_message();
	my $shown = substr($tag =~ s/[^\x20-\x7e]/?/gr, 0, 40);
	ok($m && grep({ $_ eq $tag } @{ $m->{tags} }), "invalidate('$shown'): the message is JSON and lists the tag as written");
}
# ... and through a row trigger, with a table and column whose names need quoting.
$node->safe_psql($db,
	q{SELECT housing_cache.watch_table('public."we""ird; DROP TABLE housing.listings; --"', 'c"ol')});
my $m = next_message();    # watch_table invalidates the table
$node->safe_psql($db,
	q{INSERT INTO public."we""ird; DROP TABLE housing.listings; --" VALUES (1, E'v"a\\\\l\nue')});
$m = next_message();
ok($m && (grep { $_ eq qq{public.we"ird; DROP TABLE housing.listings; --/c"ol=v"a\\l\nue} } @{ $m->{tags} }),
	'a row of a table with a hostile name: the message lists its tags as written')
  or diag(explain($m));
check_group('invalidate', "housing_cache.city_stats('Denver')::jsonb->'city'", '"Denver"');

# --- if_none_match -----------------------------------------------------------------------

for my $v (@TEXT)
{
	run_case("if_none_match($v->[0]), then get_listing",
		"BEGIN; SELECT housing_cache.if_none_match($v->[1]); SELECT housing_cache.get_listing(1) IS NOT NULL; COMMIT",
		text_expect($v, sub { 'ok' }));    # an overlong list is no condition, not an error
}
for my $h ('*', 'W/', 'W/"', '"', '""', ',,,', '"' . ('f' x 32) . '"', 'W/"' . ('0' x 32) . '", *')
{
	run_case("if_none_match('$h')", 'SELECT housing_cache.if_none_match(' . lit($h) . '), housing_cache.get_listing(1) IS NOT NULL', 'ok');
}
check_group('if_none_match', "housing_cache.get_listing(2)::jsonb->'id'", '2');

# --- watch_table / unwatch_table -------------------------------------------------------------

for my $c (
	[ 'watch_table(NULL)', 'SELECT housing_cache.watch_table(NULL)', '22004' ],
	[ 'watch_table(no such table)', q{SELECT housing_cache.watch_table('no_such_table')}, '42P01' ],
	[ 'watch_table(injection)', 'SELECT housing_cache.watch_table(' . lit(q{x'); DROP TABLE housing.listings; --}) . ')', '42P01|42602|3F000' ],
	[ 'watch_table(a view)', q{SELECT housing_cache.watch_table('public.hostile_view')}, '42809' ],
	[ 'watch_table(a sequence)', q{SELECT housing_cache.watch_table('public.hostile_seq')}, '42809' ],
	[ 'watch_table(a catalog)', q{SELECT housing_cache.watch_table('pg_catalog.pg_class')}, '42501|42809' ],
	# an OID that names no relation
	[ 'watch_table(oid 0)', q{SELECT housing_cache.watch_table(0::regclass)}, '42P01|42809|22004|22023' ],
	[ 'watch_table(oid of nothing)', q{SELECT housing_cache.watch_table(4294967295::oid::regclass)}, '42P01|42809|22023' ],
	[ 'watch_table(42): an integer is an OID', 'SELECT housing_cache.watch_table(42)', '42P01|42809|22023' ],
	[ 'watch_table(partition_column empty)', q{SELECT housing_cache.watch_table('public.hostile_sentinel', '')}, '42703' ],
	[ 'watch_table(partition_column unknown)', q{SELECT housing_cache.watch_table('public.hostile_sentinel', 'nocol')}, '42703' ],
	[ 'watch_table(partition_column injection)',
		q{SELECT housing_cache.watch_table('public.hostile_sentinel', } . lit(q{x"; DROP TABLE housing.listings; --}) . ')', '42703' ],
	[ 'watch_table(partition_column 1 MB)', q{SELECT housing_cache.watch_table('public.hostile_sentinel', repeat('x', 1048576))}, '42703' ],
	[ 'watch_table(partition_column a system column)', q{SELECT housing_cache.watch_table('public.hostile_sentinel', 'ctid')}, '42703' ],
	[ 'watch_table(re-partition a table queries use)', q{SELECT housing_cache.watch_table('public.t_hostile', 'note')}, '2BP01' ],
	[ 'watch_table(housing.listings by title)', q{SELECT housing_cache.watch_table('housing.listings', 'title')}, '2BP01' ],
	[ 'watch_table(housing.listings again)', q{SELECT housing_cache.watch_table('housing.listings', 'city')}, 'ok' ],
	[ 'unwatch_table(NULL)', 'SELECT housing_cache.unwatch_table(NULL)', '42704|22004' ],
	[ 'unwatch_table(not watched)', q{SELECT housing_cache.unwatch_table('public.hostile_sentinel')}, '42704' ],
	[ 'unwatch_table(used by queries)', q{SELECT housing_cache.unwatch_table('public.t_hostile')}, '2BP01' ],
	[ 'unwatch_table(housing.listings)', q{SELECT housing_cache.unwatch_table('housing.listings')}, '2BP01' ],
	[ 'unwatch_table(no such table)', q{SELECT housing_cache.unwatch_table('no_such_table')}, '42P01' ],
  )
{
	run_case(@$c);
}
check_group('watch_table', q{(SELECT count(*) FROM housing_cache.watched_tables WHERE relid::oid <> 0)}, '3');

# --- the api schema ---------------------------------------------------------------------

for my $v (@TEXT)
{
	run_case("api.listings(city => $v->[0])", "SELECT api.listings(city => $v->[1])",
		text_expect($v, sub { defined $_[0][2] && $_[0][2] > 100 ? '22023' : 'ok' }));
	run_case("api.city_stats($v->[0])", "SELECT api.city_stats($v->[1])",
		text_expect($v, sub { !defined $_[0][2] ? '22023' : $_[0][2] > 100 ? '22023' : 'ok' }));
}
for my $v (@INT)
{
	run_case("api.listings(page => $v->[0])", "SELECT api.listings(page => $v->[1])",
		$v->[3] // (!defined $v->[2] || ($v->[2] >= 1 && $v->[2] <= 10000) ? 'ok' : '22023'));
}
for my $v (@BIGINT)
{
	run_case("api.listing($v->[0])", "SELECT api.listing($v->[1])", $v->[3] // (defined $v->[2] ? 'ok' : '22023'));
}
# api.update_listing changes one listing; hostile text must be stored as it
# is, never interpreted.
for my $v (grep { $_->[0] !~ /^(100MB)$/ } @TEXT)
{
	my $expect = text_expect($v, sub {
			return 'ok' unless defined $_[0][2];
			(my $s = $_[0][1]) =~ s/^'|'$//g;
			return ($_[0][0] =~ /^(empty|blanks)$/) ? '22023' : 'ok';
		});
	run_case("api.update_listing(title => $v->[0])",
		"SELECT api.update_listing(id => $target_id, title => $v->[1])", $expect);
	if ($expect eq 'ok' && defined $v->[2])
	{
		is($node->safe_psql($db, "SELECT title = $v->[1] FROM housing.listings WHERE id = $target_id"),
			't', "api.update_listing(title => $v->[0]): stored exactly as given");
	}
	run_case("api.update_listing(status => $v->[0])",
		"SELECT api.update_listing(id => $target_id, status => $v->[1])",
		text_expect($v, sub { !defined $_[0][2] ? 'ok' : '22023' }));
}
for my $v (@BIGINT)
{
	run_case("api.update_listing(price_cents => $v->[0])",
		"SELECT api.update_listing(id => $target_id, price_cents => $v->[1])",
		$v->[3] // (defined $v->[2] && $v->[2] < 0 ? '22023' : 'ok'));
	run_case("api.update_listing(id => $v->[0])", "SELECT api.update_listing(id => $v->[1])",
		$v->[3] // (defined $v->[2] ? 'ok' : '22023'));
}
run_case('api.update_listing(description 1 MB)',
	"SELECT api.update_listing(id => $target_id, description => repeat('d', 1048576))", 'ok');
run_case('api.cache_stats()', 'SELECT api.cache_stats()', 'ok');
run_case('api.cache_stats(1)', 'SELECT api.cache_stats(1)', '42883');

# Request headers as PostgREST passes them, hostile.
for my $h (
	[ 'not JSON', q{'not json'}, 'ok' ],
	[ 'a JSON array', q{'[1,2]'}, 'ok' ],
	[ 'a JSON string', q{'"x"'}, 'ok' ],
	[ 'empty', q{''}, 'ok' ],
	[ 'if-none-match a number', q{'{"if-none-match": 123}'}, 'ok' ],
	[ 'if-none-match null', q{'{"if-none-match": null}'}, 'ok' ],
	[ 'if-none-match an object', q{'{"if-none-match": {"a": [1]}}'}, 'ok' ],
	[ 'if-none-match garbage', lit('{"if-none-match": "W/\\"\\", \\"\\\\\\"\\", *"}'), 'ok' ],
	[ 'if-none-match escaped NUL', q{'{"if-none-match": "\\u0000"}'}, 'ok|22P05' ],
	[ 'duplicate if-none-match', q{'{"if-none-match": "a", "if-none-match": "b"}'}, 'ok' ],
	[ 'if-none-match 8192 bytes', q{'{"if-none-match": "' || repeat('x', 8192) || '"}'}, 'ok' ],
	[ 'if-none-match 9000 bytes', q{'{"if-none-match": "' || repeat('x', 9000) || '"}'}, 'ok' ],
	[ 'if-none-match 1 MB', q{'{"if-none-match": "' || repeat('x', 1048576) || '"}'}, 'ok' ],
	[ 'headers 1 MB', q{'{"x": "' || repeat('x', 1048576) || '"}'}, 'ok' ],
  )
{
	my ($label, $val, $expect, $todo) = @$h;
	run_case("api.listing with request.headers $label",
		"BEGIN; SELECT set_config('request.headers', $val, true); SELECT api.listing(1); COMMIT",
		$expect, $todo);
}
check_group('api', "api.listing(1)::jsonb->'id'", '1');

# --- other public functions ------------------------------------------------------------

for my $c (
	[ 'generate_listings(NULL)', 'SELECT housing_cache.generate_listings(NULL)', '22023' ],
	[ 'generate_listings(-1)', 'SELECT housing_cache.generate_listings(-1)', '22023' ],
	[ 'generate_listings(10000001)', 'SELECT housing_cache.generate_listings(10000001)', '22023' ],
	[ 'generate_listings(int max)', 'SELECT housing_cache.generate_listings(2147483647)', '22023' ],
	[ 'generate_listings(0, NULL)', 'SELECT housing_cache.generate_listings(0, NULL)', '22023' ],
	[ 'generate_listings(0)', 'SELECT housing_cache.generate_listings(0)', 'ok' ],
	[ 'last_lookup()', 'SELECT * FROM housing_cache.last_lookup()', 'ok' ],
	[ 'last_lookup(1)', 'SELECT * FROM housing_cache.last_lookup(1)', '42883' ],
	[ 'stats', 'SELECT * FROM housing_cache.stats', 'ok' ],
	[ 'reset_stats()', 'SELECT housing_cache.reset_stats()', 'ok' ],
	[ 'queries_using(NULL)', 'SELECT housing_cache.queries_using(NULL)', 'ok' ],
	[ 'queries_using(injection)', 'SELECT housing_cache.queries_using(' . lit(q{%'); DROP TABLE housing.listings; --}) . ')', 'ok' ],
	[ 'http_request_header(NULL)', 'SELECT housing_cache.http_request_header(NULL)', 'ok' ],
	[ 'http_request_header(1 MB)', q{SELECT housing_cache.http_request_header(repeat('h', 1048576))}, 'ok' ],
	[ 'http_cache_headers(NULL)', 'SELECT housing_cache.http_cache_headers(NULL)', 'ok' ],
	[ 'http_error(NULLs)', 'SELECT housing_cache.http_error(NULL, NULL, NULL)', 'ok' ],
	[ 'http_error(injection)', 'SELECT housing_cache.http_error(400, ' . lit(q{"}) . ', ' . lit(q{'); DROP TABLE housing.listings; --}) . ')', 'ok' ],
	[ 'setup_api_roles(injection password)',
		'SELECT housing_cache.setup_api_roles(' . lit(q{pw'; DROP TABLE housing.listings; --}) . ')', 'ok' ],
  )
{
	run_case(@$c);
}
check_group('misc', "housing_cache.search_listings(city => 'Denver', page_size => 2)::jsonb->'page_size'", '2');

# --- settings -----------------------------------------------------------------------------

for my $c (
	[ 'key_prefix empty', q{SET housing_cache.key_prefix = ''}, '22023' ],
	[ 'key_prefix 65 bytes', q{SET housing_cache.key_prefix = '} . ('k' x 65) . q{'}, '22023' ],
	[ 'key_prefix blank', q{SET housing_cache.key_prefix = 'a b'}, '22023' ],
	[ 'key_prefix newline', q{SET housing_cache.key_prefix = E'a\nb'}, '22023' ],
	[ 'key_prefix format string', q{SET housing_cache.key_prefix = '%s%n:'}, 'ok' ],
	[ 'key_prefix 64 bytes', q{SET housing_cache.key_prefix = '} . ('k' x 64) . q{'}, 'ok' ],
	[ 'channel control character', q{SET housing_cache.channel = E'c\x01'}, '22023' ],
	[ 'redis_host injection', q{SET housing_cache.redis_host = 'x; FLUSHALL'}, '22023' ],
	[ 'redis_host empty', q{SET housing_cache.redis_host = ''}, '22023' ],
	[ 'redis_host 1 MB', q{SELECT set_config('housing_cache.redis_host', repeat('h', 1048576), false)}, '22023' ],
	[ 'redis_port 0', q{SET housing_cache.redis_port = 0}, '22023' ],
	[ 'redis_port 65536', q{SET housing_cache.redis_port = 65536}, '22023' ],
	[ 'value_secret at run time', q{SET housing_cache.value_secret = 'x'}, '55P02' ],
	[ 'l1_size_mb at run time', q{SET housing_cache.l1_size_mb = 1}, '55P02' ],
	[ 'enabled maybe', q{SET housing_cache.enabled = 'maybe'}, '22023' ],
	[ 'fill_wait_ms -1', q{SET housing_cache.fill_wait_ms = -1}, '22023' ],
	[ 'xfetch_beta NaN', q{SET housing_cache.xfetch_beta = 'NaN'}, '22023' ],
	[ 'xfetch_beta Infinity', q{SET housing_cache.xfetch_beta = 'Infinity'}, '22023' ],
	[ 'default_ttl 0', q{SET housing_cache.default_ttl = 0}, '22023' ],
	[ 'max_value_bytes -1', q{SET housing_cache.max_value_bytes = -1}, '22023' ],
  )
{
	my ($label, $sql, $expect) = @$c;
	run_case("SET $label, then a cached call",
		"$sql; SELECT housing_cache.search_listings(city => 'Boston', page_size => 1) IS NOT NULL", $expect);
}
# Session settings that change how answers print, or how the session runs.
for my $c (
	[ 'TimeZone', q{SET TimeZone = 'Pacific/Chatham'} ],
	[ 'DateStyle', q{SET DateStyle = 'SQL, DMY'} ],
	[ 'IntervalStyle', q{SET IntervalStyle = 'iso_8601'} ],
	[ 'extra_float_digits', q{SET extra_float_digits = -15} ],
	[ 'lc_numeric', q{SET lc_numeric = 'C'} ],
	[ 'search_path shadowing', q{CREATE TEMP TABLE listings (x int); SET search_path = pg_temp, public} ],
	[ 'read-only transaction', q{SET default_transaction_read_only = on} ],
	[ 'serializable', q{SET default_transaction_isolation = 'serializable'} ],
	[ 'work_mem 64kB', q{SET work_mem = '64kB'} ],
  )
{
	my ($label, $sql) = @$c;
	run_case("$label, then cached calls",
		"$sql; SELECT housing_cache.search_listings(city => 'Boston', page_size => 3); "
		  . "SELECT housing_cache.city_stats('Boston'); SELECT housing_cache.get_listing(3)", 'ok');
}
run_case('statement_timeout 1 ms during a fill',
	q{SET statement_timeout = 1; SELECT housing_cache.search_listings(min_price_cents => 1, page => 9999, page_size => 100)},
	'ok|57014');
run_case('cancelled fill, then the same call',
	q{SELECT housing_cache.search_listings(min_price_cents => 1, page => 9999, page_size => 100) IS NOT NULL}, 'ok');
check_group('settings', "housing_cache.city_stats('Boston')::jsonb->'city'", '"Boston"', 1);

# --- privileges: an ordinary role -------------------------------------------------------

for my $c (
	[ 'invalidate', q{SELECT housing_cache.invalidate('housing.listings')}, '42501' ],
	[ 'register_query', "SELECT $rq('hostile.mine', $ok_sql, '{text}', '{public.t_hostile/city=\$1}')", '42501' ],
	[ 'unregister_query', q{SELECT housing_cache.unregister_query('hostile.by_city')}, '42501' ],
	[ 'watch_table', q{SELECT housing_cache.watch_table('public.hostile_sentinel')}, '42501' ],
	[ 'unwatch_table', q{SELECT housing_cache.unwatch_table('public.t_hostile')}, '42501' ],
	[ 'reset_stats', q{SELECT housing_cache.reset_stats()}, '42501' ],
	[ 'generate_listings', q{SELECT housing_cache.generate_listings(1)}, '42501' ],
	[ 'api.listings', q{SELECT api.listings()}, '42501' ],
	[ 'api.update_listing', "SELECT api.update_listing(id => $target_id, title => 'pwned')", '42501' ],
	[ 'setup_api_roles', q{SELECT housing_cache.setup_api_roles('x')}, '42501' ],
	[ 'SET key_prefix', q{SET housing_cache.key_prefix = 'mine:'}, '42501' ],
	[ 'fetch of a table it cannot read', q{SELECT housing_cache.fetch('hostile.by_city', 'Boston')}, '42501' ],
	[ 'write to the query catalog', q{DELETE FROM housing_cache.queries}, '42501' ],
	[ 'write to watched_tables', q{DELETE FROM housing_cache.watched_tables}, '42501' ],
	[ 'search_listings', q{SELECT housing_cache.search_listings(city => 'Boston')}, 'ok' ],
	[ 'if_none_match', q{SELECT housing_cache.if_none_match('*')}, 'ok' ],
  )
{
	my ($label, $sql, $expect) = @$c;
	run_case("as an ordinary role: $label", "SET ROLE hostile_user; $sql", $expect);
}
check_group('privileges', "housing_cache.get_listing(4)::jsonb->'id'", '4', 1);

# --- a SQL_ASCII database: text is bytes, invalid UTF-8 gets in ---------------------------

my $adb = 'hostile_ascii';
$node->safe_psql('postgres',
	"CREATE DATABASE $adb TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql($adb, 'CREATE EXTENSION housing_portal CASCADE; SELECT housing_cache.generate_listings(50);');
$case_db = $adb;
$ENV{PGCLIENTENCODING} = 'SQL_ASCII';    # bytes in, bytes out
for my $v ([ 'invalid UTF-8', q{E'\\xc3\\x28'} ], [ 'lone continuation byte', q{E'\\x80'} ],
	[ 'UTF-16 surrogate', q{E'\\xed\\xa0\\x80'} ], [ 'bytes FF FE', q{E'\\xff\\xfe'} ])
{
	my ($label, $val) = @$v;
	run_case("SQL_ASCII: city_stats($label)", "SELECT housing_cache.city_stats($val)", 'ok');
	run_case("SQL_ASCII: search_listings(city => $label)", "SELECT housing_cache.search_listings(city => $val)", 'ok');
	run_case("SQL_ASCII: invalidate($label)", "SELECT housing_cache.invalidate('housing.listings/city=' || $val)", 'ok');
	run_case("SQL_ASCII: if_none_match($label)",
		"SELECT housing_cache.if_none_match($val), housing_cache.get_listing(1) IS NOT NULL", 'ok');
	run_case("SQL_ASCII: register_query(name => $label)",
		"SELECT $rq($val, 'SELECT json_build_object()', '{}', '{housing.listings}')", '22023');
	run_case("SQL_ASCII: api.city_stats($label)", "SELECT api.city_stats($val)", 'ok');
}
# a listing whose city is not UTF-8: written, invalidated, read back
run_case('SQL_ASCII: a listing in a city that is not UTF-8',
	q{UPDATE housing.listings SET city = E'S\\xe3o' WHERE id = 1; }
	  . q{SELECT housing_cache.city_stats(E'S\\xe3o'), housing_cache.get_listing(1)}, 'ok');
check_group('SQL_ASCII', "housing_cache.get_listing(2)::jsonb->'id'", '2');

# A tag that is not UTF-8 goes into the published JSON with U+FFFD for the
# bytes that are not, so the message stays valid UTF-8
my $drain_until = time + 1;
while (time < $drain_until) { $sub->pump_nb; usleep(20_000); }
$sub_out = '';
$node->safe_psql($adb, q{SELECT housing_cache.invalidate(E'housing.listings/city=S\\xe3o')});
my $raw_re = qr/message\n\Q$channel\E\n([^\n]*)\n/;
ok(wait_for_output($raw_re, 30), 'SQL_ASCII: invalidate() of a tag that is not UTF-8 publishes a message');
my ($raw) = $sub_out =~ $raw_re;
ok(defined $raw && utf8::decode(my $copy = $raw), 'SQL_ASCII: ... and the message is valid UTF-8 JSON');
like($raw // '', qr/S\x{ef}\x{bf}\x{bd}o/, 'SQL_ASCII: ... with U+FFFD for the byte that is not UTF-8');
$case_db = $db;
$ENV{PGCLIENTENCODING} = 'UTF8';

# --- the end state -------------------------------------------------------------------------

# Cached answers still equal the uncached ones.
for my $call (
	"housing_cache.search_listings(city => 'Boston', sort => 'price_asc', page_size => 5)",
	"housing_cache.city_stats('Boston')",
	"housing_cache.get_listing($target_id)",
	"housing_cache.fetch('hostile.by_city', 'Boston')")
{
	my $cached = $node->safe_psql($db, "SELECT ($call)::jsonb; SELECT ($call)::jsonb");
	my ($first, $second) = split /\n/, $cached;
	my $uncached = $node->safe_psql($db, "SET housing_cache.enabled = off; SELECT ($call)::jsonb");
	is($second, $uncached, "cached equals uncached: $call");
}

my @names = split /\n/, $node->safe_psql($db,
	"SELECT name FROM housing_cache.queries WHERE fetchable ORDER BY name");
my @expected = sort('hostile.by_city', 'hostile.by_id', keys %registered);
my %is_expected = map { $_ => 1 } @expected;
is_deeply([ grep { !$is_expected{$_} } @names ], [], 'no query registered that no case meant to register');

# The server log: no crash, no assertion, no PANIC, no leaked resource.
my $log = slurp_file($node->logfile);
for my $bad (
	[ qr/terminated by signal|was terminated|terminating any other active server processes/, 'no backend crash' ],
	[ qr/TRAP:|PANIC:/, 'no assertion failure or PANIC' ],
	[ qr/(?:leak|leaked)/i, 'no resource-leak warning' ],
	[ qr/non-empty SPI stack|SPI_finish failed/, 'no SPI left connected' ],
	[ qr/ERROR:\s+(?:XX\d{3}|internal)/, 'no internal error logged' ])
{
	my ($re, $what) = @$bad;
	my @hits = grep { /$re/ } split /\n/, $log;
	ok(!@hits, "server log: $what") or diag(join("\n", @hits[ 0 .. ($#hits < 4 ? $#hits : 4) ]));
}

$node->stop;
done_testing();
