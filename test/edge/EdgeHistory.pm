=pod

=head1 NAME

EdgeHistory - the no-stale-reads check for reads through the edge

=head1 SYNOPSIS

  use HcReliability::History;
  use EdgeHistory;

  my $h = HcReliability::History->load($dir);   # files of HcReliability::Workload
  my $r = EdgeHistory::check($h, city_of => \%city_of, bound => sub { 0.5 });
  $r->{violations};          # reads older than a commit past the bound: must be 0
  $r->{phases}{healthy}{max_age};

=head1 DESCRIPTION

The edge is not linearizable: a commit reaches it when its purge does.  So
the rule of HcReliability::History ("a read that began after a write was
acknowledged returns that version or a newer one") is held here with a
bound B per phase: a read that began more than B after a write of a newer
version was acknowledged is a B<violation>.  Reads that are older but
within B are counted, and their B<age> (how long after that acknowledgement
the read began) is reported: the largest age seen is the staleness the
edge actually showed.  Reads of the same listing never go back by more than
B either (a read older than a version another read had returned more than B
before it began is a B<regression>).  Versions nobody wrote (B<phantom>),
incomplete searches, missing listings and errors (but connection errors in
phases marked C<conn_errors>) fail as in HcReliability::History.

The bound of a read is C<< $bound->($phase_name) >> for the phase in which
it began.

=cut

package EdgeHistory;

use strict;
use warnings;

use List::Util qw(max min);

sub check
{
	my ($h, %o) = @_;
	my %city_of = %{ $o{city_of} };
	my %initial = %{ $o{initial} || {} };
	my $bound_of = $o{bound};
	my @phases = $h->phases;
	my %r = (violations => 0, regressions => 0, phantoms => 0, incomplete => 0, errors => 0,
		stale_within => 0, reads => 0, observations => 0, failures => [], phases => {});

	my $phase_of = sub {
		my ($t) = @_;
		for my $p (@phases)
		{
			return $p->{name} if $t >= $p->{start} && $t < $p->{end};
		}
		return '(outside)';
	};
	my $conn_ok = sub {
		my ($op) = @_;
		for my $p (@phases)
		{
			return 1 if $p->{attrs}{conn_errors} && $op->{t0} < $p->{end} && $op->{t1} >= $p->{start};
		}
		return 0;
	};
	my $fail = sub {
		my ($kind, $msg) = @_;
		$r{$kind}++;
		push @{ $r{failures} }, "$kind: $msg" if @{ $r{failures} } < 30;
	};

	# acknowledged versions per listing, by version, with the earliest
	# acknowledgement of any version above each
	my (%acked, %started_max);
	for my $op (grep { $_->{kind} eq 'W' } @{ $h->{ops} })
	{
		my @ids = split /,/, $op->{f1};
		my @vers = split /,/, $op->{f2};
		if ($op->{status} eq 'unknown' || $op->{status} eq 'ok')
		{
			# it may have committed: its versions may be read
			$started_max{ $ids[$_] } = max($started_max{ $ids[$_] } // 0, $vers[$_]) for 0 .. $#ids;
		}
		if ($op->{status} ne 'ok')
		{
			$fail->('errors', "write $op->{f1} failed: $op->{f3}")
			  unless $op->{status} eq 'unknown' && $conn_ok->($op);
			next;
		}
		push @{ $acked{ $ids[$_] } }, [ $vers[$_], $op->{t1} ] for 0 .. $#ids;
	}
	my %by_version;    # id => [ [v, t1, min t1 of versions >= v] ] sorted by v
	for my $id (keys %acked)
	{
		my @s = sort { $a->[0] <=> $b->[0] } @{ $acked{$id} };
		my $m;
		for my $i (reverse 0 .. $#s)
		{
			$m = defined $m ? min($m, $s[$i][1]) : $s[$i][1];
			$s[$i][2] = $m;
		}
		$by_version{$id} = \@s;
	}
	# when a version above v was first acknowledged (undef: never)
	my $newer_acked_at = sub {
		my ($id, $v) = @_;
		my $s = $by_version{$id} or return undef;
		my ($lo, $hi, $ans) = (0, $#$s, undef);
		while ($lo <= $hi)
		{
			my $mid = int(($lo + $hi) / 2);
			if ($s->[$mid][0] > $v) { $ans = $s->[$mid][2]; $hi = $mid - 1 }
			else { $lo = $mid + 1 }
		}
		return $ans;
	};

	my %reads_of;
	for my $op (grep { $_->{kind} ne 'W' } @{ $h->{ops} })
	{
		my $phase = $phase_of->($op->{t0});
		my $ph = $r{phases}{$phase} //= { reads => 0, stale_within => 0, max_age => 0, errors => 0 };
		if ($op->{status} ne 'ok')
		{
			my ($class) = split /:/, $op->{f3};
			if ($class eq 'conn' && $conn_ok->($op)) { $ph->{errors}++ }
			else { $fail->('errors', "$op->{worker} $op->{f1} at $op->{t0}: $op->{f3}") }
			next;
		}
		$r{reads}++;
		$ph->{reads}++;
		my $bound = $bound_of->($phase);
		my %seen;
		for my $pair (split /,/, $op->{f2})
		{
			my ($id, $v) = split /:/, $pair;
			if (!defined $v || $v eq 'null')
			{
				$fail->('errors', "$op->{worker} $op->{f1}: no such listing");
				next;
			}
			next unless exists $city_of{$id};
			$seen{$id} = 1;
			$r{observations}++;
			my $at = $newer_acked_at->($id, $v);
			if (defined $at && $at < $op->{t0})
			{
				my $age = $op->{t0} - $at;
				$ph->{max_age} = max($ph->{max_age}, $age);
				if ($age > $bound)
				{
					$fail->('violations', sprintf('%s %s [%.6f] read listing %d at version %d, %.3f s after '
							  . 'a newer version was acknowledged (bound %.3f s, phase %s)',
							$op->{worker}, $op->{f1}, $op->{t0}, $id, $v, $age, $bound, $phase));
				}
				else
				{
					$r{stale_within}++;
					$ph->{stale_within}++;
				}
			}
			if ($v > ($started_max{$id} // $initial{$id} // 0) && $v != ($initial{$id} // 0))
			{
				$fail->('phantoms', "$op->{worker} $op->{f1} read listing $id at version $v, never acknowledged");
			}
			push @{ $reads_of{$id} }, [ $op->{t0}, $op->{t1}, $v, $op, $bound ];
		}
		if ($op->{f1} =~ /search:(.*)$/)
		{
			my $city = $1;
			my @want = sort { $a <=> $b } grep { $city eq '*' || $city_of{$_} eq $city } keys %city_of;
			my @got = sort { $a <=> $b } keys %seen;
			$fail->('incomplete', "$op->{worker} $op->{f1}: [@got], expected [@want]") if "@want" ne "@got";
		}
	}

	# reads going back by more than the bound
	for my $id (keys %reads_of)
	{
		my @by_end = sort { $a->[1] <=> $b->[1] } @{ $reads_of{$id} };
		my @by_start = sort { $a->[0] <=> $b->[0] } @{ $reads_of{$id} };
		my ($j, $best) = (0, undef);
		my @ends;    # [t1, running max v]
		for my $rd (@by_end)
		{
			push @ends, [ $rd->[1], max($rd->[2], @ends ? $ends[-1][1] : $rd->[2]) ];
		}
		for my $rd (@by_start)
		{
			my $limit = $rd->[0] - $rd->[4];
			my ($lo, $hi, $m) = (0, $#ends, undef);
			while ($lo <= $hi)
			{
				my $mid = int(($lo + $hi) / 2);
				if ($ends[$mid][0] < $limit) { $m = $ends[$mid][1]; $lo = $mid + 1 }
				else { $hi = $mid - 1 }
			}
			next unless defined $m && $rd->[2] < $m;
			$fail->('regressions', sprintf('%s %s [%.6f] read listing %d at version %d, older than %d '
					  . 'read more than %.3f s before', $rd->[3]{worker}, $rd->[3]{f1}, $rd->[0], $id,
					$rd->[2], $m, $rd->[4]));
		}
	}
	return \%r;
}

sub summary_lines
{
	my ($r, @order) = @_;
	my @lines = sprintf('%-18s %8s %14s %12s %6s', 'phase', 'reads', 'stale versions', 'max age (s)', 'errors');
	for my $name (@order, grep { my $n = $_; !grep { $_ eq $n } @order } sort keys %{ $r->{phases} })
	{
		my $p = $r->{phases}{$name} or next;
		push @lines, sprintf('%-18s %8d %14d %12.3f %6d', $name, $p->{reads}, $p->{stale_within},
			$p->{max_age}, $p->{errors});
	}
	push @lines, sprintf('totals: %d reads, %d listing versions; stale within the bound %d; violations %d, '
		  . 'regressions %d, phantoms %d, incomplete %d, errors %d',
		$r->{reads}, $r->{observations}, $r->{stale_within}, $r->{violations}, $r->{regressions},
		$r->{phantoms}, $r->{incomplete}, $r->{errors});
	return @lines;
}

1;
