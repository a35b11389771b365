=pod

=head1 NAME

HcReliability::History - check a recorded history for stale reads

=head1 SYNOPSIS

  use HcReliability::History;

  my $h = HcReliability::History->load($dir);     # files of HcReliability::Workload
  my $r = $h->check(city_of => { 1 => 'Boston', ... }, initial => { 1 => 0, ... });
  print "$_\n" for $r->summary_lines;
  $r->{totals}{stale};                             # 0 is the only right answer

=head1 DESCRIPTION

The model: every listing is a register whose versions only grow (one
writer per listing, sequential writes).  The guarantee checked is the
README's: a read that B<began after> a write's COMMIT was acknowledged must
not return an older version.  Per listing, with W the writes:

=over

=item stale

a read (start s) returned v although some write of version w > v was
acknowledged (end) before s.

=item phantom

a read returned a version that no write could have produced by the time
the read ended: a version of a write that certainly failed, or one above
every version whose write had started before the read ended.

=item regression

a read returned v although another read of the same listing, on the same
server, that ended before this one began had returned a newer version (what
a single PostgreSQL server gives without the cache: snapshots only move
forward).  Reads of a hot standby (sources "sb1-...") are held to this
rule only, against that standby's own reads, direct ones included; the
stale rule, which compares with the primary's acknowledgements, does not
apply to them.

=item incomplete

a search returned a different set of the tracked listings than its city
has (every tracked listing is active and on the first page).

=back

Errors: operations of class C<conn> (see HcReliability::Listings) are
allowed when they overlap a phase marked C<conn_errors=1> and are counted
separately; any other failed operation is a failure.

Counts are kept per phase: an operation belongs to the phase in which it
began.

=cut

package HcReliability::History;

use strict;
use warnings;

use Carp;
use List::Util qw(max);

sub load
{
	my ($class, $dir) = @_;
	my $self = bless { dir => $dir, ops => [], phases => [] }, $class;

	open my $ph, '<', "$dir/phases.tsv" or croak "$dir/phases.tsv: $!";
	while (<$ph>)
	{
		chomp;
		my ($name, $start, $end, $attrs) = split /\t/, $_, -1;
		my %a = map { split /=/, $_, 2 } grep { length } split /,/, $attrs // '';
		push @{ $self->{phases} }, { name => $name, start => $start, end => $end, attrs => \%a };
	}
	close $ph;

	for my $file (sort glob("$dir/*.tsv"))
	{
		next if $file =~ m{/phases\.tsv$};
		open my $fh, '<', $file or croak "$file: $!";
		while (<$fh>)
		{
			chomp;
			my ($kind, $worker, $t0, $t1, $status, $f1, $f2, $f3) = split /\t/, $_, -1;
			next unless defined $t1;
			push @{ $self->{ops} }, {
				kind => $kind, worker => $worker, t0 => $t0, t1 => $t1,
				status => $status, f1 => $f1 // '', f2 => $f2 // '', f3 => $f3 // '' };
		}
		close $fh;
	}
	return $self;
}

sub phases { return @{ $_[0]->{phases} } }

# Index of the phase an instant falls in, or -1.
sub _phase_of
{
	my ($self, $t) = @_;
	my $p = $self->{phases};
	my ($lo, $hi) = (0, $#$p);
	while ($lo <= $hi)
	{
		my $mid = int(($lo + $hi) / 2);
		if ($t < $p->[$mid]{start}) { $hi = $mid - 1 }
		elsif ($t >= $p->[$mid]{end}) { $lo = $mid + 1 }
		else { return $mid }
	}
	return -1;
}

sub _conn_allowed
{
	my ($self, $op) = @_;
	for my $p (@{ $self->{phases} })
	{
		next unless $p->{attrs}{conn_errors};
		return 1 if $op->{t0} < $p->{end} && $op->{t1} >= $p->{start};
	}
	return 0;
}

# Largest value among entries (sorted by key) whose key is < $t; entries
# are [key, running max].
sub _max_before
{
	my ($list, $t, $default) = @_;
	my ($lo, $hi, $best) = (0, $#$list, $default);
	while ($lo <= $hi)
	{
		my $mid = int(($lo + $hi) / 2);
		if ($list->[$mid][0] < $t) { $best = $list->[$mid][1]; $lo = $mid + 1 }
		else { $hi = $mid - 1 }
	}
	return $best;
}

sub _running_max
{
	my (@pairs) = @_;    # [key, value]
	my @sorted = sort { $a->[0] <=> $b->[0] } @pairs;
	my $m;
	return [ map { $m = defined $m ? max($m, $_->[1]) : $_->[1]; [ $_->[0], $m ] } @sorted ];
}

=pod

=head2 $h->check(city_of => {...}, initial => {...})

Returns an HcReliability::History::Result.

=cut

sub check
{
	my ($self, %o) = @_;
	my %city_of = %{ $o{city_of} };
	my %initial = %{ $o{initial} || {} };
	my @phases = @{ $self->{phases} };
	my $r = bless {
		phases => [ map { { name => $_->{name}, secs => $_->{end} - $_->{start}, c => {} } } @phases ],
		outside => { name => '(outside phases)', c => {} },
		failures => [],
		totals => {},
	}, 'HcReliability::History::Result';

	my $bucket = sub {
		my ($op) = @_;
		my $i = $self->_phase_of($op->{t0});
		return $i >= 0 ? $r->{phases}[$i]{c} : $r->{outside}{c};
	};
	my $fail = sub {
		my ($cat, $msg) = @_;
		$r->{totals}{$cat}++;
		push @{ $r->{failures} }, "$cat: $msg" if @{ $r->{failures} } < 40;
	};

	# --- writes ---------------------------------------------------------
	my (%acked, %started, %failed_v, %valid_v);
	$valid_v{$_}{ $initial{$_} // 0 } = 1 for keys %city_of;
	for my $op (grep { $_->{kind} eq 'W' } @{ $self->{ops} })
	{
		my $c = $bucket->($op);
		my @ids = split /,/, $op->{f1};
		my @vers = split /,/, $op->{f2};
		$c->{"writes_$op->{status}"}++;
		for my $i (0 .. $#ids)
		{
			my ($id, $v) = ($ids[$i], $vers[$i]);
			if ($op->{status} eq 'failed' || $op->{status} eq 'aborted')
			{
				$failed_v{$id}{$v} = 1;
				next;
			}
			$valid_v{$id}{$v} = 1;
			push @{ $started{$id} }, [ $op->{t0}, $v ];
			push @{ $acked{$id} }, [ $op->{t1}, $v ] if $op->{status} eq 'ok';
		}
		if ($op->{status} ne 'ok' && $op->{status} ne 'aborted')
		{
			my ($class) = split /:/, $op->{f3};
			if ($class eq 'conn' && $self->_conn_allowed($op))
			{
				$c->{write_conn_errors}++;
			}
			else
			{
				$fail->('error', sprintf('%s write of %s at %.3f failed (%s): %s',
						$op->{worker}, $op->{f1}, $op->{t0}, $op->{status}, $op->{f3}));
			}
		}
	}
	$acked{$_} = _running_max(@{ $acked{$_} }) for keys %acked;
	$started{$_} = _running_max(@{ $started{$_} }) for keys %started;

	# --- reads ----------------------------------------------------------
	my %reads_of;    # "server/id" => [ [t0, t1, v, op] ]
	for my $op (grep { $_->{kind} ne 'W' } @{ $self->{ops} })
	{
		my $c = $bucket->($op);
		if ($op->{kind} eq 'X')
		{
			$fail->('error', "worker $op->{worker} died: $op->{f1}");
			next;
		}
		my ($src) = split /:/, $op->{f1};
		# a hot standby's reads (sources "sb1-get:5"): held to its own
		# earlier reads, not to the primary's acknowledgements
		my $server = $src =~ /^(sb\w*)-/ ? $1 : 'primary';
		if ($op->{status} ne 'ok' && $op->{status} ne 'aborted')
		{
			my ($class) = split /:/, $op->{f3};
			my $what = $op->{kind} eq 'C' ? 'connect' : 'read';
			if ($class eq 'conn' && $self->_conn_allowed($op))
			{
				$c->{"${what}_conn_errors"}++;
			}
			else
			{
				$fail->('error', sprintf('%s %s %s at %.3f: %s', $op->{worker}, $what, $op->{f1}, $op->{t0}, $op->{f3}));
			}
			next;
		}
		$c->{ $server eq 'primary' ? "reads_$src" : 'reads_standby' }++;
		$c->{reads}++;

		my %seen;
		for my $pair (split /,/, $op->{f2})
		{
			my ($id, $v) = split /:/, $pair;
			if ($pair eq 'null' || $v eq 'null')
			{
				$fail->('missing', "$op->{worker} $op->{f1} at $op->{t0}: no such listing");
				next;
			}
			next unless exists $city_of{$id};
			$seen{$id} = 1;
			$c->{observations}++;

			my $must = _max_before($acked{$id} || [], $op->{t0}, $initial{$id} // 0);
			if ($server eq 'primary' && $v < $must)
			{
				$c->{stale}++;
				$fail->('stale', sprintf('%s %s [%.6f, %.6f] read listing %d at version %d, '
						  . 'but version %d had been acknowledged before the read began',
						$op->{worker}, $op->{f1}, $op->{t0}, $op->{t1}, $id, $v, $must));
			}
			my $can = _max_before($started{$id} || [], $op->{t1}, $initial{$id} // 0);
			if ($failed_v{$id}{$v} || !$valid_v{$id}{$v} || $v > $can)
			{
				$c->{phantom}++;
				$fail->('phantom', sprintf('%s %s [%.6f, %.6f] read listing %d at version %d, '
						  . 'which no write had produced by then (latest possible: %d)',
						$op->{worker}, $op->{f1}, $op->{t0}, $op->{t1}, $id, $v, $can));
			}
			push @{ $reads_of{"$server/$id"} }, [ $op->{t0}, $op->{t1}, $v, $op ];
		}

		if ($src =~ /search/)
		{
			my (undef, $city) = split /:/, $op->{f1}, 2;
			my @want = sort { $a <=> $b } grep { $city eq '*' || $city_of{$_} eq $city } keys %city_of;
			my @got = sort { $a <=> $b } keys %seen;
			if ("@want" ne "@got")
			{
				$c->{incomplete}++;
				$fail->('incomplete', "$op->{worker} $op->{f1} at $op->{t0}: tracked listings [@got], expected [@want]");
			}
		}
	}

	# --- read after read ------------------------------------------------
	for my $key (sort keys %reads_of)
	{
		my ($srv, $id) = split m{/}, $key;
		my @by_end = sort { $a->[1] <=> $b->[1] } @{ $reads_of{$key} };
		my @by_start = sort { $a->[0] <=> $b->[0] } @{ $reads_of{$key} };
		my ($j, $best, $best_op) = (0, undef, undef);
		for my $rd (@by_start)
		{
			while ($j < @by_end && $by_end[$j][1] < $rd->[0])
			{
				($best, $best_op) = ($by_end[$j][2], $by_end[$j][3])
				  if !defined $best || $by_end[$j][2] > $best;
				$j++;
			}
			next unless defined $best && $rd->[2] < $best;
			my $op = $rd->[3];
			$bucket->($op)->{regression}++;
			$fail->('regression', sprintf('%s %s [%.6f, %.6f] read listing %d at version %d after '
					  . '%s %s had read version %d (ended %.6f)',
					$op->{worker}, $op->{f1}, $op->{t0}, $op->{t1}, $id, $rd->[2],
					$best_op->{worker}, $best_op->{f1}, $best, $best_op->{t1}));
		}
	}

	for my $p (@{ $r->{phases} }, $r->{outside})
	{
		$r->{totals}{$_} += $p->{c}{$_} for grep { !/^(stale|phantom|incomplete|regression)$/ } keys %{ $p->{c} };
	}
	$r->{totals}{$_} //= 0 for qw(stale phantom incomplete regression missing error);
	return $r;
}

package HcReliability::History::Result;

use strict;
use warnings;

sub totals { return $_[0]->{totals} }
sub failures { return @{ $_[0]->{failures} } }
sub phase { my ($self, $name) = @_; my ($p) = grep { $_->{name} eq $name } @{ $self->{phases} }; return $p ? $p->{c} : undef }

=pod

=head2 $r->summary_lines

One line per phase: operations by kind, errors allowed, violations.

=cut

sub summary_lines
{
	my ($self) = @_;
	my @lines = sprintf('%-14s %5s %7s %6s %6s %6s %6s %6s %6s %6s %5s %5s %5s %5s %5s %5s %5s',
		'phase', 'secs', 'writes', 'w?', 'w_rb', 'get', 'search', 'h_get', 'h_srch', 'obs',
		'r_err', 'w_err', 'c_err', 'stale', 'phant', 'regr', 'incmp');
	for my $p (@{ $self->{phases} }, ($self->{outside}{c}{reads} || $self->{outside}{c}{writes_ok} ? $self->{outside} : ()))
	{
		my $c = $p->{c};
		push @lines, sprintf('%-14s %5.1f %7d %6d %6d %6d %6d %6d %6d %6d %5d %5d %5d %5d %5d %5d %5d',
			$p->{name}, $p->{secs} // 0,
			$c->{writes_ok} // 0, ($c->{writes_unknown} // 0) + ($c->{writes_failed} // 0),
			$c->{writes_aborted} // 0,
			$c->{reads_get} // 0, $c->{reads_search} // 0,
			$c->{reads_http_get} // 0, $c->{reads_http_search} // 0,
			$c->{observations} // 0,
			$c->{read_conn_errors} // 0, $c->{write_conn_errors} // 0, $c->{connect_conn_errors} // 0,
			$c->{stale} // 0, $c->{phantom} // 0, $c->{regression} // 0, $c->{incomplete} // 0);
	}
	my $t = $self->{totals};
	push @lines, sprintf('totals: %d acknowledged writes (%d unknown, %d failed, %d rolled back on purpose), %d reads '
		  . '(%d listing versions observed); allowed connection errors: %d reads, %d writes, %d connects; '
		  . 'stale %d, phantom %d, regression %d, incomplete %d, missing %d, other errors %d',
		$t->{writes_ok} // 0, $t->{writes_unknown} // 0, $t->{writes_failed} // 0,
		$t->{writes_aborted} // 0, $t->{reads} // 0, $t->{observations} // 0,
		$t->{read_conn_errors} // 0, $t->{write_conn_errors} // 0, $t->{connect_conn_errors} // 0,
		$t->{stale}, $t->{phantom}, $t->{regression}, $t->{incomplete}, $t->{missing}, $t->{error});
	push @lines, 'columns: writes = acknowledged, w? = unknown or failed (connection errors), '
	  . 'w_rb = rolled back on purpose after reading the new version through the cache, '
	  . 'get/search/h_get/h_srch = successful reads (h_: through the HTTP server), obs = listing versions '
	  . 'checked, r_err/w_err/c_err = allowed connection errors of reads/writes/connects';
	return @lines;
}

1;
