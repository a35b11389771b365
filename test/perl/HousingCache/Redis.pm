=pod

=head1 NAME

HousingCache::Redis - a private redis-server for one TAP test

=head1 SYNOPSIS

  use HousingCache::Redis;

  my $redis = HousingCache::Redis->new;                  # free loopback port
  my $auth  = HousingCache::Redis->new(password => 's3cret',
                                       args => ['--maxmemory', '2mb']);

  $redis->port;                   # the port it listens on (127.0.0.1)
  $redis->cli('GET', 'k');        # redis-cli output, trimmed
  $redis->pause;                  # SIGSTOP: connections hang (timeout tests)
  $redis->resume;                 # SIGCONT
  $redis->kill9;                  # crash it
  $redis->start;                  # start again on the same port
  $redis->stop;                   # graceful stop
  $redis->is_running;
  $redis->args(['--replicaof', '127.0.0.1', $port]);   # for the next start

=head1 DESCRIPTION

Each object runs one C<redis-server> in the foreground (as a child process)
with persistence off, on a port picked free on 127.0.0.1, in a temporary
directory.  The server's log goes to the TAP log directory
(C<tmp_check/log/E<lt>testE<gt>_redis_E<lt>portE<gt>.log>) when there is one, so a
failed run keeps it.

Every server is stopped when its object goes away, at the end of the test
(even when the test dies), and on SIGINT/SIGTERM.

HousingCache::Sentinel is a subclass that runs C<redis-sentinel> instead,
with the same life cycle.

Only core Perl modules are used; C<redis-server> and C<redis-cli> must be in
PATH.

=cut

package HousingCache::Redis;

use strict;
use warnings;

use Carp;
use File::Basename qw(basename);
use File::Spec;
use File::Temp ();
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Scalar::Util qw(weaken);
use Time::HiRes qw(usleep time);

# Every live server, so END and the signal handlers can stop them all.
my %live;

# How long to wait for the server to answer or to exit, in seconds.
our $timeout = 30;

=pod

=head1 METHODS

=over

=item HousingCache::Redis->new(%opts)

Start a server and wait until C<redis-cli ping> answers.  Options:

=over

=item password => 'pw'

Adds C<--requirepass pw>; C<cli> then authenticates.

=item args => [ '--maxmemory', '2mb', ... ]

Extra C<redis-server> command-line arguments.

=item name => 'l2'

Used in the log file name (C<E<lt>testE<gt>_redis_l2_E<lt>portE<gt>.log>), to tell
several servers of one test apart.

=back

=cut

sub new
{
    my ($class, %opts) = @_;

    my $self = bless {
        password => $opts{password},
        args => [ @{ $opts{args} || [] } ],
        name => $opts{name},
        pid => undef,
        paused => 0,
        owner => $$,    # only the process that started it may stop it
    }, $class;
    $self->_configure(%opts);

    # A temporary directory for the working dir and pidfile; under the TAP
    # tmp_check when there is one, so the test driver can find stray servers.
    my $base = _tmp_check() // File::Spec->tmpdir;
    $self->{dir} = File::Temp::tempdir('redis_XXXX', DIR => $base, CLEANUP => 1);

    # The port is picked free, then bound by redis-server: another process
    # could take it in between, so try a few ports before giving up.
    my $err;
    for (1 .. 5)
    {
        $self->{port} = _free_port();
        return $self if eval { $self->start; 1 };
        $err = $@;
    }
    croak "could not start redis-server: $err";
}

=pod

=item $redis->port

The TCP port on 127.0.0.1.

=cut

sub port { return $_[0]->{port} }

=pod

=item $redis->password

The password given to C<new>, or undef.

=cut

sub password { return $_[0]->{password} }

=pod

=item $redis->args([ ... ])

The extra command-line arguments of the next C<start> (e.g. to start a
crashed master again as a replica); without an argument, the current ones.

=cut

sub args
{
    my ($self, $args) = @_;
    $self->{args} = [@$args] if defined $args;
    return [ @{ $self->{args} } ];
}

=pod

=item $redis->pid

The server's process id while it runs, else undef.

=cut

sub pid { return $_[0]->is_running ? $_[0]->{pid} : undef }

# Subclasses keep their own options here (called by new before the first
# start) and say how the server is started (_command).
sub _configure { return }

sub _command
{
    my ($self) = @_;
    return (
        'redis-server',
        '--port' => $self->{port},
        '--bind' => '127.0.0.1',
        '--save' => '',
        '--appendonly' => 'no',
        '--daemonize' => 'no',
        '--dir' => $self->{dir},
        '--pidfile' => "$self->{dir}/redis.pid",
        '--logfile' => $self->logfile,
        (defined $self->{password} ? ('--requirepass' => $self->{password}) : ()),
        @{ $self->{args} });
}

=pod

=item $redis->logfile

Path of the server's log file.

=cut

sub logfile
{
    my ($self) = @_;
    my $logdir = _log_dir();
    my $test = basename($0);
    $test =~ s/\.[^.]*$//;
    my $name = defined $self->{name} ? "_$self->{name}" : '';
    return defined $logdir
      ? "$logdir/${test}_redis${name}_$self->{port}.log"
      : "$self->{dir}/redis.log";
}

=pod

=item $redis->start

Start the server (again) on the same port; dies if it does not answer
within C<$HousingCache::Redis::timeout> seconds.  A no-op if it is running.

=cut

sub start
{
    my ($self) = @_;
    return if $self->is_running;

    my @cmd = $self->_command;

    my $pid = fork;
    croak "fork: $!" unless defined $pid;
    if ($pid == 0)
    {
        # Keep the server out of the terminal's process group: a Ctrl-C
        # reaches the test, whose handlers stop the server.
        setpgrp(0, 0);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->logfile;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $self->{paused} = 0;
    $live{$pid} = $self;
    weaken($live{$pid});

    my $deadline = time + $timeout;
    while (time < $deadline)
    {
        if (!$self->is_running)
        {
            croak "$cmd[0] exited at start (port $self->{port}); see "
              . $self->logfile . ":\n" . _tail($self->logfile);
        }
        return if $self->cli('PING') eq 'PONG';
        usleep(50_000);
    }
    $self->kill9;
    croak "$cmd[0] did not answer PING within $timeout s (port $self->{port})";
}

=pod

=item $redis->cli(@args)

Run C<redis-cli -h 127.0.0.1 -p PORT @args> (authenticated when a password
was set) and return its output, stdout and stderr together, with
surrounding whitespace trimmed.  Errors come back as text, e.g.
C<"ERR unknown command ...">.

=cut

sub cli
{
    my ($self, @args) = @_;
    my @cmd = ('redis-cli', '-h', '127.0.0.1', '-p', $self->{port});
    push @cmd, '--no-auth-warning', '-a', $self->{password}
      if defined $self->{password};

    # A list-form pipe open: no shell, so arguments need no quoting.
    my $pid = open(my $fh, '-|');
    croak "fork: $!" unless defined $pid;
    if ($pid == 0)
    {
        open STDERR, '>&', \*STDOUT;
        open STDIN, '<', '/dev/null';
        exec @cmd, @args or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/^\s+|\s+$//g;
    return $out;
}

=pod

=item $redis->stop

Stop the server gracefully (SIGTERM; persistence is off so nothing is
saved), resuming it first if paused; SIGKILL if it does not exit in time.
Safe to call when it is not running.

=cut

sub stop
{
    my ($self) = @_;
    return unless $self->is_running;
    my $pid = $self->{pid};
    kill 'CONT', $pid if $self->{paused};
    kill 'TERM', $pid;
    return if $self->_reap($timeout);
    kill 'KILL', $pid;
    $self->_reap($timeout);
    return;
}

=pod

=item $redis->kill9

SIGKILL the server, as a crash would, and wait until it is gone.

=cut

sub kill9
{
    my ($self) = @_;
    return unless $self->is_running;
    kill 'KILL', $self->{pid};
    $self->_reap($timeout);
    return;
}

=pod

=item $redis->pause / $redis->resume

SIGSTOP / SIGCONT the server: while paused it accepts TCP connections (the
kernel does) but never answers, which is how a hung Redis looks to a client.
Do not call C<cli> while paused: it would wait for the answer too.

=cut

sub pause
{
    my ($self) = @_;
    croak "redis-server is not running" unless $self->is_running;
    kill 'STOP', $self->{pid};
    $self->{paused} = 1;
    return;
}

sub resume
{
    my ($self) = @_;
    croak "redis-server is not running" unless $self->is_running;
    kill 'CONT', $self->{pid};
    $self->{paused} = 0;
    return;
}

=pod

=item $redis->wait_replicating

Waits up to 60 s until this server, a replica, has its link to its master
up; true if it has.

=cut

sub wait_replicating
{
    my ($self) = @_;
    for (1 .. 600)
    {
        return 1 if ($self->cli('INFO', 'replication') // '') =~ /master_link_status:up/;
        usleep(100_000);
    }
    return 0;
}

=pod

=item $redis->is_running

True while the server process exists (paused or not).

=back

=cut

sub is_running
{
    my ($self) = @_;
    my $pid = $self->{pid};
    return 0 unless $pid;
    local ($!, $?);
    if (waitpid($pid, WNOHANG) == 0)
    {
        return 1;
    }
    $self->_forget;
    return 0;
}

# Wait up to $secs for the child to exit; true if it did.
sub _reap
{
    my ($self, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline)
    {
        return 1 unless $self->is_running;
        usleep(20_000);
    }
    return !$self->is_running;
}

sub _forget
{
    my ($self) = @_;
    delete $live{ $self->{pid} } if $self->{pid};
    $self->{pid} = undef;
    $self->{paused} = 0;
    return;
}

sub DESTROY
{
    my ($self) = @_;
    return unless $self->{owner} == $$;
    local ($@, $!, $?);    # keep the test's exit status intact
    eval { $self->stop };
    return;
}

sub _stop_all
{
    local ($@, $!, $?);
    for my $server (grep { defined && $_->{owner} == $$ } values %live)
    {
        eval { $server->stop };
    }
    return;
}

END { _stop_all() }

# A Ctrl-C or a kill of the test must not leave servers behind: turn the
# signal into a normal exit, which runs END blocks (ours and the TAP
# framework's node teardown).  Only if the test did not set its own handler.
my %signo = (HUP => 1, INT => 2, TERM => 15);
for my $sig (sort keys %signo)
{
    next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
    $SIG{$sig} = sub { _stop_all(); exit(128 + $signo{$sig}) };
}

# tmp_check of the TAP run (TESTDIR is set by the PGXS prove machinery).
sub _tmp_check
{
    my $dir = defined $ENV{TESTDIR} ? "$ENV{TESTDIR}/tmp_check" : undef;
    return defined $dir && -d $dir ? $dir : undef;
}

sub _log_dir
{
    my $tmp = _tmp_check();
    return defined $tmp && -d "$tmp/log" ? "$tmp/log" : undef;
}

# Ask the kernel for a free port on loopback.
sub _free_port
{
    my $sock = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1',
        LocalPort => 0,
        Proto => 'tcp',
        Listen => 1)
      or croak "cannot bind a loopback socket: $!";
    my $port = $sock->sockport;
    close $sock;
    return $port;
}

sub _tail
{
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    my @lines = <$fh>;
    return join '', @lines[ (@lines > 20 ? @lines - 20 : 0) .. $#lines ];
}

1;
