# Purge latency: from a COMMIT's acknowledgement to the edge no longer
# serving the answer it changed, on loopback.
#
# Per write: a listing's page is cached at the edge (a HIT); an UPDATE of
# its price commits (autocommit, over libpq); then one client polls the
# page through the edge over a kept-alive connection until the new price
# shows.  The latency is the time from the UPDATE's return to that answer
# (it includes one request's round trip, about 0.2 ms here).  Rounds of
# writes, each with its p50, p99 and max; the median of the rounds'
# figures is what edge/README.md quotes:
#
#   HC_SUITES=edge HC_EDGE_TESTS=test/edge/004_purge_latency.pl make test
#   HC_EDGE_LATENCY_ROUNDS=5 HC_EDGE_LATENCY_WRITES=200 ...    (more)
#
# The assertion is generous (p99 under 250 ms, every write under 1 s): the
# figures are for the report; 003's bound is chosen from them.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http";

use DBI;
use HTTP::Tiny;
use JSON::PP;
use List::Util qw(max sum);
use Test::More;
use Time::HiRes qw(time usleep);

use HcHttp;
use EdgeStack;

EdgeStack::require_varnish();

my $rounds = $ENV{HC_EDGE_LATENCY_ROUNDS} // 3;
my $writes = $ENV{HC_EDGE_LATENCY_WRITES} // 100;

my $stack = HcHttp->new(name => 'edge_latency', listings => 500, conf => "housing_cache.heartbeat_ms = 200\n");
my $node = $stack->node;
my $contract = $node->safe_psql('postgres', "SELECT to_regprocedure('housing_cache.edge_key(text)') IS NOT NULL");
if ($contract ne 't')
{
	fail('the installed housing_cache implements the edge contract');
	diag('the engine side of edge/README.md is not installed: make && make install at the top of the tree');
	done_testing();
	exit;
}

my $srv = $stack->start_server('--pool', '4', '--quiet');
my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);
my $purger = EdgeStack::Purger->start(redis => $stack->redis, edges => [$edge],
	args => [ '--heartbeat-ms', 200, '--heartbeat-timeout-ms', 1000 ]);
ok($purger->wait_log(qr/vouching for the edges/, 15), 'the purger vouches') or diag($purger->log_text);
usleep(500_000);

my @ids = split /\n/, $node->safe_psql('postgres',
	"SELECT id FROM housing.listings WHERE status = 'active' ORDER BY id LIMIT 50");
my $dbh = DBI->connect('dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port, '', '',
	{ AutoCommit => 1, RaiseError => 1, PrintError => 0 });
my $update = $dbh->prepare('UPDATE housing.listings SET price_cents = $1 WHERE id = $2');
my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 5);
my $json = JSON::PP->new;

sub fetch
{
	my ($id) = @_;
	my $res = $http->get($edge->base . "/api/rpc/listing?id=$id");
	my $doc = eval { $json->decode($res->{content}) } // {};
	return ($res->{headers}{'x-edge-cache'} // '', $doc->{price_cents} // -1);
}

sub pct
{
	my ($p, @sorted) = @_;
	return $sorted[ int($p * $#sorted + 0.5) ];
}

my $price = 90_000_000;
my (@p50, @p99, @pmax, @all);
for my $round (1 .. $rounds)
{
	my @lat;
	my $not_cached = 0;
	for my $i (1 .. $writes)
	{
		my $id = $ids[ $i % @ids ];
		# cached first
		my $t = time;
		my ($state) = fetch($id);
		($state) = fetch($id) while $state ne 'HIT' && time - $t < 2;
		$not_cached++ if $state ne 'HIT';
		$price++;
		$update->execute($price, $id);
		my $t0 = time;
		my ($st, $seen);
		do { ($st, $seen) = fetch($id) } while $seen != $price && time - $t0 < 5;
		push @lat, time - $t0;
	}
	my @s = sort { $a <=> $b } @lat;
	push @p50, pct(0.50, @s);
	push @p99, pct(0.99, @s);
	push @pmax, $s[-1];
	push @all, @s;
	diag(sprintf('round %d: %d writes, p50 %.2f ms, p99 %.2f ms, max %.2f ms%s', $round, scalar @s,
			1000 * $p50[-1], 1000 * $p99[-1], 1000 * $pmax[-1],
			$not_cached ? " ($not_cached pages not cached before the write)" : ''));
}
my $median = sub { my @s = sort { $a <=> $b } @_; return $s[ int($#s / 2) ] };
my $summary = sprintf('purge latency, commit to edge purged (median of %d rounds of %d): p50 %.2f ms, p99 %.2f ms, max %.2f ms',
	$rounds, $writes, 1000 * $median->(@p50), 1000 * $median->(@p99), 1000 * max(@pmax));
diag($summary);
if (open my $fh, '>', "$PostgreSQL::Test::Utils::log_path/004_purge_latency.txt")
{
	print $fh "$summary\n";
	printf $fh "%.6f\n", $_ for @all;
	close $fh;
}

cmp_ok($median->(@p99), '<', 0.25, 'p99 under 250 ms');
cmp_ok(max(@pmax), '<', 1, 'every write purged within 1 s');

done_testing();
