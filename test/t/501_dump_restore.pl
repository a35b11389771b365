# pg_dump and pg_restore of a database using the engine and the portal,
# with every standard option: a plain script through psql (ON_ERROR_STOP),
# the custom format, --single-transaction, -j 2, and --clean --if-exists
# over the source itself.  Each must finish without an error, and the
# restored database must have the same rows, its tables watched (their
# triggers once each), its queries registered with their owners, and answers
# that are right, cached, and invalidated by writes.
use strict;
use warnings;

use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('dump_restore', redis => $redis, create_extension => 0);
my $dir = tempdir('dump_XXXX', TMPDIR => 1, CLEANUP => 1);

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
CREATE EXTENSION housing_portal CASCADE;
SELECT housing_cache.generate_listings(300);
CREATE ROLE dump_owner;
GRANT EXECUTE ON FUNCTION housing_cache.register_query(text, text, regtype[], text[], int, boolean, boolean, text, text[], text) TO dump_owner;
GRANT EXECUTE ON FUNCTION housing_cache.watch_table(regclass, name) TO dump_owner;
GRANT CREATE ON SCHEMA public TO dump_owner;

-- a table of the user's own, watched by a partition column
CREATE TABLE public.t (id int PRIMARY KEY, cat text, v int);
INSERT INTO public.t SELECT i, 'c' || (i % 3), i FROM generate_series(1, 30) AS i;
SELECT housing_cache.watch_table('public.t', 'cat');
SELECT housing_cache.register_query('t.by_cat',
    'SELECT json_agg(id ORDER BY id) FROM public.t WHERE cat = $1', '{text}', '{public.t/cat=$1}');

-- a partitioned table (its TRUNCATE triggers are per partition)
CREATE TABLE public.pt (id int, region text) PARTITION BY LIST (region);
CREATE TABLE public.pt_a PARTITION OF public.pt FOR VALUES IN ('a');
CREATE TABLE public.pt_b PARTITION OF public.pt FOR VALUES IN ('b');
INSERT INTO public.pt VALUES (1, 'a'), (2, 'b'), (3, 'a');
SELECT housing_cache.watch_table('public.pt', 'region');
SELECT housing_cache.register_query('pt.by_region',
    'SELECT json_agg(id ORDER BY id) FROM public.pt WHERE region = $1', '{text}', '{public.pt/region=$1}');

-- a table and a query of another role
SET ROLE dump_owner;
CREATE TABLE public.owned (id int PRIMARY KEY, v int);
INSERT INTO public.owned VALUES (1, 10), (2, 20);
SELECT housing_cache.watch_table('public.owned');
SELECT housing_cache.register_query('owned.sum', 'SELECT json_build_object(''s'', sum(v)) FROM public.owned',
    '{}', '{public.owned}');
RESET ROLE;
});

# What must be the same after a restore.
my %probe = (
	rows => q{SELECT (SELECT count(*) || ':' || md5(string_agg(l::text, ',' ORDER BY id)) FROM housing.listings l)
	          || '/' || (SELECT count(*) FROM public.t) || '/' || (SELECT count(*) FROM public.pt)},
	watched => q{SELECT string_agg(table_tag || ':' || coalesce(partition_column, '-') || ':' || coalesce(id_column, '-'),
	               ',' ORDER BY table_tag) FROM housing_cache.watched_tables},
	queries => q{SELECT string_agg(name || ':' || owner || ':' || fetchable || ':' || coalesce(extension, '-') || ':' || md5(sql),
	               ',' ORDER BY name) FROM housing_cache.queries},
	triggers => q{SELECT string_agg(t, ',' ORDER BY t) FROM (
	                 SELECT tgrelid::regclass || '.' || tgname || '=' || tgenabled::text AS t
	                   FROM pg_trigger WHERE tgname LIKE 'housing_cache%') AS x},
	answers => q{SELECT housing_cache.fetch('t.by_cat', 'c1')::text || housing_cache.fetch('pt.by_region', 'a')::text
	               || housing_cache.fetch('owned.sum')::text || (housing_cache.get_listing(5) ->> 'title')
	               || (housing_cache.search_listings('Boston') ->> 'total')},
	extensions => q{SELECT string_agg(extname || ' ' || extversion, ',' ORDER BY extname) FROM pg_extension
	                  WHERE extname LIKE 'housing%'},);

sub snapshot
{
	my ($db) = @_;
	return { map { $_ => $node->safe_psql($db, $probe{$_}) } keys %probe };
}

my $want = snapshot('src');
like($want->{triggers}, qr/pt_a\.housing_cache_invalidate_truncate/, 'the source has its triggers');

my @conn = ('-h', $node->host, '-p', $node->port);
command_ok([ 'pg_dump', @conn, '-Fc', '-f', "$dir/src.dump", 'src' ], 'pg_dump -Fc');
command_ok([ 'pg_dump', @conn, '-f', "$dir/src.sql", 'src' ], 'pg_dump (plain)');

# The restored database works: cached, and invalidated by writes.
sub works
{
	my ($db, $label) = @_;
	my $sql = sub { $node->safe_psql($db, $_[0]) };
	$sql->(q{SELECT housing_cache.fetch('t.by_cat', 'c1')});
	is(cached_call($sql, q{housing_cache.fetch('t.by_cat', 'c1')})->{tier}, 'l1', "$label: answers are cached");
	$sql->(q{UPDATE public.t SET cat = 'c2' WHERE id = 1});
	unlike($sql->(q{SELECT housing_cache.fetch('t.by_cat', 'c1')::text}), qr/\[1,/, "$label: a write invalidates");
	$sql->(q{INSERT INTO public.pt VALUES (5, 'a')});
	like($sql->(q{SELECT housing_cache.fetch('pt.by_region', 'a')::text}), qr/5\]$/,
		"$label: a write to a partition invalidates");
	$sql->(q{UPDATE housing.listings SET title = 'After restore' WHERE id = 5});
	is($sql->(q{SELECT housing_cache.get_listing(5) ->> 'title'}), 'After restore', "$label: the portal's answers too");
	return;
}

my @modes = (
	[ 'plain', [ 'psql', '-X', '-q', @conn, '-v', 'ON_ERROR_STOP=1', '-f', "$dir/src.sql" ] ],
	[ 'custom', [ 'pg_restore', @conn, "$dir/src.dump" ] ],
	[ 'single transaction', [ 'pg_restore', @conn, '--single-transaction', '--exit-on-error', "$dir/src.dump" ] ],
	[ 'parallel', [ 'pg_restore', @conn, '-j', '2', "$dir/src.dump" ] ],);
my $n = 0;
for my $m (@modes)
{
	my ($label, $cmd) = @$m;
	my $db = 'restored' . ++$n;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	my ($stdout, $stderr) = ('', '');
	my $ok = IPC::Run::run([ @$cmd, '-d', $db ], '>', \$stdout, '2>', \$stderr);
	ok($ok, "$label: the restore succeeds") or diag($stderr);
	unlike($stderr, qr/ERROR|error:/, "$label: without an error");
	is_deeply(snapshot($db), $want, "$label: rows, watched tables, queries, triggers and answers as in the source");
	works($db, $label);
}

# --clean --if-exists over the source: everything dropped and restored.
{
	my ($stdout, $stderr) = ('', '');
	my $ok = IPC::Run::run([ 'pg_restore', @conn, '--clean', '--if-exists', '-d', 'src', "$dir/src.dump" ],
		'>', \$stdout, '2>', \$stderr);
	ok($ok, '--clean --if-exists over the source succeeds') or diag($stderr);
	unlike($stderr, qr/ERROR|error:/, '... without an error');
	is_deeply(snapshot('src'), $want, '... and leaves it as it was');
	works('src', '--clean');
}

$node->stop;
$redis->stop;
done_testing();
