=pod

=head1 NAME

HousingCache::Test - PostgreSQL nodes with housing_cache, for TAP tests

=head1 SYNOPSIS

  use PostgreSQL::Test::Utils;
  use Test::More;
  use HousingCache::Redis;
  use HousingCache::Test;

  my $redis = HousingCache::Redis->new;
  my $node  = new_node('main', redis => $redis,
                       conf => "housing_cache.redis_command_timeout_ms = 200");

  my $before = stat($node, 'some_counter');    # a column of housing_cache.stats

=head1 DESCRIPTION

Exports C<new_node> and C<stat> by default.  C<stat> shadows Perl's builtin
of the same name in the test file; use C<CORE::stat> for files there.

=cut

package HousingCache::Test;

use strict;
use warnings;

use Carp;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(new_node stat);
our @EXPORT_OK = qw(new_node stat);

=pod

=head1 FUNCTIONS

=over

=item new_node($name, %opts)

Create a PostgreSQL::Test::Cluster node, initialize it, preload
housing_cache pointed at Redis on 127.0.0.1, start it, run
C<CREATE EXTENSION housing_cache> in the C<postgres> database, and return
the node.  Options:

=over

=item redis => $redis

A HousingCache::Redis whose port (and password, if it has one) the node
uses.

=item redis_port => N

A port to use instead (e.g. one where nothing listens).  Without C<redis>
or C<redis_port>, the extension's default port is left in place.

=item conf => "lines"

Appended to postgresql.conf after the settings above, so it can override
them (e.g. C<shared_preload_libraries = ''>).

=item create_extension => 0

Do not run C<CREATE EXTENSION>.

=item start => 0

Only initialize and configure; the test starts the node (implies no
C<CREATE EXTENSION>).

=back

=cut

sub new_node
{
    my ($name, %opts) = @_;
    croak 'new_node: a node name is required' unless defined $name;

    my $port =
        defined $opts{redis_port} ? $opts{redis_port}
      : defined $opts{redis} ? $opts{redis}->port
      : undef;

    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;

    my $conf = "shared_preload_libraries = 'housing_cache'\n"
      . "housing_cache.redis_host = '127.0.0.1'\n";
    $conf .= "housing_cache.redis_port = $port\n" if defined $port;
    if (defined $opts{redis} && defined $opts{redis}->password)
    {
        # postgresql.conf quoting: backslash escapes, '' is a quote
        (my $pw = $opts{redis}->password) =~ s/\\/\\\\/g;
        $pw =~ s/'/''/g;
        $conf .= "housing_cache.redis_password = '$pw'\n";
    }
    $conf .= "$opts{conf}\n" if defined $opts{conf};
    $node->append_conf('postgresql.conf', $conf);

    return $node if defined $opts{start} && !$opts{start};
    $node->start;

    $node->safe_psql('postgres', 'CREATE EXTENSION housing_cache')
      unless defined $opts{create_extension} && !$opts{create_extension};

    return $node;
}

=pod

=item stat($node, $column, [$dbname])

The integer value of C<SELECT $column FROM housing_cache.stats>, queried in
C<$dbname> (default C<postgres>).  Dies on a non-integer or missing value.

=back

=cut

sub stat    ## no critic (ProhibitBuiltinHomonyms)
{
    my ($node, $column, $dbname) = @_;
    croak 'stat: usage stat($node, $column)' unless defined $node && defined $column;
    croak "stat: bad column name '$column'" unless $column =~ /^[a-z_][a-z0-9_]*$/;

    my $value = $node->safe_psql($dbname // 'postgres',
        "SELECT $column FROM housing_cache.stats");
    croak "stat: housing_cache.stats.$column is not an integer: '$value'"
      unless $value =~ /^-?\d+$/;
    return 0 + $value;
}

1;
