=pod

=head1 NAME

HcHttp - PostgreSQL + Redis + hc_http for one test of the http suite

=head1 SYNOPSIS

  use FindBin;
  use lib $FindBin::RealBin;
  use HcHttp;

  my $stack = HcHttp->new(listings => 200);      # node, Redis, api roles, data
  my $srv = $stack->start_server('--pool' => 4); # hc_http on a free port
  my $r = $srv->request('GET', '/api/rpc/listings?city=Boston');
  $r->{status}; $r->{headers}{etag}; $r->{body}; $r->{json};
  my $token = $srv->token('web_editor');
  $srv->stop;                                    # SIGTERM, waits; exit status

  # the event stream: hc_http subscribed to the node's Redis
  my $esrv = $stack->start_server($stack->events_args);
  my $es = $esrv->events;                        # GET /api/events
  my $ev = $es->next_event(5);                   # { event, data, id, comment }
  $stack->publish('housing_cache:invalidations', { type => 'invalidation', ... });
  $esrv->threads; $esrv->rss_kb;                 # from /proc
  my $mark = $esrv->mark;                        # its log: what came after
  $esrv->wait_log(qr/subscribed to/, 10, $mark); $esrv->log_text($mark);

  # Redis under Sentinel: the node on an existing Redis (the master), then
  # the engine (ALTER SYSTEM + reload) and hc_http pointed at the sentinels
  my $stack = HcHttp->new(redis => $master);
  $stack->use_sentinels(\@sentinels, password => $sentinel_pw);
  my $ssrv = $stack->start_server($stack->events_args);   # --redis-sentinels ...

  # a primary that can stream, and a hot standby of it as the read database
  my $pair = HcHttp->new(listings => 200, streaming => 1);
  my $standby = $pair->add_standby('standby');
  my $rsrv = $pair->start_server('--read-db', $pair->conninfo($standby));

=head1 DESCRIPTION

The node (PostgreSQL::Test::Cluster via HousingCache::Test) has the
extension, C<housing_cache.setup_api_roles()> run with a password, and
sample listings from C<generate_listings()>.  The server connects as
C<authenticator>, listens on 127.0.0.1 on a port it picks itself (C<--port
0>; the port is read from its log), and logs to the TAP log directory.

Every server started is stopped when the test ends, even when it dies.

Options of C<new>: C<name>, C<listings>, C<conf> (lines for the node's
postgresql.conf), C<streaming> (WAL for streaming replication, so that
C<add_standby> can make a hot standby of the node), C<redis> (a
HousingCache::Redis to use instead of a new one, its password included).

The sentinel form: C<use_sentinels> points the engine at Redis Sentinels
(HousingCache::Sentinel) with C<ALTER SYSTEM> and a reload, and waits until
it has found the master through them; from then on C<events_args> gives
hc_http C<--redis-sentinels> and C<--redis-sentinel-master>, and the
passwords (the master's, the sentinels') as files, never on the command
line.

Requests go through curl (C<--path-as-is>, so that dot segments reach the
server as written).  Event streams (C<HcHttp::Events>) through a socket of
their own, which decodes the chunked encoding and splits the events.

=cut

package HcHttp;

use strict;
use warnings;

use Carp;
use File::Temp ();
use FindBin;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);

use HousingCache::Redis;
use HousingCache::Sentinel;
use HousingCache::Test;

our $JWT_SECRET = 'hc-http-test-secret-0123456789abcdefghij';
our $BIN = $ENV{HC_HTTP_BIN} // "$FindBin::RealBin/../../http/hc_http";

my @servers;    # every server started, for END

sub new
{
	my ($class, %opts) = @_;
	croak "$BIN is not built (make -C http)" unless -x $BIN;

	my $self = bless {}, $class;
	$self->{redis} = $opts{redis} // HousingCache::Redis->new;
	my $conf = $opts{conf} // '';
	# what PostgreSQL::Test::Cluster's allows_streaming sets, after its
	# wal_level = minimal
	$conf = "wal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\n"
	  . "hot_standby = on\n$conf"
	  if $opts{streaming};
	$self->{node} = new_node($opts{name} // 'http', redis => $self->{redis},
		length $conf ? (conf => $conf) : ());
	my $n = $opts{listings} // 500;
	$self->{node}->safe_psql('postgres', qq{
		SELECT housing_cache.generate_listings($n);
		SELECT housing_cache.setup_api_roles('authenticator-pw');
	});
	return $self;
}

sub node { return $_[0]->{node} }

sub redis { return $_[0]->{redis} }

# The authenticator's connection string for the node (default: the primary).
sub conninfo
{
	my ($self, $node) = @_;
	$node //= $self->{node};
	return 'host=' . $node->host . ' port=' . $node->port
	  . ' dbname=postgres user=authenticator password=authenticator-pw';
}

# A streaming hot standby of the node (created with streaming => 1), from a
# base backup of it: its postgresql.conf comes with the backup, so it
# preloads housing_cache with the same Redis settings.  Started and caught
# up; returns the PostgreSQL::Test::Cluster.
sub add_standby
{
	my ($self, $name) = @_;
	my $primary = $self->{node};
	$primary->backup("${name}_backup");
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, "${name}_backup", has_streaming => 1);
	$standby->append_conf('postgresql.conf', "hot_standby = on\n");
	$standby->start;
	$primary->wait_for_catchup($standby);
	return $standby;
}

# A file holding a secret (its first line), in a directory of the stack's.
sub _secret_file
{
	my ($self, $name, $secret) = @_;
	$self->{secrets} //= File::Temp->newdir;
	my $file = "$self->{secrets}/$name";
	open my $fh, '>', $file or croak "$file: $!";
	print $fh "$secret\n";
	close $fh or croak "$file: $!";
	return $file;
}

# The options that subscribe hc_http to the node's Redis, on the engine's
# channel or another: its address, or after use_sentinels the sentinels.
sub events_args
{
	my ($self, $channel) = @_;
	my @args;
	if ($self->{sentinels})
	{
		my $s = $self->{sentinels};
		push @args, '--redis-sentinels', $s->{list}, '--redis-sentinel-master', $s->{name};
		push @args, '--redis-sentinel-password-file', $self->_secret_file('sentinel_pw', $s->{password})
		  if defined $s->{password};
	}
	else
	{
		push @args, '--redis-host', '127.0.0.1', '--redis-port', $self->{redis}->port;
	}
	push @args, '--redis-password-file', $self->_secret_file('redis_pw', $self->{redis}->password)
	  if defined $self->{redis}->password;
	push @args, '--redis-channel', $channel if defined $channel;
	return @args;
}

=pod

=head2 $stack->use_sentinels(\@sentinels, password => $pw, timeout => 60)

The sentinel form.  The engine asks these sentinels (HousingCache::Sentinel,
all monitoring the same master under one name) where the master is:
C<ALTER SYSTEM SET> C<housing_cache.redis_sentinels>,
C<redis_sentinel_master> and C<redis_sentinel_password> (C<password>, the
sentinels' own), then C<pg_reload_conf()>; returns once a read has made the
engine find the master they name (C<redis_master> in
C<housing_cache.stats>).  Afterwards C<events_args> points hc_http at the
same sentinels.  The node's Redis (C<redis> of C<new>) should be that
master, so that its password is the engine's C<redis_password>.

=cut

sub use_sentinels
{
	my ($self, $sentinels, %opts) = @_;
	croak 'use_sentinels: no sentinels' unless $sentinels && @$sentinels;
	my $node = $self->{node};
	my $list = HousingCache::Sentinel->setting(@$sentinels);
	my $name = $sentinels->[0]->master_name;
	my $quote = sub { my $v = shift; $v =~ s/'/''/g; return "'$v'" };
	$node->safe_psql('postgres', join('',
		'ALTER SYSTEM SET housing_cache.redis_sentinels = ', $quote->($list), ';',
		'ALTER SYSTEM SET housing_cache.redis_sentinel_master = ', $quote->($name), ';',
		defined $opts{password}
		? ('ALTER SYSTEM SET housing_cache.redis_sentinel_password = ', $quote->($opts{password}), ';')
		: (),
		'SELECT pg_reload_conf();'));
	$self->{sentinels} = { list => $list, name => $name, password => $opts{password} };

	my $want = $sentinels->[0]->master_addr // croak 'use_sentinels: the sentinels name no master';
	my $deadline = time + ($opts{timeout} // 60);
	my ($now, $i) = ('', 0);
	while (time < $deadline)
	{
		# a read that misses L1 reaches Redis, which makes a backend
		# discover the master
		$i++;
		$now = $node->safe_psql('postgres',
			"SELECT housing_cache.get_listing($i) IS NULL; SELECT redis_master FROM housing_cache.stats");
		$now = (split /\n/, $now)[-1] // '';
		return $now if $now eq $want;
		usleep(100_000);
	}
	croak "use_sentinels: the engine did not find the master $want through the sentinels (it says '$now')";
}

# PUBLISH each payload (a string, or a reference to encode as JSON) on the
# channel, in order, over one connection (RESP); returns the receivers'
# counts.
sub publish
{
	my ($self, $channel, @payloads) = @_;
	my $json = JSON::PP->new->utf8->canonical;
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{redis}->port,
		Proto => 'tcp', Timeout => 10)
	  or croak "cannot connect to Redis: $!";
	my $out = '';
	for my $p (@payloads)
	{
		my $msg = ref $p ? $json->encode($p) : $p;
		utf8::encode($msg) if utf8::is_utf8($msg);
		$out .= "*3\r\n\$7\r\nPUBLISH\r\n"
		  . '$' . length($channel) . "\r\n$channel\r\n"
		  . '$' . length($msg) . "\r\n$msg\r\n";
	}
	print {$sock} $out;
	my @counts;
	for (@payloads)
	{
		my $line = <$sock>;
		croak 'Redis closed the connection' unless defined $line;
		croak "PUBLISH: $line" unless $line =~ /^:(\d+)/;
		push @counts, $1;
	}
	close $sock;
	return @counts;
}

# Start hc_http with extra options; returns an HcHttp::Server.
sub start_server
{
	my ($self, @opts) = @_;
	return HcHttp::Server->start($self, @opts);
}

package HcHttp::Server;

use strict;
use warnings;

use Carp;
use File::Basename qw(basename);
use JSON::PP;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);

my $counter = 0;

sub start
{
	my ($class, $stack, @opts) = @_;
	my $test = basename($0);
	$test =~ s/\.[^.]*$//;
	$counter++;
	my $log = "$PostgreSQL::Test::Utils::log_path/${test}_hc_http_$counter.log";
	my $self = bless { stack => $stack, log => $log, owner => $$ }, $class;

	my @cmd = ($HcHttp::BIN, '--listen', '127.0.0.1', '--port', '0',
		'--db', $stack->conninfo, @opts);
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		setpgrp(0, 0);
		$ENV{HC_JWT_SECRET} = $HcHttp::JWT_SECRET;
		open STDIN, '<', '/dev/null';
		open STDOUT, '>>', $log;
		open STDERR, '>&', \*STDOUT;
		exec @cmd or POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	push @servers, $self;

	my $deadline = time + 30;
	while (time < $deadline)
	{
		if (open my $fh, '<', $log)
		{
			while (<$fh>)
			{
				if (/listening on http:\/\/127\.0\.0\.1:(\d+)\//)
				{
					$self->{port} = $1;
					return $self;
				}
			}
		}
		croak "hc_http exited at start; its log:\n" . $self->log_text
		  unless $self->is_running;
		usleep(50_000);
	}
	$self->kill9;
	croak "hc_http did not start within 30 s; its log:\n" . $self->log_text;
}

sub port { return $_[0]->{port} }
sub pid { return $_[0]->{pid} }
sub base { return 'http://127.0.0.1:' . $_[0]->{port} }
sub logfile { return $_[0]->{log} }

# The log (after $mark, if given).
sub log_text
{
	my ($self, $mark) = @_;
	open my $fh, '<', $self->{log} or return '';
	local $/;
	my $text = <$fh> // '';
	return defined $mark ? substr($text, $mark) : $text;
}

# The log's length now, for wait_log and log_text to look past.
sub mark { return -s $_[0]->{log} // 0 }

# Wait up to $timeout seconds for a line of the log (after $mark) matching
# $re; returns the line, or undef.
sub wait_log
{
	my ($self, $re, $timeout, $mark) = @_;
	my $deadline = time + ($timeout // 10);
	for (;;)
	{
		for my $line (split /\n/, substr($self->log_text, $mark // 0))
		{
			return $line if $line =~ $re;
		}
		return undef if time >= $deadline;
		usleep(20_000);
	}
}

sub is_running
{
	my ($self) = @_;
	return 0 unless $self->{pid};
	return 1 if waitpid($self->{pid}, WNOHANG) == 0;
	$self->{exit} = $?;
	$self->{pid} = undef;
	return 0;
}

# SIGTERM and wait (up to $timeout s); returns the exit status ($?), or
# undef if it had to be killed.
sub stop
{
	my ($self, $timeout) = @_;
	$timeout //= 30;
	return $self->{exit} unless $self->is_running;
	kill 'TERM', $self->{pid};
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		return $self->{exit} unless $self->is_running;
		usleep(20_000);
	}
	$self->kill9;
	return undef;
}

sub kill9
{
	my ($self) = @_;
	return unless $self->is_running;
	kill 'KILL', $self->{pid};
	waitpid($self->{pid}, 0);
	$self->{pid} = undef;
	return;
}

sub signal
{
	my ($self, $sig) = @_;
	kill $sig, $self->{pid} if $self->is_running;
	return;
}

# A token signed with the test secret, minted by hc_http itself.
sub token
{
	my ($self, $role, $ttl) = @_;
	local $ENV{HC_JWT_SECRET} = $HcHttp::JWT_SECRET;
	my @cmd = ($HcHttp::BIN, '--mint-token', $role, defined $ttl ? ('--token-ttl', $ttl) : ());
	my $out = _run_capture(@cmd);
	$out =~ s/\s+$//;
	croak "could not mint a token: $out" unless $out =~ /^[\w-]+\.[\w-]+\.[\w-]+$/;
	return $out;
}

sub _run_capture
{
	my @cmd = @_;
	my $pid = open(my $fh, '-|');
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open STDERR, '>&', \*STDOUT;
		open STDIN, '<', '/dev/null';
		exec @cmd or POSIX::_exit(127);
	}
	local $/;
	my $out = <$fh> // '';
	close $fh;
	return $out;
}

=pod

=head2 $srv->request($method, $path, %opts)

Options: headers => [ 'Name: value', ... ], body => $string (sent as
given), json => $ref (encoded, with Content-Type application/json),
token => $jwt, timeout => seconds (default 30), curl => [ extra args ].

Returns { status (0 when the connection failed), headers => { lower-case
name => value }, body, json (decoded when the body is JSON), curl_exit }.

=cut

sub request
{
	my ($self, $method, $path, %opts) = @_;
	my $tmp = File::Temp->newdir;
	my ($hfile, $bfile, $dfile) = ("$tmp/h", "$tmp/b", "$tmp/d");
	my @cmd = ('curl', '-s', '--path-as-is', '-o', $method eq 'HEAD' ? '/dev/null' : $bfile, '-D', $hfile,
		'-w', '%{http_code}', '--max-time', $opts{timeout} // 30);
	push @cmd, $method eq 'HEAD' ? ('-I') : ('-X', $method);
	push @cmd, '-H', $_ for @{ $opts{headers} || [] };
	push @cmd, '-H', "Authorization: Bearer $opts{token}" if defined $opts{token};
	my $body = $opts{body};
	if (defined $opts{json})
	{
		$body = ref $opts{json} ? JSON::PP->new->utf8->canonical->encode($opts{json}) : $opts{json};
		push @cmd, '-H', 'Content-Type: application/json';
	}
	if (defined $body)
	{
		open my $fh, '>', $dfile or croak $!;
		binmode $fh;
		print $fh $body;
		close $fh;
		push @cmd, '--data-binary', "\@$dfile";
	}
	push @cmd, @{ $opts{curl} || [] };
	push @cmd, $self->base . $path;

	my $code = _run_capture(@cmd);
	my $exit = $? >> 8;
	my %h;
	if (open my $fh, '<', $hfile)
	{
		local $/;
		my $raw = <$fh> // '';
		# the last response's headers (skip 100 Continue)
		my @blocks = grep { /\S/ } split /\r?\n\r?\n/, $raw;
		my $last = $blocks[-1] // '';
		for my $line (split /\r?\n/, $last)
		{
			$h{ lc $1 } = $2 if $line =~ /^([^:\s]+):\s*(.*?)\s*$/;
		}
	}
	my $content = '';
	if (open my $fh, '<', $bfile)
	{
		local $/;
		binmode $fh;
		$content = <$fh> // '';
	}
	my $json;
	$json = eval { JSON::PP->new->utf8->decode($content) } if length $content;
	$code = 0 unless $code =~ /^\d{3}$/;
	return {
		status => 0 + $code,
		headers => \%h,
		body => $content,
		json => $json,
		curl_exit => $exit,
	};
}

# Threads and resident memory of the running server (/proc).
sub _proc_status
{
	my ($self, $field) = @_;
	open my $fh, '<', "/proc/$self->{pid}/status" or croak "no /proc/$self->{pid}: $!";
	while (<$fh>)
	{
		return $1 if /^\Q$field\E:\s+(\d+)/;
	}
	croak "no $field in /proc/$self->{pid}/status";
}

sub threads { return $_[0]->_proc_status('Threads') }
sub rss_kb { return $_[0]->_proc_status('VmRSS') }

# GET /api/events; see HcHttp::Events.
sub events
{
	my ($self, %opts) = @_;
	return HcHttp::Events->new($self->{port}, %opts);
}

sub DESTROY
{
	my ($self) = @_;
	return unless $self->{owner} == $$;
	local ($@, $!, $?);
	eval { $self->stop(10) };
	return;
}

package HcHttp::Events;

=pod

=head2 HcHttp::Events

A client of C<GET /api/events> on a socket of its own.

  my $es = HcHttp::Events->new($port, token => $jwt, last_event_id => $id,
      query => 'lastEventId=...', headers => [ ... ], read => 0, rcvbuf => 4096);
  $es->status; $es->headers->{'content-type'};
  my $ev = $es->next_event($timeout);    # undef at the timeout or the end
  # { event => 'invalidate', data => '{"keys":[...]}', id => '...',
  #   comment => 'keepalive' (comment lines), retry => ... }
  my $ev = $es->wait_for(sub { $_[0]{event} eq 'reset' }, $timeout);
  my @evs = $es->drain($seconds);        # every event within that time
  $es->nibble($bytes);                   # read a little, if there is any
  $es->ended;                            # the server ended the stream
  $es->finish;

With C<read =E<gt> 0> only the request is sent: a client that never reads.
C<rcvbuf> sets the socket's receive buffer (before it connects), so that a
client that pauses falls behind soon.

=cut

use strict;
use warnings;

use Carp;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use Socket ();
use Time::HiRes qw(time);

sub new
{
	my ($class, $port, %opts) = @_;
	my $sock;
	if ($opts{rcvbuf})
	{
		# a small receive buffer, set before connecting so that it holds
		$sock = IO::Socket::INET->new(Proto => 'tcp') or croak "socket: $!";
		setsockopt($sock, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), $opts{rcvbuf}) or croak $!;
		$sock->connect(Socket::pack_sockaddr_in($port, Socket::inet_aton('127.0.0.1')))
		  or croak "cannot connect to hc_http: $!";
	}
	else
	{
		$sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
			Proto => 'tcp', Timeout => 10)
		  or croak "cannot connect to hc_http: $!";
	}
	my $path = '/api/events' . (defined $opts{query} ? "?$opts{query}" : '');
	my $req = "GET $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nAccept: text/event-stream\r\n";
	$req .= "Authorization: Bearer $opts{token}\r\n" if defined $opts{token};
	$req .= "Last-Event-ID: $opts{last_event_id}\r\n" if defined $opts{last_event_id};
	$req .= "$_\r\n" for @{ $opts{headers} || [] };
	print {$sock} "$req\r\n";
	my $self = bless { sock => $sock, raw => '', body => '', headers => {}, status => 0,
		ended => 0, queue => [] }, $class;
	return $self if defined $opts{read} && !$opts{read};
	$self->_read_head($opts{timeout} // 10);
	return $self;
}

sub status { return $_[0]->{status} }
sub headers { return $_[0]->{headers} }
sub ended { return $_[0]->{ended} }
sub sock { return $_[0]->{sock} }

sub finish
{
	my ($self) = @_;
	close $self->{sock} if $self->{sock};
	$self->{sock} = undef;
	return;
}

# Read what is there within $timeout seconds; false at the end or timeout.
sub _read_some
{
	my ($self, $timeout) = @_;
	return 0 if $self->{ended} || !$self->{sock};
	my $sel = IO::Select->new($self->{sock});
	return 0 unless $sel->can_read($timeout < 0 ? 0 : $timeout);
	my $n = sysread($self->{sock}, my $buf, 65536);
	if (!$n)
	{
		$self->{ended} = 1;
		return 0;
	}
	$self->{raw} .= $buf;
	$self->_dechunk if $self->{head_done};
	return 1;
}

# Read at most $max bytes if there are any (a client that reads slowly).
sub nibble
{
	my ($self, $max) = @_;
	return 0 if $self->{ended} || !$self->{sock};
	return 0 unless IO::Select->new($self->{sock})->can_read(0);
	my $n = sysread($self->{sock}, my $buf, $max);
	if (!$n)
	{
		$self->{ended} = 1;
		return 0;
	}
	$self->{raw} .= $buf;
	$self->_dechunk;
	return $n;
}

sub _read_head
{
	my ($self, $timeout) = @_;
	my $deadline = time + $timeout;
	while ($self->{raw} !~ /\r\n\r\n/)
	{
		croak 'no response head from hc_http' unless $self->_read_some($deadline - time);
	}
	my ($head, $rest) = split /\r\n\r\n/, $self->{raw}, 2;
	my ($status_line, @lines) = split /\r\n/, $head;
	($self->{status}) = $status_line =~ m{^HTTP/1\.\d (\d{3})};
	for (@lines)
	{
		$self->{headers}{ lc $1 } = $2 if /^([^:]+):\s*(.*?)\s*$/;
	}
	$self->{chunked} = ($self->{headers}{'transfer-encoding'} // '') =~ /chunked/i;
	$self->{head_done} = 1;
	$self->{raw} = $rest // '';
	$self->_dechunk;
	return;
}

# Move the whole chunks of raw into body; rpos: how much of raw is done.
# Positions instead of cutting the front off, which would copy megabytes
# per event when a client catches up.
sub _dechunk
{
	my ($self) = @_;
	if (!$self->{chunked})
	{
		$self->{body} .= $self->{raw};
		$self->{raw} = '';
		return;
	}
	my $pos = 0;
	my $raw = \$self->{raw};
	for (;;)
	{
		my $eol = index($$raw, "\r\n", $pos);
		last if $eol < 0;
		my $size = hex substr($$raw, $pos, $eol - $pos);
		if ($size == 0)
		{
			$self->{ended} = 1;
			$pos = length $$raw;
			last;
		}
		last if length($$raw) < $eol + 2 + $size + 2;
		$self->{body} .= substr($$raw, $eol + 2, $size);
		$pos = $eol + 2 + $size + 2;
	}
	substr($$raw, 0, $pos, '');
	return;
}

# The next complete event (a block ending with a blank line), or undef.
sub _take
{
	my ($self) = @_;
	my $bpos = $self->{bpos} // 0;
	my $end = index($self->{body}, "\n\n", $bpos);
	if ($end < 0)
	{
		substr($self->{body}, 0, $bpos, '');
		$self->{bpos} = 0;
		return undef;
	}
	my $block = substr($self->{body}, $bpos, $end - $bpos);
	$self->{bpos} = $end + 2;
	my %ev;
	for my $line (split /\n/, $block)
	{
		if ($line =~ /^:\s?(.*)$/)
		{
			$ev{comment} = defined $ev{comment} ? "$ev{comment}\n$1" : $1;
		}
		elsif ($line =~ /^(\w+):\s?(.*)$/)
		{
			$ev{$1} = $1 eq 'data' && defined $ev{data} ? "$ev{data}\n$2" : $2;
		}
	}
	return \%ev;
}

sub next_event
{
	my ($self, $timeout) = @_;
	my $deadline = time + ($timeout // 10);
	for (;;)
	{
		my $ev = $self->_take;
		return $ev if $ev;
		return undef unless $self->_read_some($deadline - time);
	}
}

# The first event for which $pred is true (others are skipped), or undef.
sub wait_for
{
	my ($self, $pred, $timeout) = @_;
	my $deadline = time + ($timeout // 10);
	while (time < $deadline)
	{
		my $ev = $self->next_event($deadline - time) // return undef;
		return $ev if $pred->($ev);
	}
	return undef;
}

# Every event (keepalive comments left out) arriving within $seconds.
sub drain
{
	my ($self, $seconds) = @_;
	my $deadline = time + $seconds;
	my @evs;
	while (my $ev = $self->next_event($deadline - time))
	{
		push @evs, $ev if defined $ev->{event} || defined $ev->{id};
	}
	return @evs;
}

package HcHttp::Server;

END
{
	local ($@, $!, $?);
	for my $s (@servers)
	{
		next unless $s && $s->{owner} == $$;
		eval { $s->stop(10) };
	}
}

1;
