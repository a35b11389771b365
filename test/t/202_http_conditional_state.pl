# housing_cache.if_none_match() is for the next cached call of the session
# only.  PostgREST reuses sessions for many clients' requests, so what one
# request set must never reach another's call.  The api functions always set
# it (NULL when the request has no If-None-Match); these tests are about the
# other callers of the same session.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('http_conditional', redis => $redis);
$node->safe_psql('postgres', 'SELECT housing_cache.generate_listings(100)');

# The entity tag of one search, computed now.
my ($etag) = split /\|/, $node->safe_psql('postgres', q{
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NOT NULL;
SELECT etag || '|' || ttl_remaining_s FROM housing_cache.last_lookup();
}) =~ s/^t\n//r;
like($etag, qr/^"[0-9a-f]{32}"$/, 'a search has an entity tag');

# Its own call, in the same transaction: not modified.
is($node->safe_psql('postgres', qq{
BEGIN;
SELECT housing_cache.if_none_match('$etag');
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
SELECT tier FROM housing_cache.last_lookup();
COMMIT;
}), "\nt\nnot_modified", 'if_none_match then the call: NULL, not_modified');

# Consumed by that call: the next one answers.
is($node->safe_psql('postgres', qq{
BEGIN;
SELECT housing_cache.if_none_match('$etag');
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
COMMIT;
}), "\nt\nf", 'a second call is not conditional');

# It does not outlive its transaction.
is($node->safe_psql('postgres', qq{
SELECT housing_cache.if_none_match('$etag');
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
}), "\nf", 'a call in the next transaction is not conditional');

my ($rc, $out, $err) = $node->psql('postgres', qq{
SELECT housing_cache.if_none_match('$etag');
SELECT housing_cache.search_listings('Boston', page => -1);
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
}, on_error_stop => 0);
like($err, qr/page must be between/, 'the failed call failed');

# The call that failed its argument checks consumed it; so does a call with
# a NULL argument.
{
	is($out, "\nf", 'after a failed call, the next call (next transaction) answers');

	is($node->safe_psql('postgres', qq{
BEGIN;
SELECT housing_cache.if_none_match('$etag');
SELECT housing_cache.get_listing(NULL);
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
COMMIT;
}), "\n\nf", 'after a call with a NULL argument, the next call answers');
}

# A not-modified answer reports what is left of the cached answer's TTL.
{
	sleep 2;
	my ($hit, $hit_left, $set, $nm, $nm_left) = split /\n/, $node->safe_psql('postgres', qq{
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
SELECT ttl_remaining_s FROM housing_cache.last_lookup();
BEGIN;
SELECT housing_cache.if_none_match('$etag');
SELECT housing_cache.search_listings('Boston', page_size => 2) IS NULL;
SELECT ttl_remaining_s FROM housing_cache.last_lookup();
COMMIT;
}), -1;
	ok(abs($nm_left - $hit_left) <= 1,
		"ttl_remaining_s of not_modified ($nm_left) is what a hit reports ($hit_left)");
}

$node->stop;
$redis->stop;

done_testing();
