=pod

=head1 NAME

HcReliability::Listings - readers and writers of versioned listings

=head1 SYNOPSIS

  use HcReliability::Listings qw(db_writer db_reader http_reader);

  $wl->spawn('w0', db_writer(dsn => $dsn, ids => [1 .. 6]));
  $wl->spawn('r0', db_reader(dsn => $dsn, ids => [1 .. 12],
                             cities => ['Boston', 'Denver', undef]));
  $wl->spawn('h0', http_reader(base => 'http://127.0.0.1:8080', ...));

=head1 DESCRIPTION

The workload of the no-stale-reads checker (see HcReliability::History).
A listing's C<price_cents> is its I<version>: each writer owns some
listings and commits strictly increasing versions of them, one listing per
autocommit C<UPDATE> or two in one transaction; readers read them through
the cached functions (C<get_listing>, C<search_listings> with a city
filter or none) or through the development HTTP server
(C<GET /api/rpc/listing?id=N>, C<GET /api/rpc/listings?city=X>).

Every operation is recorded (HcReliability::Workload) with its start and
end on the monotonic clock:

  W  worker  start  end  ok|unknown|failed|aborted  ids  versions  error
  R  worker  start  end  ok|err  source  id:version,...  error
  C  worker  start  end  err  (connect)  -  error

A write is C<ok> when its COMMIT was acknowledged, C<failed> when it
certainly did not commit (an error before COMMIT was sent), and
C<unknown> when the connection broke while COMMIT (or an autocommit
statement) was in flight, C<aborted> when it was rolled back on purpose
(see C<rollback_pct>).  Errors are recorded as C<class:sqlstate:message>
where class is C<conn> for errors PostgreSQL itself gives while it shuts
down, restarts or refuses connections (see C<error_class>) and C<other> for
anything else.

=cut

package HcReliability::Listings;

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;
use Time::HiRes qw(usleep);

our @EXPORT_OK = qw(db_writer db_reader http_reader error_class commit_status);

my $json = JSON::PP->new;

=pod

=head2 error_class($sqlstate, $message)

C<conn> for the errors of a server that is going away, starting, in crash
recovery or full (SQLSTATE classes 08 and 57P, 53300, libpq's own
connection failures), C<other> otherwise.

=cut

sub error_class
{
	my ($state, $msg) = @_;
	$state //= '';
	$msg //= '';
	return 'conn' if $state =~ /^(08|57P|53300|S8006)/;
	return 'conn'
	  if $msg =~ /server closed the connection|terminating connection|could not connect|connection to server|Connection refused|no connection to the server|the database system is (starting up|shutting down|in recovery mode|not yet accepting)|could not (send|receive) data|connection not open|too many clients|server conn crashed|Broken pipe|Connection reset/i;
	return 'other';
}

=pod

=head2 commit_status($dbh)

COMMIT the transaction of C<$dbh> (AutoCommit off); returns C<('ok', '')>
when the server acknowledged it, C<('unknown', $error)> when the
connection broke (it may or may not have committed) and C<('failed',
$error)> otherwise.  DBD::Pg's C<commit> returns true even when the server
ended the connection instead of committing; the error is what tells.

=cut

sub commit_status
{
	my ($dbh) = @_;
	my $committed = $dbh->commit;
	return ('ok', '') if $committed && !$dbh->err;
	my $e = _err($dbh->state, $dbh->errstr);
	return ($e =~ /^conn/ ? 'unknown' : 'failed', $e);
}

sub _err
{
	my ($state, $msg) = @_;
	$msg //= '';
	$msg =~ s/\s+/ /g;
	$msg = substr($msg, 0, 300);
	return join(':', error_class($state, $msg), $state // '', $msg);
}

sub _connect
{
	my ($w, $o) = @_;
	require DBI;
	while (!$w->stopping)
	{
		my $t0 = $w->now;
		my $dbh = DBI->connect($o->{dsn}, $o->{user} // '', $o->{password} // '',
			{ AutoCommit => 1, RaiseError => 0, PrintError => 0, pg_server_prepare => 1 });
		return $dbh if $dbh;
		no warnings 'once';
		$w->record('C', $t0, $w->now, 'err', 'connect', '', _err($DBI::state, $DBI::errstr));
		usleep(50_000);
	}
	return undef;
}

sub _pause
{
	my ($o) = @_;
	my $us = $o->{think_us} // 0;
	usleep(int(rand($us))) if $us > 0;
	return;
}

=pod

=head2 db_writer(dsn => ..., ids => [...], initial => {id => version}, pair_pct => 25, rollback_pct => 0)

With C<rollback_pct>, that share of writes is a I<phantom>: a new version
written in a transaction that reads it back through the cache in the same
statement as the write (C<UPDATE ... RETURNING get_listing(id)>, or a
data-modifying CTE whose main query searches the listing's city) and then
rolls back.  It is recorded as an C<aborted> write of that version, so a
reader that is ever served it is reported as a phantom read: the answer
computed from the uncommitted row reached the shared cache.

=cut

sub db_writer
{
	my (%o) = @_;
	return sub {
		my ($w) = @_;
		my @ids = @{ $o{ids} };
		my %version = map { $_ => ($o{initial}{$_} // 0) } @ids;
		my $pair_pct = $o{pair_pct} // 25;
		my $rollback_pct = $o{rollback_pct} // 0;
		my $think = { think_us => $o{think_us} // 4000 };
		my $dbh;
		my ($sth, @phantom);
		while (!$w->stopping)
		{
			if (!$dbh)
			{
				$dbh = _connect($w, \%o) or last;
				$sth = $dbh->prepare('UPDATE housing.listings SET price_cents = $1 WHERE id = $2');
				@phantom = (
					$dbh->prepare(q{UPDATE housing.listings SET price_cents = $1 WHERE id = $2
					                RETURNING (housing_cache.get_listing(id) ->> 'price_cents')::bigint}),
					$dbh->prepare(q{WITH u AS (UPDATE housing.listings SET price_cents = $1 WHERE id = $2
					                           RETURNING id, city)
					                SELECT (SELECT (i ->> 'price_cents')::bigint
					                          FROM json_array_elements(housing_cache.search_listings(
					                                   city => u.city, sort => 'price_asc', page_size => 100) -> 'items') i
					                         WHERE (i ->> 'id')::bigint = u.id)
					                  FROM u}));
			}
			if (rand(100) < $rollback_pct)
			{
				my $id = $ids[ int(rand(@ids)) ];
				my $v = ++$version{$id};
				my $p = $phantom[ int(rand(@phantom)) ];
				my $t0 = $w->now;
				$dbh->begin_work;
				my $rv = $p->execute($v, $id);
				my $row = $rv ? $p->fetchrow_arrayref : undef;
				my $err = $rv ? '' : _err($p->state, $p->errstr);
				$dbh->rollback;
				# the writer itself must read its own, uncommitted version
				$err = "other::the writer read " . ($row->[0] // 'null') . " instead of its own $v"
				  if $rv && (!$row || ($row->[0] // -1) != $v);
				$w->record('W', $t0, $w->now, $err ? ($err =~ /^conn/ ? 'unknown' : 'failed') : 'aborted',
					$id, $v, $err);
				_pause($think);
				next;
			}
			my @batch = ($ids[ int(rand(@ids)) ]);
			if (@ids > 1 && rand(100) < $pair_pct)
			{
				my $other;
				do { $other = $ids[ int(rand(@ids)) ] } while ($other == $batch[0]);
				push @batch, $other;
			}
			my @vers = map { ++$version{$_} } @batch;
			my ($status, $err) = ('ok', '');
			my $t0 = $w->now;
			if (@batch == 1)
			{
				my $rv = $sth->execute($vers[0], $batch[0]);
				if (!$rv)
				{
					my $e = _err($sth->state, $sth->errstr);
					($status, $err) = ($e =~ /^conn/ ? 'unknown' : 'failed', $e);
				}
				elsif ($rv != 1)
				{
					($status, $err) = ('failed', "other::updated $rv rows");
				}
			}
			else
			{
				$dbh->begin_work;
				for my $i (0 .. $#batch)
				{
					next if $sth->execute($vers[$i], $batch[$i]);
					($status, $err) = ('failed', _err($sth->state, $sth->errstr));
					last;
				}
				($status, $err) = commit_status($dbh) if $status eq 'ok';
				$dbh->rollback if $status eq 'failed';
			}
			my $t1 = $w->now;
			$w->record('W', $t0, $t1, $status, join(',', @batch), join(',', @vers), $err);
			if ($status ne 'ok' && (!$dbh->ping))
			{
				$dbh->disconnect;
				$dbh = undef;
			}
			_pause($think);
		}
		$dbh->disconnect if $dbh;
	};
}

# "id:price_cents" pairs of a decoded answer (a listing or a search page).
sub _pairs
{
	my ($doc) = @_;
	return 'null' unless defined $doc;
	my @items = ref $doc eq 'HASH' && exists $doc->{items} ? @{ $doc->{items} } : ($doc);
	return join(',', map { "$_->{id}:$_->{price_cents}" } @items);
}

=pod

=head2 db_reader(dsn => ..., ids => [...], cities => [..., undef], search_pct => 40, server => 'sb1')

C<undef> in C<cities> searches every city.

With C<server>, the reader reads a hot standby of that name: its sources
are prefixed with it (C<sb1-get:5>), and before each cached read it reads
the same listings directly, without the cache (C<sb1-direct:...>).  A
standby lags behind the primary, so the checker does not hold its reads to
the primary's acknowledgements, but to that standby's own earlier reads: a
cached read older than a direct read that ended before it began is a
regression, an answer older than what the standby itself shows.

=cut

sub db_reader
{
	my (%o) = @_;
	return sub {
		my ($w) = @_;
		my @ids = @{ $o{ids} };
		my @cities = @{ $o{cities} };
		my $search_pct = $o{search_pct} // 40;
		my $prefix = defined $o{server} ? "$o{server}-" : '';
		my ($dbh, $get, $search, $direct);
		while (!$w->stopping)
		{
			if (!$dbh)
			{
				$dbh = _connect($w, \%o) or last;
				$get = $dbh->prepare('SELECT housing_cache.get_listing($1::bigint)::text');
				$search = $dbh->prepare(
					q{SELECT housing_cache.search_listings(city => $1::text, sort => 'price_asc', page_size => 100)::text});
				$direct = $dbh->prepare(
					q{SELECT string_agg(id || ':' || price_cents, ',' ORDER BY id) FROM housing.listings
					   WHERE id = ANY ($1::bigint[])});
			}
			my ($sth, $source, @args, @of);
			if (rand(100) < $search_pct)
			{
				my $city = $cities[ int(rand(@cities)) ];
				($sth, $source, @args) = ($search, $prefix . 'search:' . ($city // '*'), $city);
				@of = grep { !defined $city || $o{city_of}{$_} eq $city } @ids if $o{city_of};
			}
			else
			{
				my $id = $ids[ int(rand(@ids)) ];
				($sth, $source, @args) = ($get, $prefix . "get:$id", $id);
				@of = ($id);
			}
			if ($prefix && @of)
			{
				my $d0 = $w->now;
				my $ok = $direct->execute('{' . join(',', @of) . '}');
				my $drow = $ok ? $direct->fetchrow_arrayref : undef;
				my $d1 = $w->now;
				if ($ok && $drow)
				{
					$w->record('R', $d0, $d1, 'ok', $prefix . 'direct:' . join('+', @of), $drow->[0] // 'null', '');
				}
				else
				{
					my $e = _err($direct->state, $direct->errstr // 'no row');
					$w->record('R', $d0, $d1, 'err', $prefix . 'direct:' . join('+', @of), '', $e);
					if ($e =~ /^conn/ || !$dbh->ping)
					{
						$dbh->disconnect;
						$dbh = undef;
					}
					_pause(\%o);
					next;
				}
				$direct->finish;
			}
			my $t0 = $w->now;
			my $rv = $sth->execute(@args);
			my $row = $rv ? $sth->fetchrow_arrayref : undef;
			my $t1 = $w->now;
			if ($rv && $row)
			{
				my $doc = defined $row->[0] ? eval { $json->decode($row->[0]) } : undef;
				if (defined $row->[0] && !defined $doc)
				{
					$w->record('R', $t0, $t1, 'err', $source, '', 'other::not JSON: ' . substr($row->[0], 0, 100));
				}
				else
				{
					$w->record('R', $t0, $t1, 'ok', $source, _pairs($doc), '');
				}
				$sth->finish;
			}
			else
			{
				my $e = _err($sth->state, $sth->errstr // 'no row');
				$w->record('R', $t0, $t1, 'err', $source, '', $e);
				if ($e =~ /^conn/ || !$dbh->ping)
				{
					$dbh->disconnect;
					$dbh = undef;
				}
			}
			_pause(\%o);
		}
		$dbh->disconnect if $dbh;
	};
}

=pod

=head2 http_reader(base => 'http://127.0.0.1:PORT', ids => [...], cities => [...])

Reads through the development HTTP server, over keep-alive connections.
A 503, a connection failure (HTTP::Tiny's 599) and a 500 whose body carries
one of PostgreSQL's shutdown or startup SQLSTATEs are of class C<conn>.

=cut

sub http_reader
{
	my (%o) = @_;
	return sub {
		my ($w) = @_;
		require HTTP::Tiny;
		my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 15);
		my @ids = @{ $o{ids} };
		my @cities = @{ $o{cities} };
		my $search_pct = $o{search_pct} // 40;
		while (!$w->stopping)
		{
			my ($path, $source);
			if (rand(100) < $search_pct)
			{
				my $city = $cities[ int(rand(@cities)) ];
				$path = '/api/rpc/listings?sort=price_asc&page_size=100'
				  . (defined $city ? "&city=$city" : '');
				$source = 'http_search:' . ($city // '*');
			}
			else
			{
				my $id = $ids[ int(rand(@ids)) ];
				$path = "/api/rpc/listing?id=$id";
				$source = "http_get:$id";
			}
			my $t0 = $w->now;
			my $res = $http->get($o{base} . $path, { headers => { Accept => 'application/json' } });
			my $t1 = $w->now;
			my $doc = eval { $json->decode($res->{content} // '') };
			if ($res->{status} == 200 && ref $doc)
			{
				$w->record('R', $t0, $t1, 'ok', $source, _pairs($doc), '');
			}
			else
			{
				my $code = ref $doc eq 'HASH' ? ($doc->{code} // '') : '';
				my $msg = ref $doc eq 'HASH' ? ($doc->{message} // '') : ($res->{content} // '');
				my $class =
				    $res->{status} == 599 || $res->{status} == 503 ? 'conn'
				  : error_class($code, $msg);
				$msg =~ s/\s+/ /g;
				$w->record('R', $t0, $t1, 'err', $source, '',
					join(':', $class, $code, "HTTP $res->{status} " . substr($msg, 0, 200)));
				usleep(20_000) if $class eq 'conn';
			}
			_pause(\%o);
		}
	};
}

1;
