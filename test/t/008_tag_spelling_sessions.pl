# A write invalidates the answers of an equal value, whatever the writer's
# and the reader's sessions print it as.  The reader is one session with its
# settings; each write comes from another session, with other settings
# (TimeZone, DateStyle, IntervalStyle, extra_float_digits) and another
# spelling of an equal value.  (test/sql/tag_spelling.sql has the same
# cases within one session.)
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('spelling', redis => $redis);

# type, the reader's spelling, the writer's spelling of an equal value
my @cases = (
	[ 'numeric', '1.00', '1.0' ],
	[ 'float8', '-0', '0' ],
	[ 'text COLLATE ci', 'books', 'BOOKS' ],
	[ 'timestamptz', '2026-01-02 00:00:00+00', '2026-01-01 19:00:00' ],
	[ 'date', '2026-01-02', '02/01/2026' ],
	[ 'interval', '24:00:00', '1 day' ],
	[ 'bpchar(6)', 'ab', 'ab   ' ],
	[ 'int8', '42', '042' ],);

$node->safe_psql('postgres', q{
CREATE COLLATION public.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE SCHEMA sp;});
for my $i (0 .. $#cases)
{
	my ($type, $read) = @{ $cases[$i] };
	(my $plain = $type) =~ s/ COLLATE .*//;
	$node->safe_psql('postgres', qq{
CREATE TABLE sp.t$i (id int PRIMARY KEY, c $type);
INSERT INTO sp.t$i VALUES (1, '$read');
SELECT housing_cache.watch_table('sp.t$i', 'c');
SELECT housing_cache.register_query('sp.q$i',
    'SELECT json_agg(id ORDER BY id) FROM sp.t$i WHERE c = \$1', '{$plain}', '{sp.t$i/c=\$1}');});
}

my $reader = $node->background_psql('postgres');
$reader->query_safe(q{SET timezone = 'UTC'; SET datestyle = 'ISO, MDY'; SET intervalstyle = 'postgres'});
my $writer_settings = q{SET timezone = 'America/New_York'; SET datestyle = 'SQL, DMY'; }
  . q{SET intervalstyle = 'sql_standard'; SET extra_float_digits = 0;};

for my $i (0 .. $#cases)
{
	my ($type, $read, $write) = @{ $cases[$i] };
	my $call = "housing_cache.fetch('sp.q$i', '$read')";
	cached_call(sub { $reader->query_safe($_[0]) }, $call);
	my $hit = cached_call(sub { $reader->query_safe($_[0]) }, $call);
	is_deeply([ $hit->{tier} =~ /^l[12]$/ ? 1 : 0, $hit->{json} ], [ 1, [1] ],
		"$type: the reader's answer for '$read' is cached");

	$node->safe_psql('postgres', "$writer_settings INSERT INTO sp.t$i VALUES (2, '$write')");
	my $after = cached_call(sub { $reader->query_safe($_[0]) }, $call);
	is_deeply($after->{json}, [ 1, 2 ],
		"$type: a write of '$write' in another session with other settings invalidates it");
}
$reader->quit;

done_testing();
