=pod

=head1 NAME

HcReliability::Composed - versioned titles, for the no-stale checker of composed answers

=head1 SYNOPSIS

  use HcReliability::Composed qw(composed_writer composed_reader check_composed);

  $wl->spawn('w0', composed_writer(dsn => $dsn, ids => [1 .. 6],
                                   initial => { 1 => [0, 3000], ... }));
  $wl->spawn('r0', composed_reader(dsn => $dsn, city_of => \%city_of));
  ...
  my $h = HcReliability::History->load($dir)->check(...);   # stale, phantom, ...
  my $c = check_composed($dir, city_of => \%city_of, initial => \%initial);
  $c->{totals}{order};                                     # 0 is the only right answer

=head1 DESCRIPTION

The workload of F<test/t/307_composed_no_stale.pl>.  A search page is a
composed answer (README, "Composed queries"): an id list, which depends on
the columns the search filters and sorts on, and one card per listing,
cached by id, which depends on the columns it shows.  So a listing's
I<version> lives in a column only the card shows, its title:

  title = 'v<version> p<price_cents>'

Each writer owns some listings and commits strictly increasing versions of
them: either the title alone (the price kept: the card changes, no id
list does) or title and price together (the id lists of the city change,
and the order of the city's listings by price often does).  The title is
computed from the row in the same UPDATE, so it always names the row's own
price.

Readers read C<search_listings(city, sort =E<gt> 'price_asc')> with
C<page_size =E<gt> 100> (every listing of the city; source C<search:CITY>,
which HcReliability::History checks for completeness) or C<page_size =E<gt>
3>, C<page =E<gt> 1> or C<2> (sources C<page1:CITY>, C<page2:CITY>), and
record C<id:version:price> for each item, which HcReliability::History reads
as C<id:version>.  Each answer must also be the answer of one moment, which
the reader checks itself (see L</page_violations>); a violation is recorded
as a failed read of class C<other> (C<other::composed-KIND: ...>), which the
History checker fails on, and counted by kind by L</check_composed>.

Records (HcReliability::Workload):

  W  worker  start  end  ok|unknown|failed|aborted  ids  versions  error  prices
  R  worker  start  end  ok   source  id:version:price,...
  R  worker  start  end  err  source  -  other::composed-KIND: detail

C<prices> is what each listing's price is at the version written (C<?> when
it is not known: a title-only write whose outcome is unknown).

=cut

package HcReliability::Composed;

use strict;
use warnings;

use Exporter 'import';
use JSON::PP;
use Time::HiRes qw(usleep);

use HcReliability::Listings qw(commit_status error_class);

our @EXPORT_OK = qw(composed_writer composed_reader page_violations check_composed read_listings);

my $json = JSON::PP->new;

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
		my $dbh = DBI->connect($o->{dsn}, '', '',
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
	my ($us) = @_;
	usleep(int(rand($us))) if $us > 0;
	return;
}

=pod

=head2 read_listings($dbh_or_node_psql, \@ids)

Not a worker: C<{ id =E<gt> [version, price] }> parsed from the titles, for
the C<initial> of a writer and of the checkers.  Takes a code reference
that runs SQL and returns its output (e.g. C<sub { $node-E<gt>safe_psql('postgres', $_[0]) }>).

=cut

sub read_listings
{
	my ($run, $ids) = @_;
	my $out = $run->('SELECT id, title, price_cents FROM housing.listings WHERE id IN ('
		  . join(',', @$ids) . ') ORDER BY id');
	my %cur;
	for my $line (split /\n/, $out)
	{
		my ($id, $title, $price) = split /\|/, $line;
		die "read_listings: listing $id has title '$title'\n" unless $title =~ /^v(\d+) p(\d+)$/;
		die "read_listings: listing $id: title '$title' but price $price\n" unless $2 == $price;
		$cur{$id} = [ $1, $price ];
	}
	return \%cur;
}

=pod

=head2 composed_writer(dsn => ..., ids => [...], initial => {id => [version, price]}, ...)

Options: C<price_pct> (share of writes that change the price too, default
50), C<pair_pct> (two listings of the same city in one transaction, default
20), C<rollback_pct> (a write that reads its new version back through
C<search_listings> in the same statement, a data-modifying CTE, then rolls
back: recorded C<aborted>; default 0), C<prices> (new prices are drawn from
C<1000 * (1 .. prices)>, default 12: with six listings in a city the order
changes at most writes, and ties, broken by id, are frequent),
C<think_us>, and C<invalidate_ids> (each transaction also calls
C<housing_cache.invalidate('housing.listings/id=N')> for its listings: with
the invalidation trigger disabled, the cards are invalidated and the id
lists not, a negative control of the order and membership checks).

=cut

sub composed_writer
{
	my (%o) = @_;
	return sub {
		my ($w) = @_;
		my @ids = @{ $o{ids} };
		my %city_of = %{ $o{city_of} };
		my %version = map { $_ => $o{initial}{$_}[0] } @ids;
		my %price = map { $_ => $o{initial}{$_}[1] } @ids;
		my $price_pct = $o{price_pct} // 50;
		my $pair_pct = $o{pair_pct} // 20;
		my $rollback_pct = $o{rollback_pct} // 0;
		my $nprices = $o{prices} // 12;
		my $think = $o{think_us} // 6000;
		my ($dbh, $title_only, $both, $inval, $phantom);
		my $new_price = sub { return 1000 * (1 + int(rand($nprices))) };
		while (!$w->stopping)
		{
			if (!$dbh)
			{
				$dbh = _connect($w, \%o) or last;
				# the title names the row's own price, whatever we believe
				$title_only = $dbh->prepare(
					q{UPDATE housing.listings SET title = format('v%s p%s', $1::bigint, price_cents)
					   WHERE id = $2 RETURNING price_cents});
				$both = $dbh->prepare(
					q{UPDATE housing.listings SET title = format('v%s p%s', $1::bigint, $2::bigint),
					         price_cents = $2
					   WHERE id = $3 RETURNING price_cents});
				$inval = $dbh->prepare(q{SELECT housing_cache.invalidate('housing.listings/id=' || $1::bigint)});
				$phantom = $dbh->prepare(
					q{WITH u AS (UPDATE housing.listings
					                SET title = format('v%s p%s', $1::bigint, coalesce($2::bigint, price_cents)),
					                    price_cents = coalesce($2::bigint, price_cents)
					              WHERE id = $3 RETURNING id, city)
					  SELECT (SELECT i ->> 'title'
					            FROM json_array_elements(housing_cache.search_listings(
					                     city => u.city, sort => 'price_asc', page_size => 100) -> 'items') i
					           WHERE (i ->> 'id')::bigint = u.id)
					    FROM u});
				# resynchronise: a write of unknown outcome may or may not have committed
				my $cur = $dbh->selectall_arrayref(
					'SELECT id, price_cents FROM housing.listings WHERE id = ANY ($1::bigint[])', {},
					'{' . join(',', @ids) . '}');
				if (!$cur)
				{
					$dbh->disconnect;
					$dbh = undef;
					usleep(50_000);
					next;
				}
				$price{ $_->[0] } = $_->[1] for @$cur;
			}

			if (rand(100) < $rollback_pct)
			{
				my $id = $ids[ int(rand(@ids)) ];
				my $v = ++$version{$id};
				my $p = rand(100) < $price_pct ? $new_price->() : undef;
				my $t0 = $w->now;
				$dbh->begin_work;
				my $rv = $phantom->execute($v, $p, $id);
				my $row = $rv ? $phantom->fetchrow_arrayref : undef;
				my $err = $rv ? '' : _err($phantom->state, $phantom->errstr);
				$phantom->finish if $rv;
				$dbh->rollback;
				my $want = 'v' . $v . ' p' . ($p // $price{$id});
				$err = 'other::the writer read ' . ($row->[0] // 'null') . " instead of its own '$want'"
				  if $rv && (!$row || ($row->[0] // '') ne $want);
				$w->record('W', $t0, $w->now, $err ? ($err =~ /^conn/ ? 'unknown' : 'failed') : 'aborted',
					$id, $v, $err, $p // $price{$id});
				if ($err && !$dbh->ping)
				{
					$dbh->disconnect;
					$dbh = undef;
				}
				_pause($think);
				next;
			}

			my @batch = ($ids[ int(rand(@ids)) ]);
			if (rand(100) < $pair_pct)
			{
				my @same = grep { $_ != $batch[0] && $city_of{$_} eq $city_of{ $batch[0] } } @ids;
				push @batch, $same[ int(rand(@same)) ] if @same;
			}
			my @vers = map { ++$version{$_} } @batch;
			my @new = map { rand(100) < $price_pct ? $new_price->() : undef } @batch;
			my @prices = map { $new[$_] // '?' } 0 .. $#batch;
			my ($status, $err) = ('ok', '');
			my $t0 = $w->now;
			my $txn = @batch > 1 || $o{invalidate_ids};
			$dbh->begin_work if $txn;
			for my $i (0 .. $#batch)
			{
				my $sth = defined $new[$i] ? $both : $title_only;
				my $rv = defined $new[$i]
				  ? $sth->execute($vers[$i], $new[$i], $batch[$i])
				  : $sth->execute($vers[$i], $batch[$i]);
				my $row = $rv ? $sth->fetchrow_arrayref : undef;
				if (!$rv || !$row)
				{
					my $e = $rv ? "other::updated $rv rows" : _err($sth->state, $sth->errstr);
					($status, $err) = ($e =~ /^conn/ ? 'unknown' : 'failed', $e);
					last;
				}
				$prices[$i] = $row->[0];
				$sth->finish;
				if ($o{invalidate_ids} && !$inval->execute($batch[$i]))
				{
					($status, $err) = ('failed', _err($inval->state, $inval->errstr));
					last;
				}
				$inval->finish if $o{invalidate_ids};
			}
			if ($txn)
			{
				($status, $err) = commit_status($dbh) if $status eq 'ok';
				$dbh->rollback if $status eq 'failed';
			}
			my $t1 = $w->now;
			$w->record('W', $t0, $t1, $status, join(',', @batch), join(',', @vers), $err, join(',', @prices));
			if ($status eq 'ok')
			{
				$price{ $batch[$_] } = $prices[$_] for 0 .. $#batch;
			}
			if ($status ne 'ok' && !$dbh->ping)
			{
				$dbh->disconnect;
				$dbh = undef;
			}
			_pause($think);
		}
		$dbh->disconnect if $dbh;
	};
}

=pod

=head2 page_violations($doc, city => ..., page => ..., page_size => ..., total => ...)

What is wrong with one decoded answer of C<search_listings(city, sort =E<gt>
'price_asc', page, page_size)>, as C<[kind, detail]> pairs (none: it may be
the answer of one moment):

=over

=item card

an item's title is not C<v<vE<gt> p<pE<gt>>, names another price than the
item's C<price_cents> (a card is one version of one row), or the item is of
another city;

=item order

two items are not in price order with ties by id (an id list of another
moment than its cards);

=item total

C<total> is not the number of the city's listings (writers never change
cities), C<page> or C<page_size> are not the ones asked;

=item count

the page does not hold the number of items its place in the list says.

=back

=cut

sub page_violations
{
	my ($doc, %o) = @_;
	my @v;
	if (ref $doc ne 'HASH' || ref $doc->{items} ne 'ARRAY')
	{
		return ([ 'total', 'not an object with an array "items"' ]);
	}
	my $city = $o{city} // '*';
	push @v, [ 'total', "total $doc->{total}, $city has $o{total}" ]
	  unless defined $doc->{total} && $doc->{total} == $o{total};
	push @v, [ 'total', "page $doc->{page} page_size $doc->{page_size}, asked $o{page} and $o{page_size}" ]
	  unless ($doc->{page} // -1) == $o{page} && ($doc->{page_size} // -1) == $o{page_size};
	my $left = $o{total} - ($o{page} - 1) * $o{page_size};
	my $want = $left < 0 ? 0 : $left > $o{page_size} ? $o{page_size} : $left;
	my @items = @{ $doc->{items} };
	push @v, [ 'count', scalar(@items) . " items, $want expected" ] unless @items == $want;
	for my $it (@items)
	{
		my $title = $it->{title} // '';
		if ($title !~ /^v\d+ p(\d+)$/)
		{
			push @v, [ 'card', "listing $it->{id}: title '$title'" ];
		}
		elsif ($1 != ($it->{price_cents} // -1))
		{
			push @v, [ 'card', "listing $it->{id}: title '$title' but price_cents $it->{price_cents}" ];
		}
		push @v, [ 'card', "listing $it->{id} of city '$it->{city}'" ]
		  unless !defined $o{city} || ($it->{city} // '') eq $o{city};
	}
	for my $i (1 .. $#items)
	{
		my ($a, $b) = @items[ $i - 1, $i ];
		next if $a->{price_cents} < $b->{price_cents}
		  || ($a->{price_cents} == $b->{price_cents} && $a->{id} < $b->{id});
		push @v, [ 'order', "listing $a->{id} (price $a->{price_cents}) before $b->{id} (price $b->{price_cents})" ];
	}
	return @v;
}

=pod

=head2 composed_reader(dsn => ..., city_of => {id => city}, cities => [..., undef], totals => {...}, think_us => N, small_pct => 50)

C<small_pct> of the reads are of a small page (C<page_size =E<gt> 3>,
page 1 or 2), the rest of the whole city.  C<undef> in C<cities> searches
every city (sources C<search:*>, C<page1:*>, ...).  C<totals> gives each
city's number of active listings (C<*> for all), untracked ones included;
by default the tracked listings of C<city_of>.

=cut

sub composed_reader
{
	my (%o) = @_;
	return sub {
		my ($w) = @_;
		my %n_of;
		$n_of{$_}++ for values %{ $o{city_of} };
		$n_of{'*'} = keys %{ $o{city_of} };
		%n_of = (%n_of, %{ $o{totals} }) if $o{totals};
		my @cities = @{ $o{cities} // [ sort grep { $_ ne '*' } keys %n_of ] };
		my $small_pct = $o{small_pct} // 50;
		my $size = $o{page_size} // 3;
		my ($dbh, $sth);
		while (!$w->stopping)
		{
			if (!$dbh)
			{
				$dbh = _connect($w, \%o) or last;
				$sth = $dbh->prepare(
					q{SELECT housing_cache.search_listings(city => $1::text, sort => 'price_asc',
					                                        page => $2::int, page_size => $3::int)::text});
			}
			my $city = $cities[ int(rand(@cities)) ];
			my $name = $city // '*';
			my ($page, $page_size, $source) = (1, 100, "search:$name");
			if (rand(100) < $small_pct)
			{
				$page = 1 + int(rand(2));
				$page_size = $size;
				$source = "page$page:$name";
			}
			my $t0 = $w->now;
			my $rv = $sth->execute($city, $page, $page_size);
			my $row = $rv ? $sth->fetchrow_arrayref : undef;
			my $t1 = $w->now;
			if (!$rv || !$row)
			{
				my $e = _err($sth->state, $sth->errstr // 'no row');
				$w->record('R', $t0, $t1, 'err', $source, '', $e);
				if ($e =~ /^conn/ || !$dbh->ping)
				{
					$dbh->disconnect;
					$dbh = undef;
				}
				_pause($o{think_us} // 1000);
				next;
			}
			$sth->finish;
			my $doc = defined $row->[0] ? eval { $json->decode($row->[0]) } : undef;
			if (ref $doc ne 'HASH')
			{
				$w->record('R', $t0, $t1, 'err', $source, '',
					'other::composed-total: not a JSON object: ' . substr($row->[0] // 'NULL', 0, 100));
				next;
			}
			my @pairs = map {
				my $v = ($_->{title} // '') =~ /^v(\d+) / ? $1 : -1;
				"$_->{id}:$v:" . ($_->{price_cents} // '');
			} @{ $doc->{items} || [] };
			$w->record('R', $t0, $t1, 'ok', $source, join(',', @pairs), '');
			for my $v (page_violations($doc, city => $city, page => $page, page_size => $page_size,
					total => $n_of{$name}))
			{
				$w->record('R', $t0, $t1, 'err', $source, '', "other::composed-$v->[0]: $v->[1]");
			}
			_pause($o{think_us} // 1000);
		}
		$dbh->disconnect if $dbh;
	};
}

=pod

=head2 check_composed($dir, city_of => {...}, initial => {id => [version, price]}, page_size => 3)

The composed checks of a history: the violations the readers recorded, by
kind (C<card>, C<order>, C<total>, C<count>), and C<membership>, which needs
the writers' records: a small page must hold the listings of its place in
the order at the moment it shows.  For a page that read listings S (as its
cards show them) and a listing d of the city it does not show, d's possible
versions during the read are the version acknowledged last before the read
began and those written (not certainly failed) before it ended; if at every
one of them d sorts before the page's last item (page 1), or between its
first and last (page 2), the page is of no moment: a membership violation.

Returns C<{ totals =E<gt> {kind =E<gt> n}, phases =E<gt> {name =E<gt> {kind =E<gt> n,
reads_small =E<gt> n}}, failures =E<gt> [first 40] }>.

=cut

sub check_composed
{
	my ($dir, %o) = @_;
	my %city_of = %{ $o{city_of} };
	my %initial = %{ $o{initial} };
	my $size = $o{page_size} // 3;
	my (@phases, @reads, %writes);
	my $r = { totals => { map { $_ => 0 } qw(card order total count membership) }, phases => {}, failures => [] };

	open my $ph, '<', "$dir/phases.tsv" or die "$dir/phases.tsv: $!";
	while (<$ph>)
	{
		chomp;
		my ($name, $start, $end) = split /\t/;
		push @phases, [ $name, $start, $end ];
	}
	close $ph;
	my $phase_of = sub {
		my ($t) = @_;
		for (@phases) { return $_->[0] if $t >= $_->[1] && $t < $_->[2] }
		return '(outside phases)';
	};
	my $fail = sub {
		my ($kind, $t, $msg) = @_;
		$r->{totals}{$kind}++;
		$r->{phases}{ $phase_of->($t) }{$kind}++;
		push @{ $r->{failures} }, "$kind: $msg" if @{ $r->{failures} } < 40;
	};

	for my $file (sort glob("$dir/*.tsv"))
	{
		next if $file =~ m{/(phases|listings)\.tsv$};
		open my $fh, '<', $file or die "$file: $!";
		while (<$fh>)
		{
			chomp;
			my ($kind, $worker, $t0, $t1, $status, $f1, $f2, $f3, $f4) = split /\t/, $_, -1;
			next unless defined $t1;
			if ($kind eq 'W')
			{
				my @ids = split /,/, $f1;
				my @vers = split /,/, $f2;
				my @prices = split /,/, $f4 // '';
				next unless $status eq 'ok' || $status eq 'unknown';
				push @{ $writes{ $ids[$_] } }, { t0 => $t0, t1 => $t1, ok => $status eq 'ok',
					v => $vers[$_], price => $prices[$_] // '?' } for 0 .. $#ids;
			}
			elsif ($kind eq 'R' && $status eq 'err' && ($f3 // '') =~ /^other::composed-(\w+): (.*)/)
			{
				$fail->($1, $t0, "$worker $f1 at $t0: $2");
			}
			elsif ($kind eq 'R' && $status eq 'ok' && $f1 =~ /^page(\d+):(.*)/)
			{
				push @reads, { worker => $worker, t0 => $t0, t1 => $t1, page => $1, city => $2, items => $f2 };
			}
		}
		close $fh;
	}

	# per listing: its writes in order (one writer each: versions grow with
	# the start), and the acknowledged ones by end, with the running maximum
	my (%by_start, %acked);
	for my $id (keys %writes)
	{
		my @w = sort { $a->{t0} <=> $b->{t0} } @{ $writes{$id} };
		$by_start{$id} = \@w;
		my ($mv, $mp) = @{ $initial{$id} };
		$acked{$id} = [ map { ($mv, $mp) = ($_->{v}, $_->{price}) if $_->{v} > $mv; [ $_->{t1}, $mv, $mp ] }
			  sort { $a->{t1} <=> $b->{t1} } grep { $_->{ok} } @w ];
	}
	# the last index of a sorted list whose value (by $key) is < $x, or -1
	my $last_below = sub {
		my ($list, $key, $x) = @_;
		my ($lo, $hi) = (0, $#$list);
		while ($lo <= $hi)
		{
			my $mid = int(($lo + $hi) / 2);
			if ($key->($list->[$mid]) < $x) { $lo = $mid + 1 } else { $hi = $mid - 1 }
		}
		return $hi;
	};
	# d's possible (version, price) pairs during [t0, t1]: the version acked
	# last before t0, and every later one whose write began before t1
	my $possible = sub {
		my ($id, $t0, $t1) = @_;
		my ($must_v, $must_p) = @{ $initial{$id} };
		my $ack = $acked{$id} || [];
		my $i = $last_below->($ack, sub { $_[0][0] }, $t0);
		(undef, $must_v, $must_p) = @{ $ack->[$i] } if $i >= 0;
		my $w = $by_start{$id} || [];
		my $hi = $last_below->($w, sub { $_[0]{t0} }, $t1);
		my $lo = $last_below->($w, sub { $_[0]{v} }, $must_v + 1) + 1;
		return ([ $must_v, $must_p ], map { [ $_->{v}, $_->{price} ] } @$w[ $lo .. $hi ]);
	};
	my $before = sub {    # (price, id) < (price, id)
		my ($p1, $i1, $p2, $i2) = @_;
		return $p1 < $p2 || ($p1 == $p2 && $i1 < $i2);
	};

	for my $rd (@reads)
	{
		my $ph = $phase_of->($rd->{t0});
		$r->{phases}{$ph}{reads_small}++;
		my @shown = map { [ split /:/ ] } grep { length } split /,/, $rd->{items};    # [id, v, price]
		next unless @shown;
		my %on = map { $_->[0] => 1 } @shown;
		my ($first, $last) = @shown[ 0, -1 ];
		for my $d (grep { ($rd->{city} eq '*' || $city_of{$_} eq $rd->{city}) && !$on{$_} }
			sort { $a <=> $b } keys %city_of)
		{
			my @p = $possible->($d, $rd->{t0}, $rd->{t1});
			next if grep { $_->[1] eq '?' } @p;    # a price we cannot know
			my $inside = sub {
				my ($price) = @_;
				return 0 unless $before->($price, $d, $last->[2], $last->[0]);
				return $rd->{page} == 1 || $before->($first->[2], $first->[0], $price, $d);
			};
			next if grep { !$inside->($_->[1]) } @p;
			$fail->('membership', $rd->{t0}, sprintf(
				'%s page%d:%s [%.6f, %.6f] shows %s, but listing %d (versions:prices %s) sorts %s',
				$rd->{worker}, $rd->{page}, $rd->{city}, $rd->{t0}, $rd->{t1}, $rd->{items}, $d,
				join(' ', map { "$_->[0]:$_->[1]" } @p),
				$rd->{page} == 1 ? 'before its last item' : 'between its first and last items'));
		}
	}
	return $r;
}

1;
