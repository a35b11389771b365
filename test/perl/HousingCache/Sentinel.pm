=pod

=head1 NAME

HousingCache::Sentinel - private Redis Sentinels for one TAP test

=head1 SYNOPSIS

  use HousingCache::Redis;
  use HousingCache::Sentinel;

  my $master  = HousingCache::Redis->new(name => 'a');
  my $replica = HousingCache::Redis->new(name => 'b',
      args => [ '--replicaof', '127.0.0.1', $master->port ]);
  my @sentinels = HousingCache::Sentinel->group(3, master => $master,
      quorum => 2, down_after_ms => 1000, failover_timeout_ms => 3000);
  HousingCache::Sentinel->wait_ready(\@sentinels, replicas => 1);

  $sentinels[0]->master_addr;     # '127.0.0.1:PORT', as the sentinel says
  $sentinels[0]->master_info;     # SENTINEL master NAME, as a hash
  $sentinels[0]->cli('SENTINEL', 'failover', 'mymaster');
  HousingCache::Sentinel->wait_for_master(\@sentinels, '127.0.0.1:PORT');
  $_->stop for @sentinels;        # and ->start: they keep what they learned

  # the line for postgresql.conf
  HousingCache::Sentinel->setting(@sentinels);   # '127.0.0.1:P1,127.0.0.1:P2,...'

=head1 DESCRIPTION

A HousingCache::Redis that runs C<redis-sentinel> (Debian's package
redis-sentinel) on a free loopback port, with the same life cycle: it is
stopped when its object goes away, at the end of the test (even when the
test dies), and on SIGINT/SIGTERM; its log goes to the TAP log directory
(C<..._redis_sentinelN_PORT.log>).

Its configuration file is written in its temporary directory at the first
start and kept afterwards: a sentinel rewrites it with what it learns (the
current master, its replicas, the other sentinels), so a sentinel that is
stopped and started again knows where the master went.

Options of C<new> (and C<group>):

=over

=item master => $redis

The HousingCache::Redis it monitors at first (required); its password, if
any, is given to the sentinel (C<sentinel auth-pass>).

=item master_name => 'mymaster'

=item quorum => 2, down_after_ms => 1000, failover_timeout_ms => 3000

=item password => 'pw'

The sentinel's own password (C<requirepass>); C<cli> then authenticates.
All sentinels of a group must share it: they use it with each other.

=back

=cut

package HousingCache::Sentinel;

use strict;
use warnings;

use Carp;
use Time::HiRes qw(usleep time);

use HousingCache::Redis;
use parent -norequire, 'HousingCache::Redis';

sub _configure
{
    my ($self, %opts) = @_;
    croak 'HousingCache::Sentinel->new: master is required' unless $opts{master};
    $self->{sentinel} = {
        master_host => '127.0.0.1',
        master_port => $opts{master}->port,
        master_password => $opts{master}->password,
        master_name => $opts{master_name} // 'mymaster',
        quorum => $opts{quorum} // 2,
        down_after_ms => $opts{down_after_ms} // 1000,
        failover_timeout_ms => $opts{failover_timeout_ms} // 3000,
    };
    $self->{name} //= 'sentinel';
    return;
}

# A double-quoted word of redis.conf.
sub _quote
{
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    return qq{"$s"};
}

sub _command
{
    my ($self) = @_;
    my $conf = "$self->{dir}/sentinel.conf";
    my $s = $self->{sentinel};

    # Written for a new port (new() may retry with another); kept across
    # restarts otherwise.
    if (!-e $conf || ($self->{conf_port} // 0) != $self->{port})
    {
        my $name = $s->{master_name};
        open my $fh, '>', $conf or croak "$conf: $!";
        print $fh join("\n",
            "port $self->{port}",
            'bind 127.0.0.1',
            'daemonize no',
            'pidfile ' . _quote("$self->{dir}/redis.pid"),
            'logfile ' . _quote($self->logfile),
            'dir ' . _quote($self->{dir}),
            (defined $self->{password} ? ('requirepass ' . _quote($self->{password})) : ()),
            "sentinel monitor $name $s->{master_host} $s->{master_port} $s->{quorum}",
            "sentinel down-after-milliseconds $name $s->{down_after_ms}",
            "sentinel failover-timeout $name $s->{failover_timeout_ms}",
            "sentinel parallel-syncs $name 1",
            (defined $s->{master_password}
                ? ("sentinel auth-pass $name " . _quote($s->{master_password})) : ()),
            ''), "\n";
        close $fh or croak "$conf: $!";
        $self->{conf_port} = $self->{port};
    }
    return ('redis-sentinel', $conf);
}

=pod

=head1 METHODS

=over

=item HousingCache::Sentinel->group($n, %opts)

Start C<$n> sentinels with the same options (named sentinel1 ..
sentinelN); returns them.

=cut

sub group
{
    my ($class, $n, %opts) = @_;
    return map { $class->new(%opts, name => "sentinel$_") } 1 .. $n;
}

=pod

=item HousingCache::Sentinel->setting(@sentinels)

Their addresses as housing_cache.redis_sentinels takes them.

=cut

sub setting
{
    my ($class, @sentinels) = @_;
    return join(',', map { '127.0.0.1:' . $_->port } @sentinels);
}

=pod

=item $sentinel->master_name

=cut

sub master_name { return $_[0]->{sentinel}{master_name} }

=pod

=item $sentinel->master_addr

C<host:port> of the master, as this sentinel names it now
(C<SENTINEL get-master-addr-by-name>); undef if it does not answer.

=cut

sub master_addr
{
    my ($self) = @_;
    return undef unless $self->is_running;
    my @lines = split /\n/, $self->cli('SENTINEL', 'get-master-addr-by-name', $self->master_name);
    return undef unless @lines == 2 && $lines[1] =~ /^\d+$/;
    return "$lines[0]:$lines[1]";
}

=pod

=item $sentinel->master_info

C<SENTINEL master NAME> as a hash (C<num-slaves>,
C<num-other-sentinels>, C<flags>, ...); empty if it does not answer.

=cut

sub master_info
{
    my ($self) = @_;
    return {} unless $self->is_running;
    my @lines = split /\n/, $self->cli('SENTINEL', 'master', $self->master_name);
    return {} if @lines % 2;
    return {@lines};
}

=pod

=item $sentinel->replicas_up

How many replicas of the master this sentinel sees up and linked to it
(C<SENTINEL replicas NAME>: flags C<slave>, master link ok).

=cut

sub replicas_up
{
    my ($self) = @_;
    return 0 unless $self->is_running;
    # redis-cli prints the nested reply flat: name, value, name, value, ...
    # for one replica after the other, each starting with "name"
    my @lines = split /\n/, $self->cli('SENTINEL', 'replicas', $self->master_name);
    my ($up, %r) = (0);
    my $count = sub { $up++ if ($r{flags} // '') eq 'slave' && ($r{'master-link-status'} // '') eq 'ok' };
    while (@lines >= 2)
    {
        my ($k, $v) = splice(@lines, 0, 2);
        if ($k eq 'name' && %r) { $count->(); %r = () }
        $r{$k} = $v;
    }
    $count->() if %r;
    return $up;
}

=pod

=item HousingCache::Sentinel->wait_ready(\@sentinels, replicas => 1, timeout => 60)

Wait until every sentinel knows the other sentinels, sees the master up
and C<replicas> replicas up and linked to it (a failover needs all that);
dies after C<timeout> seconds.

=cut

sub wait_ready
{
    my ($class, $sentinels, %opts) = @_;
    my $replicas = $opts{replicas} // 1;
    my $deadline = time + ($opts{timeout} // 60);
    my $others = @$sentinels - 1;
    while (time < $deadline)
    {
        my $ready = 1;
        for my $s (@$sentinels)
        {
            my $info = $s->master_info;
            $ready = 0
              unless ($info->{'num-other-sentinels'} // -1) >= $others
              && ($info->{'num-slaves'} // -1) >= $replicas
              && ($info->{flags} // '') eq 'master'
              && $s->replicas_up >= $replicas;
        }
        return 1 if $ready;
        usleep(100_000);
    }
    croak 'the sentinels did not get ready: '
      . join('; ', map { join(',', %{ $_->master_info }) } @$sentinels);
}

=pod

=item HousingCache::Sentinel->wait_for_master(\@sentinels, $addr, all => 1, timeout => 60)

Wait until a sentinel (with C<all>, every running sentinel) names C<$addr>
as the master; returns the time waited, dies after C<timeout> seconds.

=cut

sub wait_for_master
{
    my ($class, $sentinels, $addr, %opts) = @_;
    my $t0 = time;
    my $deadline = $t0 + ($opts{timeout} // 60);
    while (time < $deadline)
    {
        my @running = grep { $_->is_running } @$sentinels;
        my @named = grep { ($_->master_addr // '') eq $addr } @running;
        return time - $t0 if @named && (!$opts{all} || @named == @running);
        usleep(50_000);
    }
    croak "the sentinels did not name $addr as the master within "
      . ($opts{timeout} // 60) . ' s: '
      . join(', ', map { $_->master_addr // 'none' } @$sentinels);
}

=pod

=back

=cut

1;
