# hc_http: the api schema through HTTP, as PostgREST v13 serves it.
#
# Cache headers and conditional requests, an editor's update seen by the
# next read, anonymous writes refused, JWT checks, malformed input as 400,
# unknown ids, functions and arguments as 404 -- and never a 500.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use JSON::PP;
use MIME::Base64 ();
use Test::More;

use HcHttp;

my $stack = HcHttp->new(name => 'http_api', listings => 500);
my $srv = $stack->start_server('--pool', '4');
my $node = $stack->node;

my @statuses;    # every status seen, to check that none is a 500
sub req
{
	my $r = $srv->request(@_);
	push @statuses, [ "$_[0] $_[1]", $r->{status} ];
	return $r;
}

sub is_json_error
{
	my ($r, $status, $code, $name) = @_;
	is($r->{status}, $status, "$name: status $status");
	like($r->{headers}{'content-type'} // '', qr{^application/json}, "$name: JSON content type");
	ok(ref $r->{json} eq 'HASH'
		  && exists $r->{json}{message}
		  && exists $r->{json}{details}
		  && exists $r->{json}{hint}, "$name: body has code, message, details, hint")
	  or diag("body: $r->{body}");
	is($r->{json}{code}, $code, "$name: code $code") if defined $code;
}

my $boston = $node->safe_psql('postgres',
	"SELECT min(id) FROM housing.listings WHERE city = 'Boston' AND status = 'active'");
my $search = '/api/rpc/listings?city=Boston&page_size=5&sort=price_asc';

# --- 200 with ETag and Cache-Control; L1 on the second call; 304 ----------

my $r = req('GET', $search);
is($r->{status}, 200, 'search: 200');
is($r->{headers}{'content-type'}, 'application/json; charset=utf-8', 'search: Content-Type');
like($r->{headers}{etag} // '', qr/^"[0-9a-f]{32,}"$/, 'search: strong ETag');
like($r->{headers}{'cache-control'} // '',
	qr/^public, max-age=\d+, s-maxage=\d+, stale-while-revalidate=\d+$/, 'search: Cache-Control, with s-maxage for the edge');
is($r->{headers}{'x-cache'}, 'MISS', 'search: first call computed');
like($r->{headers}{'server-timing'} // '', qr/^cache;desc="miss";dur=[\d.]+$/, 'search: Server-Timing');
like($r->{headers}{xkey} // '', qr/^k[0-9a-f]{32}( k[0-9a-f]{32})+$/, 'search: xkey, the edge keys of its tags');
like($r->{headers}{'x-hc-stamp'} // '', qr{^\d+/\d+$}, 'search: X-HC-Stamp');
is(ref $r->{json}, 'HASH', 'search: JSON body');
is(scalar @{ $r->{json}{items} }, 5, 'search: 5 items');
is($r->{json}{items}[0]{city}, 'Boston', 'search: Boston');
my $etag = $r->{headers}{etag};
my $body = $r->{body};

$r = req('GET', $search);
is($r->{status}, 200, 'search again: 200');
is($r->{headers}{'x-cache'}, 'L1', 'search again: L1 hit');
is($r->{headers}{etag}, $etag, 'search again: same ETag');
is($r->{body}, $body, 'search again: same body');

$r = req('GET', $search, headers => ["If-None-Match: $etag"]);
is($r->{status}, 304, 'If-None-Match: 304');
is($r->{body}, '', '304: empty body');
is($r->{headers}{etag}, $etag, '304: same ETag');
like($r->{headers}{'cache-control'} // '', qr/^public, max-age=\d+/, '304: Cache-Control');

$r = req('GET', $search, headers => ["If-None-Match: \"0000\", W/$etag"]);
is($r->{status}, 304, 'If-None-Match list with a weak tag: 304');

$r = req('GET', $search, headers => ['If-None-Match: "00000000000000000000000000000000"']);
is($r->{status}, 200, 'other ETag: 200');
is($r->{body}, $body, 'other ETag: the body');

$r = req('HEAD', $search);
is($r->{status}, 200, 'HEAD: 200');
is($r->{headers}{etag}, $etag, 'HEAD: ETag');

# --- the editor's update is seen by the next read ---------------------------

my $item = "/api/rpc/listing?id=$boston";
$r = req('GET', $item);
is($r->{status}, 200, 'listing: 200');
is($r->{json}{id}, $boston, 'listing: the listing');
my $item_etag = $r->{headers}{etag};
like($item_etag // '', qr/^"[0-9a-f]+"$/, 'listing: ETag');
$r = req('GET', $item, headers => ["If-None-Match: $item_etag"]);
is($r->{status}, 304, 'listing: 304 while unchanged');

my $editor = $srv->token('web_editor');
$r = req('POST', '/api/rpc/update_listing', token => $editor,
	json => { id => 0 + $boston, title => "Renovated loft \x{e9}", price_cents => 12345600 });
is($r->{status}, 200, 'editor update: 200') or diag($r->{body});
is($r->{json}{title}, "Renovated loft \x{e9}", 'editor update: returns the new title');
is($r->{json}{price_cents}, 12345600, 'editor update: returns the new price');
is($r->{headers}{'cache-control'}, 'no-store', 'editor update: Cache-Control no-store');

$r = req('GET', $item, headers => ["If-None-Match: $item_etag"]);
is($r->{status}, 200, 'listing after the update: 200, not 304');
isnt($r->{headers}{etag}, $item_etag, 'listing after the update: new ETag');
is($r->{json}{title}, "Renovated loft \x{e9}", 'listing after the update: new data');
is($r->{json}{price_cents}, 12345600, 'listing after the update: new price');

$r = req('GET', $search, headers => ["If-None-Match: $etag"]);
is($r->{status}, 200, 'search after the update: 200, not 304');
isnt($r->{headers}{etag}, $etag, 'search after the update: new ETag');

# form-encoded body, as PostgREST accepts too
$r = req('POST', '/api/rpc/update_listing', token => $editor,
	body => "id=$boston&description=From+a+form",
	headers => ['Content-Type: application/x-www-form-urlencoded']);
is($r->{status}, 200, 'form-encoded update: 200') or diag($r->{body});
is($r->{json}{description}, 'From a form', 'form-encoded update: applied');

# --- writes by anyone else are refused ---------------------------------------

my $before = $node->safe_psql('postgres', "SELECT title FROM housing.listings WHERE id = $boston");
$r = req('POST', '/api/rpc/update_listing', json => { id => 0 + $boston, title => 'anon' });
is_json_error($r, 401, '42501', 'anonymous write');
$r = req('POST', '/api/rpc/update_listing', token => $srv->token('web_anon'),
	json => { id => 0 + $boston, title => 'anon' });
is_json_error($r, 401, '42501', 'write with a web_anon token');
$r = req('POST', '/api/rpc/update_listing', token => $srv->token('postgres'),
	json => { id => 0 + $boston, title => 'superuser?' });
is_json_error($r, 401, 'PGRST301', 'token claiming another role');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer error="invalid_token"/, '401: WWW-Authenticate');
my @jwt = split /\./, $editor;
(my $sig = $jwt[2]) =~ s/^(.)/$1 eq 'A' ? 'B' : 'A'/e;
$r = req('POST', '/api/rpc/update_listing', token => "$jwt[0].$jwt[1].$sig",
	json => { id => 0 + $boston, title => 'forged' });
is_json_error($r, 401, 'PGRST301', 'bad signature');
like($r->{json}{message}, qr/Signature/i, 'bad signature: says so');
my $claims = MIME::Base64::encode_base64url('{"role":"web_editor","exp":9999999999}');
$r = req('POST', '/api/rpc/update_listing', token => $srv->token('web_anon') =~ s/\.[^.]+\./.$claims./r,
	json => { id => 0 + $boston, title => 'forged' });
is_json_error($r, 401, 'PGRST301', 'claims swapped under a valid signature');
my $short = $srv->token('web_editor', 1);
sleep 2;
$r = req('POST', '/api/rpc/update_listing', token => $short,
	json => { id => 0 + $boston, title => 'expired' });
is_json_error($r, 401, 'PGRST301', 'expired token');
like($r->{json}{message}, qr/expired/, 'expired token: says so');
# alg none, with the editor's claims
my ($h, $p) = split /\./, $editor;
$r = req('POST', '/api/rpc/update_listing', token => "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.$p.",
	json => { id => 0 + $boston, title => 'alg none' });
is_json_error($r, 401, 'PGRST301', 'alg none');
$r = req('GET', $item, token => 'not-a-jwt');
is_json_error($r, 401, 'PGRST301', 'malformed token');
$r = req('GET', $item, headers => ['Authorization: Basic dXNlcjpwdw==']);
is_json_error($r, 401, 'PGRST301', 'Basic authorization');
is($node->safe_psql('postgres', "SELECT title FROM housing.listings WHERE id = $boston"),
	$before, 'no refused write changed the listing');

# a GET of a writing function runs read-only: 405 like PostgREST
$r = req('GET', "/api/rpc/update_listing?id=$boston&title=x", token => $editor);
is_json_error($r, 405, '25006', 'GET of update_listing');

# --- malformed parameters: 400 with a JSON error -----------------------------

for my $case (
	[ 'listings?page=-1', '22023' ],
	[ 'listings?page=0', '22023' ],
	[ 'listings?page_size=1000', '22023' ],
	[ 'listings?sort=bogus', '22023' ],
	[ 'listings?min_price_cents=-5', '22023' ],
	[ 'listings?page=abc', '22P02' ],
	[ 'listings?page=1.5', '22P02' ],
	[ 'listings?min_price_cents=99999999999999999999999', '22003' ],
	[ 'listing?id=abc', '22P02' ],
	[ 'listing?id=', '22P02' ],
	[ 'listings?city=%zz', 'PGRST100' ],
	[ 'listings?city=a%00b', 'PGRST100' ],
	[ 'listings?city=%ff%fe', 'PGRST100' ],
	[ 'listings?city', 'PGRST100' ],
	[ 'listings?city=a&city=b', 'PGRST100' ],
	[ 'listings?select=id', 'PGRST100' ],
	[ 'listings?=x', 'PGRST100' ])
{
	my ($q, $code) = @$case;
	is_json_error(req('GET', "/api/rpc/$q"), 400, $code, "GET $q");
}

for my $case (
	[ '{"id":', 'PGRST102', 'truncated JSON' ],
	[ '[1, 2]', 'PGRST102', 'JSON array' ],
	[ '"id"', 'PGRST102', 'JSON string' ],
	[ '{"id": 1, "id": 2}', 'PGRST102', 'duplicate key' ],
	[ '{"id": 1, "title": "a\u0000b"}', 'PGRST102', 'NUL in a string' ],
	[ '{"id": "x"}', '22P02', 'id not a number' ],
	[ '{"id": 1.5}', '22P02', 'fractional id' ],
	[ "{\"id\": $boston, \"price_cents\": -1}", '22023', 'negative price' ],
	[ "{\"id\": $boston, \"status\": \"bogus\"}", '22023', 'unknown status' ])
{
	my ($json, $code, $name) = @$case;
	is_json_error(req('POST', '/api/rpc/update_listing', token => $editor, json => $json),
		400, $code, "POST $name");
}
$r = req('POST', '/api/rpc/update_listing', token => $editor, body => '{}',
	headers => ['Content-Type: text/plain']);
is_json_error($r, 415, 'PGRST107', 'POST text/plain');
$r = req('POST', '/api/rpc/listings?city=Boston', json => {});
is_json_error($r, 400, 'PGRST100', 'POST with query parameters');

# --- 404s ---------------------------------------------------------------------

$r = req('GET', '/api/rpc/listing?id=987654321');
is_json_error($r, 404, 'HC404', 'unknown listing');
like($r->{json}{message}, qr/987654321/, 'unknown listing: names the id');
$r = req('GET', '/api/rpc/listing?id=987654321', headers => ['If-None-Match: "abc"']);
is($r->{status}, 404, 'unknown listing with If-None-Match: still 404');
$r = req('POST', '/api/rpc/update_listing', token => $editor,
	json => { id => 987654321, title => 'x' });
is_json_error($r, 404, 'HC404', 'update of an unknown listing');
is_json_error(req('GET', '/api/rpc/no_such_function'), 404, 'PGRST202', 'unknown function');
is_json_error(req('GET', '/api/rpc/listings?bogus=1'), 404, 'PGRST202', 'unknown argument');
is_json_error(req('GET', '/api/rpc/listing'), 404, 'PGRST202', 'missing required argument');
is_json_error(req('POST', '/api/rpc/update_listing', token => $editor, json => { id => 1, nope => 2 }),
	404, 'PGRST202', 'unknown argument in a body');
is_json_error(req('GET', '/api/rpc/'), 404, 'PGRST125', 'no function name');
is_json_error(req('GET', '/api/listings'), 404, 'PGRST125', 'not under /rpc');
is_json_error(req('GET', '/api/rpc/a%2fb'), 404, 'PGRST125', 'encoded slash in the name');
is_json_error(req('GET', '/api/rpc/setup_api_roles'), 404, 'PGRST202',
	'functions of other schemas are not exposed');
is_json_error(req('DELETE', '/api/rpc/listing?id=1'), 405, undef, 'DELETE');

# --- the other read endpoints ---------------------------------------------------

$r = req('GET', '/api/rpc/city_stats?city=Boston');
is($r->{status}, 200, 'city_stats: 200');
is($r->{json}{city}, 'Boston', 'city_stats: Boston');
like($r->{headers}{etag} // '', qr/^"[0-9a-f]+"$/, 'city_stats: ETag');
$r = req('GET', '/api/rpc/cache_stats');
is($r->{status}, 200, 'cache_stats: 200');
is($r->{headers}{'cache-control'}, 'no-store', 'cache_stats: no-store');
ok(exists $r->{json}{l1_hits}, 'cache_stats: the counters');

# --- the database sees the request as PostgREST sets it up ---------------------

$node->safe_psql('postgres', q{
	CREATE FUNCTION api.whoami(x int DEFAULT 0) RETURNS api."application/json"
	LANGUAGE sql AS $$ SELECT json_build_object(
		'role', current_user,
		'method', current_setting('request.method', true),
		'path', current_setting('request.path', true),
		'ua', current_setting('request.headers', true)::json->>'user-agent',
		'auth', current_setting('request.headers', true)::json->>'authorization',
		'cookie', current_setting('request.cookies', true)::json->>'session',
		'claims_role', current_setting('request.jwt.claims', true)::json->>'role',
		'readonly', current_setting('transaction_read_only'),
		'search_path', current_setting('search_path')) $$;
	GRANT EXECUTE ON FUNCTION api.whoami(int) TO web_anon;
});
$srv->signal('HUP');    # reload the schema cache
my $deadline = time + 10;
do { sleep 1; $r = req('GET', '/api/rpc/whoami') } while ($r->{status} == 404 && time < $deadline);
is($r->{status}, 200, 'new function visible after SIGHUP');
is($r->{json}{role}, 'web_anon', 'anonymous: role web_anon');
is($r->{json}{claims_role}, 'web_anon', 'anonymous: claims');
is($r->{json}{method}, 'GET', 'request.method');
is($r->{json}{path}, '/rpc/whoami', 'request.path as PostgREST sees it');
like($r->{json}{ua} // '', qr/^curl/, 'request.headers: lower-case names');
is($r->{json}{readonly}, 'on', 'GET: read-only transaction');
is($r->{json}{search_path}, '"api", "public"', 'search_path');
$r = req('POST', '/api/rpc/whoami', token => $editor, json => { x => 1 },
	headers => ['Cookie: session=abc; other=1']);
is($r->{json}{role}, 'web_editor', 'token: role web_editor');
is($r->{json}{auth}, undef, 'the Authorization header is not passed on');
is($r->{json}{cookie}, 'abc', 'request.cookies');
is($r->{json}{readonly}, 'off', 'POST: read-write transaction');

# --- calls are prepared per connection: redefinitions are followed ---------------

$node->safe_psql('postgres', q{
	CREATE OR REPLACE FUNCTION api.whoami(x int DEFAULT 0) RETURNS api."application/json"
	LANGUAGE sql AS $$ SELECT json_build_object('version', 2, 'x', x) $$;
});
for my $i (1 .. 6)    # reach every pooled connection
{
	$r = req('GET', "/api/rpc/whoami?x=$i");
	is_deeply($r->{json}, { version => 2, x => $i }, "redefined function, call $i");
}
$node->safe_psql('postgres', 'DROP FUNCTION api.whoami(int)');
$r = req('GET', '/api/rpc/whoami?x=1');
is($r->{status}, 404, 'dropped function (still in the schema cache): 404');
$node->safe_psql('postgres', q{
	CREATE FUNCTION api.whoami(x text) RETURNS api."application/json"
	LANGUAGE sql AS $$ SELECT json_build_object('version', 3, 'x', x) $$;
});
$srv->signal('HUP');
$deadline = time + 10;
do { sleep 1; $r = req('GET', '/api/rpc/whoami?x=abc') } while ($r->{status} != 200 && time < $deadline);
is_deeply($r->{json}, { version => 3, x => 'abc' }, 're-created with another argument type');

# --- a long If-None-Match list ------------------------------------------------

{
	my $list = join(', ', map { sprintf '"%032x"', $_ } 1 .. 300);
	$r = $srv->request('GET', $search, headers => ["If-None-Match: $list"]);
	is($r->{status}, 200, 'a long If-None-Match list is not a server error');
}

# --- never a 500 ----------------------------------------------------------------

my @five = grep { $_->[1] >= 500 || $_->[1] == 0 } @statuses;
is_deeply(\@five, [], 'no 5xx and no dropped connection in ' . scalar(@statuses) . ' requests');
ok($srv->is_running, 'server still running');
is($srv->stop, 0, 'server exits 0 on SIGTERM');
like($srv->log_text, qr/"GET \/api\/rpc\/listings\?city=Boston&page_size=5&sort=price_asc" 200/,
	'one log line per request');

done_testing();
