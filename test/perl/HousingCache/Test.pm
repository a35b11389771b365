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

our @EXPORT = qw(new_node new_standby wait_for_replay stat ten_listings_sql cached_call channel_messages);
our @EXPORT_OK = @EXPORT;

=pod

=head1 FUNCTIONS

=over

=item new_node($name, %opts)

Create a PostgreSQL::Test::Cluster node, initialize it, preload
housing_cache pointed at Redis on 127.0.0.1, start it, run
C<CREATE EXTENSION housing_portal CASCADE> (the engine and the housing
portal on it) in the C<postgres> database, and return the node.  Options:

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

=item create_extension => 'housing_cache'

Install the engine alone.

=item start => 0

Only initialize and configure; the test starts the node (implies no
C<CREATE EXTENSION>).

=item allows_streaming => 1

Initialize it for streaming replication (wal_level replica, WAL senders),
so that L<new_standby> can make standbys of it.

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
    $node->init($opts{allows_streaming} ? (allows_streaming => 1) : ());

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

    my $ext = $opts{create_extension} // 'housing_portal';
    $node->safe_psql('postgres', "CREATE EXTENSION $ext CASCADE") if $ext;

    return $node;
}

=pod

=item new_standby($primary, $name, %opts)

A streaming hot standby of C<$primary> (made with C<allows_streaming>),
from a new base backup: it has the primary's configuration, housing_cache
preloaded and pointed at the same Redis included.  C<conf> is appended to
its postgresql.conf; C<start =E<gt> 0> leaves it stopped.

=cut

my $backups = 0;

sub new_standby
{
    my ($primary, $name, %opts) = @_;
    croak 'new_standby: a primary and a name are required' unless $primary && $name;
    my $backup = 'b' . ++$backups;
    $primary->backup($backup);
    my $standby = PostgreSQL::Test::Cluster->new($name);
    $standby->init_from_backup($primary, $backup, has_streaming => 1);
    $standby->append_conf('postgresql.conf', "$opts{conf}\n") if defined $opts{conf};
    $standby->start unless defined $opts{start} && !$opts{start};
    return $standby;
}

=pod

=item wait_for_replay($primary, $standby)

Wait until C<$standby> has replayed everything C<$primary> had written when
called (its current WAL insert position).

=cut

sub wait_for_replay
{
    my ($primary, $standby) = @_;
    my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
    $standby->poll_query_until('postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")
      or croak "wait_for_replay: $standby->{_name} did not replay up to $lsn";
    return $lsn;
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

=pod

=over

=item ten_listings_sql()

SQL inserting ten fixed listings: ids 1-5 in Boston, 6-10 in Denver, prices
31M..40M cents, nothing depending on now(); the id sequence is set past them.

=cut

sub ten_listings_sql
{
    return q{
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
     area_sqm, lat, lon, created_at, updated_at)
SELECT i, 'Listing ' || i,
       CASE WHEN i <= 5 THEN 'Boston' ELSE 'Denver' END,
       'Center', 30000000 + i * 1000000, 1 + i % 3, 1.5, 50 + i,
       40 + i / 100.0, -71 - i / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, 10) AS i;
SELECT setval('housing.listings_id_seq', 10);
};
}

=pod

=item cached_call($run, $call)

Make one cached call and report how it was served.  C<$run> is a code
reference that runs SQL text and returns its output (e.g.
C<sub { $node->safe_psql('postgres', $_[0]) }> or a BackgroundPsql
session's C<query_safe>).  Returns a hash: C<json> (the decoded answer,
undef for SQL NULL), C<tier>, C<key>, C<reason>, C<fragment_hits> and
C<fragment_fills> from C<housing_cache.last_lookup()>.

=back

=cut

sub cached_call
{
    my ($run, $call) = @_;
    my $out = $run->("SELECT ($call)::jsonb::text;\n"
          # by name from the row: definitions of earlier versions lack some columns
          . "SELECT tier || '|' || coalesce(key, '') || '|' "
          . "|| coalesce(to_jsonb(l) ->> 'fragment_hits', '0') || '|' "
          . "|| coalesce(to_jsonb(l) ->> 'fragment_fills', '0') || '|' || coalesce(bypass_reason, '') "
          . "FROM housing_cache.last_lookup() l;");
    my @lines = split /\n/, $out, -1;
    croak "cached_call: unexpected output for $call: '$out'" unless @lines == 2;
    my ($tier, $key, $fragment_hits, $fragment_fills, $reason) = split /\|/, $lines[1], 5;
    require JSON::PP;
    return {
        json => $lines[0] eq '' ? undef : JSON::PP::decode_json($lines[0]),
        tier => $tier,
        key => $key,
        reason => $reason,
        fragment_hits => $fragment_hits,
        fragment_fills => $fragment_fills,
    };
}

=over

=item channel_messages($payload)

The messages of one payload on the invalidation channel, in order: a
payload is one JSON object, or a JSON array of them (the publisher sends a
burst of commits as one PUBLISH).  Dies when the payload is not JSON.

=back

=cut

sub channel_messages
{
    my ($payload) = @_;
    require JSON::PP;
    my $v = JSON::PP->new->utf8->decode($payload);
    return ref $v eq 'ARRAY' ? @$v : ($v);
}

1;
