=pod

=head1 NAME

HcReliability::HttpServer - run the development HTTP server (http/hc_http)

=head1 SYNOPSIS

  use HcReliability::HttpServer;

  if (my $bin = HcReliability::HttpServer->binary) {
      my $srv = HcReliability::HttpServer->start(db => $conninfo, log => $file,
                                                 args => ['--pool', 2]);
      $srv->base;       # http://127.0.0.1:PORT
      $srv->stop;
  }

=head1 DESCRIPTION

C<binary> is C<$HC_HTTP_BIN>, or F<http/hc_http> of the tree the tests run
in, when it is an executable; undef otherwise (the server is optional: the
tests that use it say so and carry on without it).  The server listens on a
free port (C<--port 0>) read back from its log.  Every server started is
stopped when the test process exits, even when it dies.

=cut

package HcReliability::HttpServer;

use strict;
use warnings;

use Carp;
use File::Basename qw(dirname);
use File::Spec;
use POSIX qw(WNOHANG);
use Time::HiRes qw(usleep time);

my %live;
my $owner = $$;

sub binary
{
	my $bin = $ENV{HC_HTTP_BIN};
	if (!defined $bin)
	{
		my $root = File::Spec->rel2abs(dirname(__FILE__) . '/../../..');
		$bin = "$root/http/hc_http";
	}
	return -f $bin && -x $bin ? $bin : undef;
}

sub start
{
	my ($class, %o) = @_;
	my $bin = $class->binary or croak 'hc_http is not built';
	my $log = $o{log} // croak 'log is required';
	my $self = bless { log => $log }, $class;

	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		setpgrp(0, 0);
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log;
		open STDERR, '>&', \*STDOUT;
		exec $bin, '--listen', '127.0.0.1', '--port', '0', '--db', $o{db}, @{ $o{args} || [] }
		  or POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	$live{$pid} = 1;

	my $deadline = time + 30;
	while (time < $deadline)
	{
		if (open my $fh, '<', $log)
		{
			while (<$fh>)
			{
				if (m{listening on http://127\.0\.0\.1:(\d+)/})
				{
					$self->{port} = $1;
					return $self;
				}
			}
			close $fh;
		}
		if (waitpid($pid, WNOHANG) != 0)
		{
			delete $live{$pid};
			croak "hc_http exited at start; see $log";
		}
		usleep(50_000);
	}
	$self->stop;
	croak "hc_http did not start within 30 s; see $log";
}

sub port { return $_[0]->{port} }
sub base { return "http://127.0.0.1:$_[0]->{port}" }

sub is_running
{
	my ($self) = @_;
	return 0 unless $self->{pid} && $live{ $self->{pid} };
	return 1 if waitpid($self->{pid}, WNOHANG) == 0;
	delete $live{ $self->{pid} };
	return 0;
}

sub stop
{
	my ($self) = @_;
	return unless $self->is_running;
	kill 'TERM', $self->{pid};
	my $deadline = time + 15;
	while (time < $deadline)
	{
		return unless $self->is_running;
		usleep(20_000);
	}
	kill 'KILL', $self->{pid};
	waitpid($self->{pid}, 0);
	delete $live{ $self->{pid} };
	return;
}

END
{
	if ($$ == $owner)
	{
		local ($?, $!);
		for my $pid (keys %live)
		{
			kill 'KILL', $pid;
			waitpid($pid, 0);
		}
	}
}

1;
