=pod

=head1 NAME

HcReliability::Resp - a minimal, binary-safe Redis client (RESP2)

=head1 SYNOPSIS

  use HcReliability::Resp;

  my $r = HcReliability::Resp->new(port => $redis->port, password => $pw);
  my $bytes = $r->cmd('GET', $key);          # undef for nil
  $r->cmd('SET', $key, $bytes, 'PX', 60000); # 'OK'
  my $reply = $r->cmd('WRONG');              # HcReliability::Resp::Error
  $r->close;

=head1 DESCRIPTION

redis-cli passes arguments through the command line, where a NUL byte
cannot go; the values the extension stores have NUL bytes in their header.
This client speaks the protocol over a socket: arguments and bulk replies
are byte strings, integers come back as numbers, arrays as array
references, status replies as strings, error replies as
C<HcReliability::Resp::Error> objects (C<< ->message >>).  Every read and
write is bounded by C<timeout> (seconds, default 10).

=cut

package HcReliability::Resp;

use strict;
use warnings;

use Carp;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

sub new
{
	my ($class, %o) = @_;
	my $sock = IO::Socket::INET->new(
		PeerAddr => $o{host} // '127.0.0.1',
		PeerPort => $o{port},
		Proto => 'tcp',
		Timeout => $o{timeout} // 10) or croak "cannot connect to Redis on port $o{port}: $!";
	binmode $sock;
	my $self = bless { sock => $sock, buf => '', timeout => $o{timeout} // 10 }, $class;
	if (defined $o{password})
	{
		my $r = $self->cmd('AUTH', $o{password});
		croak 'AUTH failed: ' . $r->message if ref $r;
	}
	return $self;
}

sub cmd
{
	my ($self, @args) = @_;
	my $out = '*' . scalar(@args) . "\r\n";
	$out .= '$' . length($_) . "\r\n$_\r\n" for map { "$_" } @args;
	while (length $out)
	{
		$self->_wait('can_write', 'write');
		my $n = syswrite($self->{sock}, $out);
		next if !defined $n && $!{EINTR};
		croak "Redis write: $!" unless defined $n;
		substr($out, 0, $n, '');
	}
	return $self->_reply;
}

# Wait until the socket is ready, up to the timeout; a signal does not cut
# the wait short.
sub _wait
{
	my ($self, $how, $what) = @_;
	my $sel = IO::Select->new($self->{sock});
	my $deadline = time + $self->{timeout};
	while (1)
	{
		my $left = $deadline - time;
		croak "Redis $what timed out" if $left <= 0;
		return if $sel->$how($left);
	}
}

sub _fill
{
	my ($self) = @_;
	$self->_wait('can_read', 'read');
	my $n = sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
	return if !defined $n && $!{EINTR};
	croak "Redis read: $!" unless defined $n;
	croak 'Redis closed the connection' if $n == 0;
	return;
}

sub _line
{
	my ($self) = @_;
	my $i;
	$self->_fill while ($i = index($self->{buf}, "\r\n")) < 0;
	my $line = substr($self->{buf}, 0, $i);
	substr($self->{buf}, 0, $i + 2, '');
	return $line;
}

sub _reply
{
	my ($self) = @_;
	my $line = $self->_line;
	my ($type, $rest) = (substr($line, 0, 1), substr($line, 1));
	return $rest if $type eq '+';
	return bless { message => $rest }, 'HcReliability::Resp::Error' if $type eq '-';
	return 0 + $rest if $type eq ':';
	if ($type eq '$')
	{
		return undef if $rest < 0;
		$self->_fill while length($self->{buf}) < $rest + 2;
		my $data = substr($self->{buf}, 0, $rest);
		substr($self->{buf}, 0, $rest + 2, '');
		return $data;
	}
	if ($type eq '*')
	{
		return undef if $rest < 0;
		return [ map { $self->_reply } 1 .. $rest ];
	}
	croak "unexpected Redis reply: $line";
}

sub close
{
	my ($self) = @_;
	close $self->{sock} if $self->{sock};
	$self->{sock} = undef;
	return;
}

package HcReliability::Resp::Error;

sub message { return $_[0]->{message} }

1;
