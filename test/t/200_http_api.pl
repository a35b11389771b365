# The HTTP API (schema api) against the statements PostgREST sends.
#
# Each request is replayed over libpq (DBD::Pg, extended protocol, typed
# parameters) as PostgREST v12 and v13 send it, connected as authenticator:
#
#   BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY       (GET; POST: READ WRITE)
#   select set_config('search_path', $1, true), set_config('role', $2, true),
#          set_config('request.jwt.claims', $3, true), ...('request.method'),
#          ...('request.path'), ...('request.headers'), ...('request.cookies')
#   WITH pgrst_source AS (<call>) SELECT ... AS body, response headers/status
#   COMMIT                                                (ROLLBACK on error)
#
# <call> is, for GET, v13's named arguments each cast to the parameter's type
# ("city" := $1::text) and v12's json_to_record over the query string as a
# JSON object; POST sends the body through json_to_record in both.  The body
# is built with the media type handler of a function returning the domain
# api."application/json" ("api"."application/json"(pgrst_scalar), what
# PostgREST does for Accept: application/json) or, for Accept: */*, with the
# builtin json_agg handler.  The statement shapes follow PostgREST's
# src/PostgREST/Query/QueryBuilder.hs (callPlanToQuery, fmtArgs),
# Query/SqlFragment.hs (fromJsonBodyF, handlerF, customFuncF, sourceCTE,
# responseHeadersF, setConfigWithConstantName), Query/Statements.hs
# (prepareCall), Query/PreQuery.hs (txVarQuery), SchemaCache.hs
# (mediaHandlers) and Plan.hs (callReadPlan, negotiateContent); errors map to
# HTTP statuses as Error.hs does.
use strict;
use warnings;

use DBI;
use DBD::Pg qw(:pg_types);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('http_api', redis => $redis);

# Ten listings: ids 1-5 in Boston, 6-10 in Denver.
$node->safe_psql('postgres', q{
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
SELECT housing_cache.setup_api_roles('authenticator-test-password');
});

my $json = JSON::PP->new->canonical;

# PostgREST's connection pool: one connection as authenticator, reused by
# every request (so nothing may leak from one request to the next).
sub connect_authenticator
{
	my $dbh = DBI->connect(
		'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port,
		'authenticator', '',
		{ AutoCommit => 1, RaiseError => 0, PrintError => 0, pg_server_prepare => 1 })
	  or die 'cannot connect as authenticator: ' . DBI->errstr;
	return $dbh;
}
my $pool = connect_authenticator();

sub ident { my ($s) = @_; $s =~ s/"/""/g; return qq{"$s"}; }

# The HTTP status PostgREST answers for a SQLSTATE (Error.hs, pgErrorStatus).
sub http_status_of
{
	my ($sqlstate, $authenticated) = @_;
	return 503 if $sqlstate =~ /^(08|53)/;
	return 403 if $sqlstate =~ /^(0L|0P|28)/;
	return 409 if $sqlstate =~ /^(23503|23505|23P01)$/;
	return 405 if $sqlstate eq '25006';
	return 400 if $sqlstate eq 'P0001';
	return 404 if $sqlstate =~ /^(42883|42P01)$/;
	return $authenticated ? 403 : 401 if $sqlstate eq '42501';
	return 500 if $sqlstate =~ /^(09|25|2D|38|39|3B|40|54|55|57|58|F0|HV|P0|XX|42P17)/;
	return 400;
}

# request(%o): one HTTP request, replayed.
#   version  => 'v12' | 'v13'
#   method   => 'GET' | 'POST'
#   fn       => 'listings', ...
#   args     => [ [name, type, value], ... ]   (the query string / JSON body)
#   headers  => { 'if-none-match' => ... }     (lower-case names)
#   role     => 'web_anon' (default) | 'web_editor'
#   accept   => 'application/json' (default: the domain's handler) | '*/*'
# Returns { status, headers => {name => value}, header_list, body (decoded
# JSON, undef for none), raw_body, sqlstate, message }.
sub request
{
	my (%o) = @_;
	my $version = $o{version} // 'v13';
	my $method = $o{method} // 'GET';
	my $role = $o{role} // 'web_anon';
	my $accept = $o{accept} // 'application/json';
	my $fn = $o{fn};
	my @args = @{ $o{args} // [] };
	my $dbh = $o{dbh} // $pool;

	my %headers = (accept => $accept, host => 'localhost:3000',
		'user-agent' => 'replay', %{ $o{headers} // {} });
	if ($role ne 'web_anon')
	{
		$headers{authorization} = 'Bearer <a token whose claim role is ' . $role . '>';
	}
	my $claims = $role eq 'web_anon' ? '{"role":"web_anon"}'
	  : $json->encode({ role => $role, exp => 4102444800 });

	my $result = { sqlstate => undef };
	my $fail = sub {
		my ($what) = @_;
		$result->{sqlstate} = $dbh->state;
		($result->{message} = $dbh->errstr // '') =~ s/^ERROR:\s+//;
		$result->{message} =~ s/\n.*//s;
		$result->{failed_at} = $what;
		$dbh->do('ROLLBACK');
		$result->{status} = http_status_of($result->{sqlstate}, $role ne 'web_anon');
		$result->{body} = { code => $result->{sqlstate}, message => $result->{message},
			details => undef, hint => undef };
		return $result;
	};

	$dbh->do($method eq 'GET'
		? 'BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY'
		: 'BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE')
	  or return $fail->('begin');

	my $pre = $dbh->prepare(
		"select set_config('search_path', \$1, true), set_config('role', \$2, true), "
		  . "set_config('request.jwt.claims', \$3, true), set_config('request.method', \$4, true), "
		  . "set_config('request.path', \$5, true), set_config('request.headers', \$6, true), "
		  . "set_config('request.cookies', \$7, true)");
	$pre->bind_param($_, undef, { pg_type => PG_UNKNOWN }) for 1 .. 7;
	$pre->execute('"api", "public"', $role, $claims, $method, "/rpc/$fn",
		$json->encode(\%headers), '{}')
	  or return $fail->('set_config');

	my $qfn = '"api".' . ident($fn);
	my (@bind, $call);
	my $json_args = $method eq 'POST' || $version eq 'v12';
	if (!@args)
	{
		$call = "FROM (SELECT $qfn() pgrst_scalar) pgrst_call";
	}
	elsif ($json_args)
	{
		# v12 GET: the query string as a JSON object of strings; POST: the body.
		my %payload = map {
			$_->[0] => ($method eq 'GET' || !defined $_->[2] ? $_->[2]
				: $_->[1] =~ /int/ && $_->[2] =~ /^-?\d+$/ ? 0 + $_->[2]
				: $_->[2])
		} @args;
		@bind = ([ $json->encode(\%payload), PG_JSON ]);
		$call =
		    'FROM (SELECT $1 AS json_data) pgrst_payload, '
		  . 'LATERAL (SELECT ' . join(', ', map { ident($_->[0]) } @args)
		  . ' FROM json_to_record(pgrst_payload.json_data) AS _('
		  . join(', ', map { ident($_->[0]) . ' ' . $_->[1] } @args)
		  . ') LIMIT 1) pgrst_body , '
		  . "LATERAL (SELECT $qfn("
		  . join(', ', map { ident($_->[0]) . ' := pgrst_body.' . ident($_->[0]) } @args)
		  . ') pgrst_scalar) pgrst_call';
	}
	else
	{
		# v13 GET: each argument a parameter of type unknown, cast.
		my $i = 0;
		@bind = map { [ $_->[2], PG_UNKNOWN ] } @args;
		$call = "FROM (SELECT $qfn("
		  . join(', ', map { ident($_->[0]) . ' := $' . ++$i . '::' . $_->[1] } @args)
		  . ') pgrst_scalar) pgrst_call';
	}
	my $body = $accept eq 'application/json'
	  ? '"api"."application/json"(_postgrest_t.pgrst_scalar)'
	  : q{coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null')};
	my $main =
	    "WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar $call) "
	  . 'SELECT null::bigint AS total_result_set, 1 AS page_total, '
	  . "$body AS body, "
	  . q{nullif(current_setting('response.headers', true), '') AS response_headers, }
	  . q{nullif(current_setting('response.status', true), '') AS response_status, }
	  . q{'' AS response_inserted }
	  . 'FROM (SELECT ' . ident($fn) . '.* FROM "pgrst_source" AS ' . ident($fn)
	  . '    ) _postgrest_t';
	$result->{sql} = $main;

	my $sth = $dbh->prepare($main);
	my $n = 0;
	$sth->bind_param(++$n, undef, { pg_type => $_->[1] }) for @bind;
	$sth->execute(map { $_->[0] } @bind) or return $fail->('main query');
	my $row = $sth->fetchrow_hashref or return $fail->('fetch');
	$sth->finish;
	$dbh->do('COMMIT') or return $fail->('commit');

	$result->{status} = defined $row->{response_status} ? 0 + $row->{response_status} : 200;
	$result->{raw_body} = $row->{body};
	$result->{body} = defined $row->{body} && $row->{body} ne 'null'
	  ? decode_json($row->{body}) : undef;
	$result->{header_list} = defined $row->{response_headers}
	  ? decode_json($row->{response_headers}) : [];
	$result->{headers} = { map { %$_ } @{ $result->{header_list} } };
	return $result;
}

sub describe
{
	my ($r) = @_;
	return "status $r->{status}" . (defined $r->{sqlstate} ? " ($r->{sqlstate}: $r->{message})" : '');
}

# Every answer of a cached GET carries these headers; returns the ETag.
sub check_cache_headers
{
	my ($r, $tier, $name) = @_;
	my $h = $r->{headers};
	is_deeply([ map { keys %$_ } @{ $r->{header_list} } ],
		[ 'ETag', 'Cache-Control', 'X-Cache', 'Server-Timing', 'xkey', 'X-HC-Stamp' ],
		"$name: response.headers is an array of one-key objects in order");
	like($h->{ETag}, qr/^"[0-9a-f]{32}"$/, "$name: ETag is a quoted digest");
	like($h->{'Cache-Control'}, qr/^public, max-age=[0-5], s-maxage=\d+, stale-while-revalidate=(\d+)$/,
		"$name: Cache-Control public, max-age at most http_max_age (5), s-maxage for the edge");
	my ($smax, $swr) = $h->{'Cache-Control'} =~ /s-maxage=(\d+), stale-while-revalidate=(\d+)/;
	cmp_ok($smax // 1e9, '<=', $swr // -1, "$name: s-maxage at most the remaining TTL");
	like($h->{xkey}, qr/^k[0-9a-f]{32}( k[0-9a-f]{32})+$/, "$name: xkey: the edge keys of its tags");
	like($h->{'X-HC-Stamp'}, qr{^\d+/\d+$}, "$name: X-HC-Stamp: epoch/seq");
	is($h->{'X-Cache'}, $tier, "$name: X-Cache $tier");
	like($h->{'Server-Timing'}, qr/^cache;desc="(l1|l2|miss|not_modified)";dur=\d+\.\d{3}$/,
		"$name: Server-Timing");
	return $h->{ETag};
}

my $boston = [ [ 'city', 'text', 'Boston' ], [ 'page_size', 'integer', '3' ] ];

for my $version ('v12', 'v13')
{
	# Every answer so far is invalidated: each version starts with misses.
	$node->safe_psql('postgres', "SELECT housing_cache.invalidate('housing.listings')");
	my %get = (version => $version, method => 'GET');

	# --- a search: MISS, then L1, then 304 ----------------------------------
	my $r = request(%get, fn => 'listings', args => $boston);
	is($r->{status}, 200, "$version listings: 200") or diag describe($r);
	is($r->{body}{total}, 5, "$version listings: the five Boston listings");
	is(scalar @{ $r->{body}{items} }, 3, "$version listings: page_size 3");
	is($r->{body}{items}[0]{id}, 5, "$version listings: newest first");
	my $etag = check_cache_headers($r, 'MISS', "$version listings, first");
	my $first_body = $r->{raw_body};

	$r = request(%get, fn => 'listings', args => $boston);
	is($r->{status}, 200, "$version listings again: 200");
	is($r->{raw_body}, $first_body, "$version listings again: the same body");
	is(check_cache_headers($r, 'L1', "$version listings, second"), $etag,
		"$version listings again: the same ETag");

	$r = request(%get, fn => 'listings', args => $boston, accept => '*/*');
	is($r->{status}, 200, "$version listings, builtin json handler (Accept: */*): 200");
	is_deeply($r->{body}, decode_json($first_body), "$version listings, builtin handler: same JSON");

	$r = request(%get, fn => 'listings', args => $boston, headers => { 'if-none-match' => $etag });
	is($r->{status}, 304, "$version listings with If-None-Match: 304") or diag describe($r);
	is($r->{raw_body}, undef, "$version 304: NULL body");
	is($r->{headers}{ETag}, $etag, "$version 304: the ETag again");
	is($r->{headers}{'X-Cache'}, 'HIT', "$version 304: X-Cache HIT");
	like($r->{headers}{'Cache-Control'}, qr/^public, max-age=\d+/, "$version 304: Cache-Control");

	(my $hex = $etag) =~ s/"//g;
	$r = request(%get, fn => 'listings', args => $boston,
		headers => { 'if-none-match' => qq{"0123", W/"$hex"} });
	is($r->{status}, 304, "$version a list with the weak form of the ETag: 304");

	$r = request(%get, fn => 'listings', args => $boston,
		headers => { 'if-none-match' => '"00000000000000000000000000000000"' });
	is($r->{status}, 200, "$version another ETag: 200");
	is($r->{raw_body}, $first_body, "$version another ETag: the body");

	$r = request(%get, fn => 'listings', args => $boston);
	is($r->{status}, 200, "$version after a 304 the next request on the connection: 200");
	is($r->{raw_body}, $first_body, "$version ... with its body");

	# The key depends on the values, not on how they were spelled: page_size
	# 03 is page_size 3, one answer and one ETag.
	$r = request(%get, fn => 'listings',
		args => [ [ 'city', 'text', 'Boston' ], [ 'page_size', 'integer', '03' ] ]);
	is($r->{headers}{ETag}, $etag, "$version page_size=03 is the same answer and ETag");

	# --- a listing and city statistics ---------------------------------------
	$r = request(%get, fn => 'listing', args => [ [ 'id', 'bigint', '3' ] ]);
	is($r->{status}, 200, "$version listing 3: 200") or diag describe($r);
	is($r->{body}{id}, 3, "$version listing 3: its columns");
	is($r->{body}{description}, '', "$version listing 3: every column, description too");
	my $listing_etag = check_cache_headers($r, 'MISS', "$version listing 3");
	$r = request(%get, fn => 'listing', args => [ [ 'id', 'bigint', '3' ] ],
		headers => { 'if-none-match' => $listing_etag });
	is($r->{status}, 304, "$version listing 3 with its ETag: 304");
	is($r->{raw_body}, undef, "$version listing 3, 304: no body");

	$r = request(%get, fn => 'city_stats', args => [ [ 'city', 'text', 'Denver' ] ]);
	is($r->{status}, 200, "$version city_stats: 200");
	is($r->{body}{active_count}, 5, "$version city_stats: Denver's five");
	my $stats_etag = check_cache_headers($r, 'MISS', "$version city_stats");
	$r = request(%get, fn => 'city_stats', args => [ [ 'city', 'text', 'Denver' ] ],
		headers => { 'if-none-match' => $stats_etag });
	is($r->{status}, 304, "$version city_stats with its ETag: 304");

	# --- unknown listing: 404 with a JSON body ------------------------------
	$r = request(%get, fn => 'listing', args => [ [ 'id', 'bigint', '424242' ] ]);
	is($r->{status}, 404, "$version unknown listing: 404") or diag describe($r);
	is_deeply($r->{body},
		{ code => 'HC404', message => 'listing 424242 not found', details => undef, hint => undef },
		"$version unknown listing: PostgREST-style error body");
	is($r->{headers}{ETag}, undef, "$version unknown listing: no ETag");
	$r = request(%get, fn => 'listing', args => [ [ 'id', 'bigint', '424242' ] ]);
	is($r->{status}, 404, "$version unknown listing, cached: still 404");
	is($r->{headers}{'X-Cache'}, 'L1', "$version unknown listing, cached: from L1");

	# --- an update as web_editor --------------------------------------------
	my $new_price = $version eq 'v12' ? 11100000 : 22200000;
	$r = request(version => $version, method => 'POST', role => 'web_editor',
		fn => 'update_listing',
		args => [ [ 'id', 'bigint', '3' ], [ 'price_cents', 'bigint', $new_price ] ]);
	is($r->{status}, 200, "$version update_listing as web_editor: 200") or diag describe($r);
	is($r->{body}{price_cents}, $new_price, "$version update_listing: returns the new price");
	is($r->{body}{title}, 'Listing 3', "$version update_listing: other fields unchanged");
	is($r->{headers}{'Cache-Control'}, 'no-store', "$version update_listing: not cacheable");

	$r = request(%get, fn => 'listings', args => $boston);
	is($r->{status}, 200, "$version search after the update: 200");
	# X-Cache is where the id list came from: a newest-first search reads
	# no price, so its list is still cached and listing 3's card is computed
	my $etag2 = check_cache_headers($r, 'L1', "$version search after the update (id list cached)");
	isnt($etag2, $etag, "$version search after the update: a new ETag");
	my ($item3) = grep { $_->{id} == 3 } @{ $r->{body}{items} };
	is($item3->{price_cents}, $new_price, "$version search after the update: the new price");

	$r = request(%get, fn => 'listings', args => $boston, headers => { 'if-none-match' => $etag });
	is($r->{status}, 200, "$version the old ETag after the update: 200, not 304");
	is($r->{headers}{ETag}, $etag2, "$version ... with the new ETag");

	$r = request(%get, fn => 'listing', args => [ [ 'id', 'bigint', '3' ] ],
		headers => { 'if-none-match' => $listing_etag });
	is($r->{status}, 200, "$version listing 3 with its old ETag after the update: 200");
	is($r->{body}{price_cents}, $new_price, "$version listing 3: the new price");

	$r = request(%get, fn => 'city_stats', args => [ [ 'city', 'text', 'Denver' ] ],
		headers => { 'if-none-match' => $stats_etag });
	is($r->{status}, 304, "$version Denver's statistics are still current after a Boston update: 304");

	# --- who may update ------------------------------------------------------
	$r = request(version => $version, method => 'POST', fn => 'update_listing',
		args => [ [ 'id', 'bigint', '3' ], [ 'price_cents', 'bigint', 1 ] ]);
	is($r->{sqlstate}, '42501', "$version update_listing as web_anon: permission denied");
	is($r->{status}, 401, "$version ... which is 401 for the anonymous role");
	like($r->{message}, qr/permission denied for function update_listing/, "$version ... for the function");

	$r = request(version => $version, method => 'GET', role => 'web_editor',
		fn => 'update_listing',
		args => [ [ 'id', 'bigint', '3' ], [ 'price_cents', 'bigint', '1' ] ]);
	is($r->{sqlstate}, '25006', "$version update_listing with GET (read-only transaction): 25006");
	is($r->{status}, 405, "$version ... 405");

	my @bad_updates = (
		[ [ [ 'id', 'bigint', '3' ], [ 'price_cents', 'bigint', -5 ] ], '22023', qr/price_cents/ ],
		[ [ [ 'id', 'bigint', '3' ], [ 'status', 'text', 'gone' ] ], '22023', qr/status/ ],
		[ [ [ 'id', 'bigint', '3' ], [ 'title', 'text', ' ' ] ], '22023', qr/title/ ],
		[ [ [ 'id', 'bigint', 'x' ] ], '22P02', qr/bigint/ ]);
	for my $b (@bad_updates)
	{
		my ($args, $state, $msg) = @$b;
		my $what = join('&', map { "$_->[0]=$_->[2]" } @$args);
		$r = request(version => $version, method => 'POST', role => 'web_editor',
			fn => 'update_listing', args => $args);
		is($r->{sqlstate}, $state, "$version update_listing $what: $state");
		is($r->{status}, 400, "$version update_listing $what: 400");
		like($r->{message}, $msg, "$version update_listing $what: the message names it");
	}
	$r = request(version => $version, method => 'POST', role => 'web_editor',
		fn => 'update_listing',
		args => [ [ 'id', 'bigint', '434343' ], [ 'status', 'text', 'sold' ] ]);
	is($r->{status}, 404, "$version update_listing of an unknown listing: 404");
	is($r->{body}{code}, 'HC404', "$version ... with the HC404 body");

	# --- bad parameters: 4xx, never 500 --------------------------------------
	my @bad = (
		[ 'listings', [ [ 'page', 'integer', '-1' ] ], '22023', qr/page/ ],
		[ 'listings', [ [ 'page_size', 'integer', '1000' ] ], '22023', qr/page_size/ ],
		[ 'listings', [ [ 'sort', 'text', 'bogus' ] ], '22023', qr/sort/ ],
		[ 'listings', [ [ 'min_price_cents', 'bigint', '-1' ] ], '22023', qr/min_price_cents/ ],
		[ 'listings', [ [ 'page', 'integer', 'abc' ] ], '22P02', qr/integer/ ],
		[ 'listings', [ [ 'page', 'integer', '99999999999' ] ], '22003', qr/out of range/ ],
		[ 'listing', [ [ 'id', 'bigint', 'abc' ] ], '22P02', qr/bigint/ ],
		[ 'listing', [ [ 'id', 'bigint', '' ] ], '22P02', qr/bigint/ ],
		[ 'city_stats', [ [ 'city', 'text', 'x' x 101 ] ], '22023', qr/city/ ]);
	for my $b (@bad)
	{
		my ($fn, $args, $state, $msg) = @$b;
		my $what = "$fn?" . join('&', map { "$_->[0]=" . substr($_->[2], 0, 12) } @$args);
		$r = request(%get, fn => $fn, args => $args, headers => { 'if-none-match' => $etag2 });
		is($r->{sqlstate}, $state, "$version $what: SQLSTATE $state");
		is($r->{status}, 400, "$version $what: 400");
		like($r->{message}, $msg, "$version $what: the message names the problem");
	}
	# A failed request left no If-None-Match behind for the connection's next one.
	$r = request(%get, fn => 'listings', args => $boston);
	is($r->{status}, 200, "$version after the failed requests: 200");
	is($r->{headers}{ETag}, $etag2, "$version ... the current ETag");

	# --- cache_stats ---------------------------------------------------------
	$r = request(%get, fn => 'cache_stats');
	is($r->{status}, 200, "$version cache_stats: 200");
	ok($r->{body}{l1_hits} > 0, "$version cache_stats: counters as a JSON object");
	ok(exists $r->{body}{hit_ratio}, "$version cache_stats: the whole stats row");
	is_deeply($r->{header_list}, [ { 'Cache-Control' => 'no-store' } ],
		"$version cache_stats: Cache-Control no-store only");
}

# --- the cache bypassed (X-Cache L2 is in 201_http_roles.pl, with L1 off) ---
{
	my $dbh = connect_authenticator();
	$dbh->do('SET housing_cache.enabled = off') or die $dbh->errstr;
	my $r = request(dbh => $dbh, fn => 'listings', args => $boston);
	is($r->{status}, 200, 'cache disabled: 200');
	is_deeply($r->{header_list},
		[ { 'Cache-Control' => 'no-cache' }, { 'X-Cache' => 'BYPASS' },
		  { 'Server-Timing' => $r->{headers}{'Server-Timing'} } ],
		'cache disabled: no ETag, Cache-Control no-cache, X-Cache BYPASS');
	like($r->{headers}{'Server-Timing'}, qr/^cache;desc="bypass";dur=/, '... and Server-Timing');
	$dbh->disconnect;
}

# housing_cache.http_max_age bounds max-age.
$node->safe_psql('postgres', 'ALTER SYSTEM SET housing_cache.http_max_age = 0; SELECT pg_reload_conf();');
{
	my $dbh = connect_authenticator();
	my $r = request(dbh => $dbh, fn => 'listings', args => $boston);
	like($r->{headers}{'Cache-Control'}, qr/^public, max-age=0, /, 'http_max_age 0: max-age=0');
	$dbh->disconnect;
}
$node->safe_psql('postgres', 'ALTER SYSTEM RESET housing_cache.http_max_age; SELECT pg_reload_conf();');

# Plain SQL callers (no request.headers) get the same answers.
is($node->safe_psql('postgres', q{SELECT (api.listing(3)::json)->>'id'}), '3',
	'api.listing works without request.headers');
is($node->safe_psql('postgres',
		q{SELECT set_config('request.headers', 'not json', false); SELECT api.city_stats('Boston') IS NOT NULL}),
	"not json\nt", 'an unreadable request.headers is ignored');

$pool->disconnect;
$node->stop;
$redis->stop;

done_testing();
