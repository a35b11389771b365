=pod

=head1 NAME

EdgeStack - Varnish with edge/housing_cache.vcl, hc_purger and heartbeats,
for the tests of the edge suite

=head1 SYNOPSIS

  use FindBin;
  use lib $FindBin::RealBin, "$FindBin::RealBin/../http";
  use HcHttp;
  use EdgeStack;

  EdgeStack::require_varnish();                  # fails the test, with the reason, if missing
  my $stack = HcHttp->new(listings => 200);      # PostgreSQL, Redis, hc_http's roles
  my $srv = $stack->start_server;                # the origin
  my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);
  my $r = $edge->request('GET', '/api/rpc/listings?city=Boston');   # as HcHttp's
  my $purger = EdgeStack::Purger->start(redis => $stack->redis, edges => [$edge],
                                        args => ['--alive-for', '1']);
  $purger->wait_log(qr/vouching/, 10);
  my $hb = EdgeStack::Heartbeats->start(redis => $stack->redis, channel => 'c');
  $hb->set(epoch => '100', seq => 3);            # what the next heartbeats say
  EdgeStack::publish($stack->redis, 'c', { type => 'invalidation', ... });
  EdgeStack::edge_key('postgres', 'housing.listings/city=Boston');

=head1 DESCRIPTION

C<HC_PURGER_WRAPPER> runs each hc_purger under a command, e.g.
C<valgrind --leak-check=full --error-exitcode=99>.


Every process is a child of the test, in a process group of its own, with
its log in the TAP log directory; all are stopped when the test ends, also
when it dies.  varnishd runs as the test's user with C<-n> in a temporary
directory and listens on a free loopback port (C<edge/run> writes the
backend and the purgers ACL from the environment).

=cut

package EdgeStack;

use strict;
use warnings;

use Carp;
use Digest::SHA qw(sha256_hex);
use Encode qw(encode_utf8);
use File::Basename qw(basename);
use FindBin;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);

our $ROOT = "$FindBin::RealBin/../..";
our $PURGER_BIN = $ENV{HC_PURGER_BIN} // "$ROOT/purger/hc_purger";
our $EDGE_RUN = "$ROOT/edge/run";
our $VMOD_DIR = $ENV{HC_VMOD_DIR} // '/usr/lib/x86_64-linux-gnu/varnish/vmods';

my @procs;    # every process started, for END

# The edge key of a tag (edge/README.md).
sub edge_key
{
	my ($database, $tag) = @_;
	return 'k' . substr(sha256_hex(encode_utf8($database) . "\0" . encode_utf8($tag)), 0, 32);
}

# What the edge suite needs; the reason it cannot run, or undef.
sub missing
{
	my $varnishd = _which('varnishd', '/usr/sbin');
	return 'varnishd is not installed (Debian: apt-get install varnish varnish-modules)'
	  unless $varnishd;
	for my $vmod (qw(xkey var))
	{
		return "vmod_$vmod is not installed in $VMOD_DIR (Debian: apt-get install varnish-modules)"
		  unless -e "$VMOD_DIR/libvmod_$vmod.so";
	}
	return "$PURGER_BIN is not built (make -C purger)" unless -x $PURGER_BIN;
	return "$HcHttp::BIN is not built (make -C http)" if defined $HcHttp::BIN && !-x $HcHttp::BIN;
	return undef;
}

# Fail (never skip) when the edge cannot be tested here.
sub require_varnish
{
	my $why = missing();
	Test::More::BAIL_OUT("the edge suite cannot run: $why") if $why;
	return;
}

sub _which
{
	my ($name, @extra) = @_;
	for my $dir (split(/:/, $ENV{PATH} // ''), @extra)
	{
		return "$dir/$name" if -x "$dir/$name";
	}
	return undef;
}

sub free_port
{
	my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
		Listen => 1) or croak "cannot bind a loopback socket: $!";
	my $port = $sock->sockport;
	close $sock;
	return $port;
}

sub log_path
{
	my ($what) = @_;
	my $test = basename($0);
	$test =~ s/\.[^.]*$//;
	return "$PostgreSQL::Test::Utils::log_path/${test}_$what.log";
}

# PUBLISH payloads (strings, or references to encode as JSON) on a
# channel of a HousingCache::Redis, over one connection; returns how many
# subscribers got the last one.
sub publish
{
	my ($redis, $channel, @payloads) = @_;
	my $json = JSON::PP->new->utf8->canonical;
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port,
		Proto => 'tcp', Timeout => 10) or croak "cannot connect to Redis: $!";
	my $n;
	for my $p (@payloads)
	{
		my $bytes = ref $p ? $json->encode($p) : encode_utf8($p);
		my @args = ('PUBLISH', $channel, $bytes);
		print $sock '*' . scalar(@args) . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
		my $line = <$sock>;
		croak 'PUBLISH: no answer' unless defined $line;
		croak "PUBLISH: $line" unless $line =~ /^:(\d+)/;
		$n = $1;
	}
	close $sock;
	return $n;
}

# A request as HcHttp::Server's, to any base URL.
sub request_to
{
	my ($base, $method, $path, %opts) = @_;
	my $target = bless { base => $base }, 'EdgeStack::Target';
	return HcHttp::Server::request($target, $method, $path, %opts);
}

package EdgeStack::Target;

sub base { return $_[0]->{base} }

# --- a child process --------------------------------------------------------

package EdgeStack::Proc;

use strict;
use warnings;

use Carp;
use POSIX qw(WNOHANG);
use Time::HiRes qw(usleep time);

sub _spawn
{
	my ($self, $env, @cmd) = @_;
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		setpgrp(0, 0);
		$ENV{$_} = $env->{$_} for keys %$env;
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $self->{log};
		open STDERR, '>&', \*STDOUT;
		exec @cmd or POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	$self->{owner} = $$;
	push @procs, $self;
	return $pid;
}

sub pid { return $_[0]->{pid} }
sub logfile { return $_[0]->{log} }

sub is_running
{
	my ($self) = @_;
	return 0 unless $self->{pid};
	return 1 if waitpid($self->{pid}, WNOHANG) == 0;
	$self->{exit} = $?;
	$self->{pid} = undef;
	return 0;
}

# SIGTERM to the process group, wait; SIGKILL after $timeout s.  Returns
# the exit status, undef if it had to be killed.
sub stop
{
	my ($self, $timeout) = @_;
	return $self->{exit} unless $self->is_running;
	my $pid = $self->{pid};
	kill 'TERM', -$pid;
	my $deadline = time + ($timeout // 15);
	while (time < $deadline)
	{
		unless ($self->is_running)
		{
			kill 'KILL', -$pid;    # stragglers of the group (varnishd's child)
			return $self->{exit};
		}
		usleep(20_000);
	}
	$self->kill9;
	return undef;
}

sub kill9
{
	my ($self) = @_;
	return unless $self->is_running;
	my $pid = $self->{pid};
	kill 'KILL', -$pid;
	waitpid($pid, 0);
	$self->{exit} = $?;
	$self->{pid} = undef;
	return;
}

sub signal
{
	my ($self, $sig) = @_;
	kill $sig, $self->{pid} if $self->is_running;
	return;
}

sub log_text
{
	my ($self, $from) = @_;
	open my $fh, '<', $self->{log} or return '';
	local $/;
	my $text = <$fh> // '';
	return defined $from ? substr($text, $from) : $text;
}

# The log's current length: wait_log looks past it.
sub mark { return -s $_[0]->{log} // 0 }

# Wait until the log, past $mark (default: its start), has a line matching
# $re; returns that line, or undef after $timeout s.
sub wait_log
{
	my ($self, $re, $timeout, $mark) = @_;
	my $deadline = time + ($timeout // 10);
	while (1)
	{
		for my $line (split /\n/, $self->log_text($mark // 0))
		{
			return $line if $line =~ $re;
		}
		return undef if time >= $deadline;
		usleep(20_000);
	}
}

sub DESTROY
{
	my ($self) = @_;
	return unless $self->{owner} && $self->{owner} == $$;
	local ($@, $!, $?);
	eval { $self->stop(5) };
	return;
}

END
{
	local ($@, $!, $?);
	for my $p (@procs)
	{
		next unless $p && $p->{owner} && $p->{owner} == $$;
		eval { $p->stop(5) };
	}
}

# --- varnishd -----------------------------------------------------------------

package EdgeStack::Varnish;

use strict;
use warnings;

use parent -norequire, 'EdgeStack::Proc';

use Carp;
use File::Temp ();
use Time::HiRes qw(usleep time);

my $varnish_count = 0;

=pod

=head2 EdgeStack::Varnish->start(backend => 'HOST:PORT', %opts)

Options: read_backend, prefix, purgers (HC_EDGE_PURGERS), params (extra
C<-p name=value> strings), port (default: a free one).

=cut

sub start
{
	my ($class, %o) = @_;
	$varnish_count++;
	my $dir = File::Temp::tempdir("edge${varnish_count}_XXXX", DIR => $PostgreSQL::Test::Utils::tmp_check,
		CLEANUP => 1);
	my $self = bless { opts => \%o, dir => $dir, log => EdgeStack::log_path("varnish$varnish_count") }, $class;
	my $err;
	for my $try (1 .. 5)
	{
		$self->{port} = $o{port} // EdgeStack::free_port();
		return $self if eval { $self->_start; 1 };
		$err = $@;
		last if defined $o{port};
	}
	croak "varnishd did not start: $err";
}

sub _start
{
	my ($self) = @_;
	my $o = $self->{opts};
	my %env = (
		HC_EDGE_LISTEN => "127.0.0.1:$self->{port}",
		HC_EDGE_BACKEND => $o->{backend},
		HC_EDGE_WORKDIR => "$self->{dir}/n",
		HC_EDGE_STORAGE => 'malloc,64m',
		(defined $o->{read_backend} ? (HC_EDGE_READ_BACKEND => $o->{read_backend}) : ()),
		(defined $o->{prefix} ? (HC_EDGE_BACKEND_PREFIX => $o->{prefix}) : ()),
		(defined $o->{purgers} ? (HC_EDGE_PURGERS => $o->{purgers}) : ()),
		PATH => "$ENV{PATH}:/usr/sbin",
	);
	my @cmd = ($EdgeStack::EDGE_RUN, '-F', '-T', '127.0.0.1:0',
		($> == 0 ? ('-j', 'none') : ()),
		map { ('-p', $_) } @{ $o->{params} || [] });
	open my $fh, '>>', $self->{log} or croak "$self->{log}: $!";
	print $fh "--- " . scalar(localtime) . " start on port $self->{port}\n";
	close $fh;
	$self->_spawn(\%env, @cmd);
	my $deadline = time + 60;
	while (time < $deadline)
	{
		croak "varnishd exited at start; its log:\n" . $self->log_text unless $self->is_running;
		my $r = EdgeStack::request_to($self->base, 'PURGE', '/', timeout => 2);
		return if $r->{status} == 200;
		usleep(100_000);
	}
	$self->kill9;
	croak "varnishd did not answer within 60 s; its log:\n" . $self->log_text;
}

# Start it again (same port, same -n directory): an empty cache, and no
# vmod_var state.
sub restart
{
	my ($self) = @_;
	$self->stop;
	$self->_start;
	return $self;
}

sub port { return $_[0]->{port} }
sub base { return 'http://127.0.0.1:' . $_[0]->{port} }
sub purge_url { return $_[0]->base . '/' }

sub request
{
	my ($self, $method, $path, %opts) = @_;
	return EdgeStack::request_to($self->base, $method, $path, %opts);
}

# A counter of varnishstat (e.g. MAIN.cache_hit); 0 if it cannot be read.
sub stat
{
	my ($self, $name) = @_;
	my $varnishstat = EdgeStack::_which('varnishstat', '/usr/bin') or return 0;
	my $pid = open(my $fh, '-|');
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open STDERR, '>', '/dev/null';
		exec $varnishstat, '-n', "$self->{dir}/n", '-1', '-f', $name or POSIX::_exit(127);
	}
	my $out = join '', <$fh>;
	close $fh;
	return $out =~ /^\Q$name\E\s+(\d+)/m ? $1 : 0;
}

# A PURGE with these headers (a hash), from $from (an address to bind).
sub purge
{
	my ($self, %o) = @_;
	my @h = map { "$_: $o{headers}{$_}" } sort keys %{ $o{headers} || {} };
	return $self->request('PURGE', '/', headers => \@h,
		defined $o{from} ? (curl => [ '--interface', $o{from} ]) : ());
}

# --- hc_purger --------------------------------------------------------------------

package EdgeStack::Purger;

use strict;
use warnings;

use parent -norequire, 'EdgeStack::Proc';

use Carp;
use Time::HiRes qw(usleep time);

my $purger_count = 0;

=pod

=head2 EdgeStack::Purger->start(redis => $redis, edges => [$varnish, ...], %opts)

Options: channel, args (extra options); instead of redis, sentinels =>
[HousingCache::Sentinel, ...] (C<--redis-sentinels> and
C<--redis-sentinel-master>, the first one's master name).  Returns at once;
wait_log for its state.

=cut

sub start
{
	my ($class, %o) = @_;
	$purger_count++;
	my $self = bless { opts => \%o, log => EdgeStack::log_path("purger$purger_count") }, $class;
	$self->_start;
	return $self;
}

sub _start
{
	my ($self) = @_;
	my $o = $self->{opts};
	croak "$EdgeStack::PURGER_BIN is not built (make -C purger)" unless -x $EdgeStack::PURGER_BIN;
	# HC_PURGER_WRAPPER: e.g. "valgrind --leak-check=full --error-exitcode=99"
	my @redis = $o->{sentinels}
	  ? ('--redis-sentinels', join(',', map { '127.0.0.1:' . $_->port } @{ $o->{sentinels} }),
		'--redis-sentinel-master', $o->{sentinels}[0]->master_name)
	  : ('--redis-host', '127.0.0.1', '--redis-port', $o->{redis}->port);
	my @cmd = (split(' ', $ENV{HC_PURGER_WRAPPER} // ''), $EdgeStack::PURGER_BIN, @redis,
		(map { ('--varnish', ref $_ ? $_->purge_url : $_) } @{ $o->{edges} }),
		(defined $o->{channel} ? ('--channel', $o->{channel}) : ()),
		@{ $o->{args} || [] });
	open my $fh, '>>', $self->{log} or croak "$self->{log}: $!";
	print $fh "--- " . scalar(localtime) . " @cmd\n";
	close $fh;
	$self->_spawn({}, @cmd);
	return;
}

sub restart
{
	my ($self) = @_;
	$self->stop;
	$self->_start;
	return $self;
}

# --- heartbeats by hand ----------------------------------------------------------------

package EdgeStack::Heartbeats;

use strict;
use warnings;

use parent -norequire, 'EdgeStack::Proc';

use Carp;
use File::Temp ();
use IO::Socket::INET;
use Time::HiRes qw(usleep time);

=pod

=head2 EdgeStack::Heartbeats->start(redis => $redis, channel => $c, interval_ms => 200)

A process that publishes a heartbeat every interval with the epoch and seq
last given to C<set> (none until then, and none after C<set(off => 1)>),
reconnecting to Redis whenever it must; with the Redis's password (AUTH)
if it has one.

=cut

sub start
{
	my ($class, %o) = @_;
	my $dir = File::Temp::tempdir('hb_XXXX', DIR => $PostgreSQL::Test::Utils::tmp_check, CLEANUP => 1);
	my $self = bless { state => "$dir/state", log => EdgeStack::log_path('heartbeats'),
		cluster => $o{cluster} // 'edge-test' }, $class;
	$self->_write('off');
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		setpgrp(0, 0);
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $self->{log};
		open STDERR, '>&', \*STDOUT;
		_loop($o{redis}->port, $o{channel}, $self->{state}, $self->{cluster}, $o{interval_ms} // 200,
			$o{redis}->password);
		POSIX::_exit(0);
	}
	$self->{pid} = $pid;
	$self->{owner} = $$;
	push @procs, $self;
	return $self;
}

sub _write
{
	my ($self, $text) = @_;
	open my $fh, '>', "$self->{state}.tmp" or croak $!;
	print $fh $text;
	close $fh;
	rename "$self->{state}.tmp", $self->{state} or croak $!;
	return;
}

sub set
{
	my ($self, %o) = @_;
	$self->{epoch} = $o{epoch} if defined $o{epoch};
	$self->{seq} = $o{seq} if defined $o{seq};
	$self->_write($o{off} ? 'off' : "$self->{epoch} $self->{seq}");
	return;
}

sub epoch { return $_[0]->{epoch} }
sub seq { return $_[0]->{seq} }
sub cluster { return $_[0]->{cluster} }

sub _loop
{
	my ($port, $channel, $state, $cluster, $interval_ms, $password) = @_;
	my $stop = 0;
	$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
	$SIG{PIPE} = 'IGNORE';
	my $sock;
	my $parent = getppid();
	until ($stop || getppid() != $parent)
	{
		my $text = '';
		if (open my $fh, '<', $state) { local $/; $text = <$fh> // ''; }
		if ($text =~ /^(\d+) (\d+)$/)
		{
			my $msg = qq({"v":1,"type":"heartbeat","cluster":"$cluster","epoch":"$1","seq":$2});
			my $command = sub {
				my @args = @_;
				my $ok = print $sock '*' . scalar(@args) . "\r\n"
				  . join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
				my $line = $ok ? <$sock> : undef;
				$sock = undef unless defined $line && $line !~ /^-/;
			};
			unless ($sock)
			{
				$sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
					Timeout => 1);
				$command->('AUTH', $password) if $sock && defined $password;
			}
			$command->('PUBLISH', $channel, $msg) if $sock;
		}
		usleep($interval_ms * 1000);
	}
	return;
}

1;
