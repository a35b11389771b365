=pod

=head1 NAME

HcReliability::Workload - worker processes that record timed operations

=head1 SYNOPSIS

  use HcReliability::Workload;

  my $wl = HcReliability::Workload->new(dir => "$basedir/history");
  $wl->spawn('reader1', sub {
      my ($w) = @_;                   # HcReliability::Workload::Worker
      until ($w->stopping) {
          my $t0 = $w->now;
          ...;                        # one operation
          $w->record('R', $t0, $w->now, 'ok', ...);
      }
  });
  $wl->mark_phase('healthy');         # parent: phase boundaries
  ...
  $wl->stop;                          # SIGTERM, wait, SIGKILL stragglers
  # $wl->dir has one file per worker and phases.tsv

=head1 DESCRIPTION

Each worker is a forked process that runs a loop and appends one
tab-separated line per operation to a file of its own (F<DIR/NAME.tsv>);
nothing is shared between workers while they run, so recording costs no
synchronisation.  Times are read from C<CLOCK_MONOTONIC>, which every
process of the host shares, so operations of different workers (and the
phase boundaries the parent records) compare directly.

Workers stop on SIGTERM (the loop sees C<stopping>), when the parent
process disappears, or when their code returns or dies; they leave with
C<POSIX::_exit>, so that no END block of the test (which would stop the
test's PostgreSQL nodes and Redis servers) runs in a worker.  Every worker
still running is killed when the parent exits, whatever the reason.

=cut

package HcReliability::Workload;

use strict;
use warnings;

use Carp;
use File::Path qw(make_path);
use POSIX qw(WNOHANG);
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC usleep);

my %live;    # pid => workload object (weakly referenced by pid only)
my $owner = $$;

sub now { return clock_gettime(CLOCK_MONOTONIC) }

sub new
{
	my ($class, %opts) = @_;
	croak 'HcReliability::Workload->new: dir is required' unless defined $opts{dir};
	make_path($opts{dir});
	my $self = bless { dir => $opts{dir}, workers => {}, phase => undef }, $class;
	open my $fh, '>', "$opts{dir}/phases.tsv" or croak "$opts{dir}/phases.tsv: $!";
	close $fh;
	return $self;
}

sub dir { return $_[0]->{dir} }

=pod

=head2 $wl->spawn($name, $code)

Fork a worker running C<< $code->($worker) >>.

=cut

sub spawn
{
	my ($self, $name, $code) = @_;
	croak "worker name '$name' is not a simple word" unless $name =~ /^[\w.-]+$/;
	croak "worker '$name' exists" if $self->{workers}{$name};
	my $parent = $$;
	my $file = "$self->{dir}/$name.tsv";

	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my $rc = 0;
		my $w = HcReliability::Workload::Worker->_new($name, $file, $parent);
		for my $sig (qw(TERM INT HUP USR1))
		{
			$SIG{$sig} = sub { $w->{stop} = 1 };
		}
		$SIG{PIPE} = 'IGNORE';
		if (!eval { $code->($w); 1 })
		{
			my $err = $@ // 'unknown error';
			$err =~ s/\s+/ /g;
			$w->record('X', now(), now(), 'died', $err);
			$rc = 1;
		}
		$w->_close;
		POSIX::_exit($rc);
	}
	$self->{workers}{$name} = $pid;
	$live{$pid} = 1;
	return $pid;
}

=pod

=head2 $wl->mark_phase($name, %attrs)

Close the current phase (if any) now and open C<$name>.  Attributes are
written with it (e.g. C<conn_errors =E<gt> 1>: operations overlapping this
phase may fail with connection errors).  C<mark_phase(undef)> closes the
last phase.

=cut

sub mark_phase
{
	my ($self, $name, %attrs) = @_;
	my $t = now();
	if (my $p = $self->{phase})
	{
		$p->{end} = $t;
		open my $fh, '>>', "$self->{dir}/phases.tsv" or croak $!;
		print $fh join("\t", $p->{name}, sprintf('%.6f', $p->{start}), sprintf('%.6f', $t),
			join(',', map { "$_=$p->{attrs}{$_}" } sort keys %{ $p->{attrs} })), "\n";
		close $fh;
	}
	$self->{phase} = defined $name ? { name => $name, start => $t, attrs => \%attrs } : undef;
	return $t;
}

=pod

=head2 $wl->set_phase_attr($key, $value)

Change an attribute of the current phase (e.g. widen a window).

=cut

sub set_phase_attr
{
	my ($self, $key, $value) = @_;
	$self->{phase}{attrs}{$key} = $value if $self->{phase};
	return;
}

=pod

=head2 $wl->running

Names of the workers still running.

=cut

sub running
{
	my ($self) = @_;
	my @names;
	for my $name (sort keys %{ $self->{workers} })
	{
		my $pid = $self->{workers}{$name};
		next unless $live{$pid};
		if (waitpid($pid, WNOHANG) == 0)
		{
			push @names, $name;
		}
		else
		{
			$self->{exit}{$name} = $?;
			delete $live{$pid};
		}
	}
	return @names;
}

=pod

=head2 $wl->stop_worker($name, [$timeout])

Stop one worker (SIGTERM, then SIGKILL after C<$timeout> seconds, default
10); returns its exit status.

=cut

sub stop_worker
{
	my ($self, $name, $timeout) = @_;
	my $pid = $self->{workers}{$name} // croak "no worker '$name'";
	kill 'TERM', $pid if $live{$pid};
	my $deadline = now() + ($timeout // 10);
	while ($live{$pid} && now() < $deadline)
	{
		last unless grep { $_ eq $name } $self->running;
		usleep(20_000);
	}
	if ($live{$pid})
	{
		kill 'KILL', $pid;
		waitpid($pid, 0);
		delete $live{$pid};
		$self->{exit}{$name} = -1;
	}
	return $self->{exit}{$name};
}

=pod

=head2 $wl->stop([$timeout])

SIGTERM every worker, wait up to C<$timeout> seconds (default 20), SIGKILL
the rest.  Returns a hash of name =E<gt> exit status (C<$?>; -1 when
killed).

=cut

sub stop
{
	my ($self, $timeout) = @_;
	$timeout //= 20;
	$self->mark_phase(undef) if $self->{phase};
	kill 'TERM', grep { $live{$_} } values %{ $self->{workers} };
	my $deadline = now() + $timeout;
	while ($self->running && now() < $deadline)
	{
		usleep(20_000);
	}
	for my $name ($self->running)
	{
		my $pid = $self->{workers}{$name};
		kill 'KILL', $pid;
		waitpid($pid, 0);
		delete $live{$pid};
		$self->{exit}{$name} = -1;
	}
	return %{ $self->{exit} || {} };
}

END
{
	if ($$ == $owner)
	{
		local ($?, $!);
		my @pids = grep { $live{$_} } keys %live;
		kill 'KILL', @pids if @pids;
		waitpid($_, 0) for @pids;
	}
}

package HcReliability::Workload::Worker;

use strict;
use warnings;

use IO::Handle;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

sub _new
{
	my ($class, $name, $file, $parent) = @_;
	open my $fh, '>', $file or die "$file: $!";
	return bless { name => $name, fh => $fh, parent => $parent, stop => 0, n => 0 }, $class;
}

sub name { return $_[0]->{name} }

sub now { return clock_gettime(CLOCK_MONOTONIC) }

# True once the worker should stop: SIGTERM, or the parent is gone.
sub stopping
{
	my ($self) = @_;
	$self->{stop} = 1 if getppid() != $self->{parent};
	return $self->{stop};
}

# One operation: kind, start, end, then free fields (tabs and newlines in
# them are replaced by blanks).
sub record
{
	my ($self, $kind, $t0, $t1, @fields) = @_;
	my $fh = $self->{fh};
	print $fh join("\t", $kind, $self->{name}, sprintf('%.6f', $t0), sprintf('%.6f', $t1),
		map { my $f = $_ // ''; $f =~ s/[\t\r\n]+/ /g; $f } @fields), "\n";
	$fh->flush if ++$self->{n} % 64 == 0;
	return;
}

sub _close
{
	my ($self) = @_;
	close $self->{fh} if $self->{fh};
	$self->{fh} = undef;
	return;
}

1;
