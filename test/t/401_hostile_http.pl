# Hostile input through HTTP: the development server (http/hc_http, built
# with AddressSanitizer when possible) in front of the api schema, fed bad
# query strings, percent-escapes and encodings (%00, overlong and surrogate
# UTF-8, invalid escapes), huge and duplicate parameters, bodies that are
# not JSON or have the wrong types, deep nesting, hostile headers and
# injection strings.  Every answer must be a 4xx with a JSON error body (or
# a 2xx/304 where the input is legitimate), never a 5xx (503 would only be
# allowed for an exhausted pool, which nothing here provokes); the server
# must stay up, its sanitizer report stay empty, and the listings change
# only where an editor's valid update asked for it.
#
# Skipped when hc_http cannot be built (http/, libmicrohttpd).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::RealBin/../http";

use Cwd qw(abs_path);
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# At compile time, so that the test modules' INIT blocks run.
my $have_hchttp;
BEGIN { $have_hchttp = -f "$FindBin::RealBin/../http/HcHttp.pm" && eval { require HcHttp; 1 }; }

my $http_dir = abs_path("$FindBin::RealBin/../../http");
plan skip_all => 'no http/ directory (the development server)'
  unless $have_hchttp && $http_dir && -f "$http_dir/Makefile";

# Prefer the AddressSanitizer build: the server's own parsers see the input.
my $bin = $ENV{HC_HTTP_BIN};
if (!defined $bin)
{
	system("make -s -C '$http_dir' asan >/dev/null 2>&1");
	$bin = -x "$http_dir/hc_http-asan" ? "$http_dir/hc_http-asan" : undef;
}
if (!defined $bin)
{
	system("make -s -C '$http_dir' >/dev/null 2>&1");
	$bin = "$http_dir/hc_http" if -x "$http_dir/hc_http";
}
plan skip_all => 'http/hc_http could not be built' unless defined $bin && -x $bin;
$HcHttp::BIN = $bin;
# leaks of the libraries' at-exit state are not the point here
$ENV{ASAN_OPTIONS} = 'detect_leaks=0:abort_on_error=0:halt_on_error=1';

my $stack = HcHttp->new(name => 'hostile_http', listings => 300);
my $srv = $stack->start_server('--pool', '4');
my $node = $stack->node;
my $editor = $srv->token('web_editor');
note("server: $bin");

my $target = $node->safe_psql('postgres', 'SELECT max(id) FROM housing.listings');
my $sum_sql = "SELECT count(*) || ':' || md5(string_agg(l::text, ',' ORDER BY id)) "
  . "FROM housing.listings l WHERE id <> $target";
my $sum = $node->safe_psql('postgres', $sum_sql);

# --- one request -----------------------------------------------------------------------

my %statuses;
my $requests = 0;

# expect: a status ('400'), a class ('4xx', '2xx'), or several ('200|304')
sub check
{
	my ($label, $method, $path, $expect, %opts) = @_;
	my $todo = delete $opts{todo};
	my $r = $srv->request($method, $path, timeout => 60, %opts);
	$requests++;
	$statuses{ $r->{status} }++;
	my @want = split /\|/, $expect;
	my $st = $r->{status};
	my $match = grep { $_ eq $st || ($_ =~ /^(\d)xx$/ && substr($st, 0, 1) eq $1) } @want;
	my $why = '';
	if ($st == 0) { $why = "no answer (connection failed: curl exit $r->{curl_exit})" }
	elsif ($st >= 500) { $why = "server error $st" }
	elsif (!$match) { $why = "expected $expect" }
	elsif ($st >= 400 && $method ne 'HEAD' && ref $r->{json} ne 'HASH') { $why = 'a 4xx without a JSON error body' }
	elsif ($st >= 400 && $method ne 'HEAD' && !exists $r->{json}{message}) { $why = 'a JSON error body without "message"' }
	my $code = ref $r->{json} eq 'HASH' && defined $r->{json}{code} ? " $r->{json}{code}" : '';
	TODO:
	{
		local $TODO = $todo if defined $todo && $st < 500 && $match;
		ok($why eq '', "$label -> $st$code")
		  or diag("$why\n$method $path\nbody: " . substr($r->{body} // '', 0, 400));
	}
	return $r;
}

sub alive
{
	my ($what) = @_;
	ok($srv->is_running, "$what: the server process is running");
	my $r = $srv->request('GET', '/api/rpc/listing?id=1');
	is($r->{status}, 200, "$what: it still answers a valid request");
	is($node->safe_psql('postgres', $sum_sql), $sum, "$what: the listings are unchanged");
	return;
}

# --- query strings ------------------------------------------------------------------------

my $L = '/api/rpc/listings';
for my $c (
	[ 'valid', "$L?city=Boston&page_size=2", '200' ],
	[ 'plus is a space', "$L?city=New+York&page_size=1", '200' ],
	[ 'injection', "$L?city=%27%29%3B%20DROP%20TABLE%20housing.listings%3B%20--", '200' ],
	[ 'quotes and backslashes', "$L?city=Bo%22st%5Con%27", '200' ],
	[ 'format string', "$L?city=%25s%25n%25x", '200' ],
	[ 'dollar', "$L?city=%241", '200' ],
	[ 'NUL', "$L?city=Bos%00ton", '400' ],
	[ 'NUL alone', "$L?city=%00", '400' ],
	[ 'control characters', "$L?city=%01%1F%7F", '200' ],
	[ 'overlong UTF-8', "$L?city=%C0%AF", '400' ],
	[ 'overlong NUL', "$L?city=%C0%80", '400' ],
	[ 'UTF-16 surrogate', "$L?city=%ED%A0%80", '400' ],
	[ 'beyond U+10FFFF', "$L?city=%F4%90%80%80", '400' ],
	[ 'truncated UTF-8', "$L?city=%E2%82", '400' ],
	[ 'lone continuation byte', "$L?city=%80", '400' ],
	[ 'Latin-1 byte', "$L?city=S%E3o", '400' ],
	[ 'valid multibyte', "$L?city=S%C3%A3o%20Paulo", '200' ],
	[ 'invalid escape %zz', "$L?city=%zz", '400' ],
	[ 'invalid escape %', "$L?city=%", '400' ],
	[ 'invalid escape %4', "$L?city=%4", '400' ],
	[ 'escape in the name', "$L?c%69ty=Boston", '200' ],
	[ 'NUL in the name', "$L?ci%00ty=Boston", '400|404' ],
	[ 'city of 101 characters', "$L?city=" . ('x' x 101), '400' ],
	[ 'city of 8000 bytes', "$L?city=" . ('x' x 8000), '400' ],
	[ 'URL over the limit', "$L?city=" . ('x' x 9000), '414' ],
	[ 'duplicate parameter', "$L?city=Boston&city=Denver", '400' ],
	[ 'duplicate, differently escaped', "$L?city=Boston&c%69ty=Denver", '400' ],
	# the error names the parameter: cut to fit, it must stay valid UTF-8
	[ 'duplicate long multibyte name', "$L?a" . ('%C3%A9' x 40) . "=1&a" . ('%C3%A9' x 40) . '=2', '400' ],
	[ 'malformed long multibyte segment', "$L?a" . ('%C3%A9' x 40), '400' ],
	[ 'unknown parameter', "$L?bogus=1", '404' ],
	[ 'reserved parameter', "$L?select=id", '400' ],
	[ 'no value', "$L?city", '400' ],
	[ 'empty name', "$L?=Boston", '400' ],
	[ 'only separators', "$L?&&&", '200' ],
	[ 'empty value', "$L?city=", '200' ],
	[ '70 parameters', "$L?" . join('&', map { "p$_=1" } 1 .. 70), '400|404' ],
	[ 'page abc', "$L?page=abc", '400' ],
	[ 'page empty', "$L?page=", '400' ],
	[ 'page 0', "$L?page=0", '400' ],
	[ 'page -1', "$L?page=-1", '400' ],
	[ 'page 1.5', "$L?page=1.5", '400' ],
	[ 'page 1e3', "$L?page=1e3", '400' ],
	[ 'page int overflow', "$L?page=99999999999999999999", '400' ],
	[ 'page injection', "$L?page=1%3B%20DROP%20TABLE%20housing.listings", '400' ],
	[ 'page_size 101', "$L?page_size=101", '400' ],
	[ 'sort unknown', "$L?sort=id", '400' ],
	[ 'sort injection', "$L?sort=price_asc%3B--", '400' ],
	[ 'negative price', "$L?min_price_cents=-1", '400' ],
	[ 'min above max', "$L?min_price_cents=10&max_price_cents=5", '400' ],
	[ 'bedrooms too many', "$L?min_bedrooms=101", '400' ],
	[ 'price bigint overflow', "$L?max_price_cents=9223372036854775808", '400' ],
	[ 'listing id abc', '/api/rpc/listing?id=abc', '400' ],
	[ 'listing id empty', '/api/rpc/listing?id=', '400' ],
	[ 'listing id -1', '/api/rpc/listing?id=-1', '404' ],
	[ 'listing id overflow', '/api/rpc/listing?id=9223372036854775808', '400' ],
	[ 'listing id injection', '/api/rpc/listing?id=1%20OR%201%3D1', '400' ],
	[ 'listing without id', '/api/rpc/listing', '404' ],
	[ 'city_stats injection', '/api/rpc/city_stats?city=%27%3B%20DELETE%20FROM%20housing.listings%3B--', '200' ],
	[ 'city_stats NUL', '/api/rpc/city_stats?city=a%00b', '400' ],
	[ 'city_stats 101 characters', '/api/rpc/city_stats?city=' . ('y' x 101), '400' ],
	[ 'city_stats empty', '/api/rpc/city_stats?city=', '200' ],
	[ 'cache_stats with an argument', '/api/rpc/cache_stats?x=1', '404' ],
  )
{
	my ($label, $path, $expect) = @$c;
	check("GET $label", 'GET', $path, $expect);
}
alive('query strings');

# --- paths and methods -----------------------------------------------------------------

for my $c (
	[ 'GET', '/api/rpc/no_such_function', '404' ],
	[ 'GET', '/api/rpc/listings%00', '400|404' ],
	[ 'GET', '/api/rpc/listings%2F..%2Fsetup_api_roles', '404' ],
	[ 'GET', '/api/rpc/../rpc/listings', '200|400|404' ],
	[ 'GET', '/api/rpc/%2e%2e/listings', '400|404' ],
	[ 'GET', '/api/rpc/' . ('f' x 500), '404' ],
	[ 'GET', '/api/rpc/generate_listings?n=1000000', '404' ],
	[ 'GET', '/api/rpc/LISTINGS', '404' ],
	[ 'GET', '/api/rpc/listings;select', '404' ],
	[ 'GET', '/api/rpc/%22listings%22', '404' ],
	[ 'PUT', '/api/rpc/listings', '405' ],
	[ 'PATCH', '/api/rpc/listings', '405' ],
	[ 'DELETE', '/api/rpc/listing?id=1', '405' ],
	[ 'TRACE', '/api/rpc/listings', '405|4xx' ],
	[ 'BREW', '/api/rpc/listings', '4xx' ],
	[ 'GET', '/api/rpc/update_listing?id=1&title=x', '405|401' ],
  )
{
	my ($method, $path, $expect) = @$c;
	check("$method $path", $method, $path, $expect);
}
alive('paths and methods');

# --- headers -----------------------------------------------------------------------------

my $S = "$L?city=Boston&page_size=1";
for my $c (
	[ 'If-None-Match *', ['If-None-Match: *'], '200|304' ],
	[ 'If-None-Match garbage', ['If-None-Match: W/"",""x",,,W/'], '200' ],
	[ 'If-None-Match 16 KB', [ 'If-None-Match: "' . ('a' x 16000) . '"' ], '200' ],
	# KNOWN: libmicrohttpd answers headers beyond --max-header itself, with
	# an HTML body, not the JSON error body of every other 4xx
	[ 'If-None-Match 1000 tags (36 KB)', [ 'If-None-Match: ' . join(', ', map { sprintf('"%032x"', $_) } 1 .. 1000) ],
		'431', 'libmicrohttpd answers 431 with an HTML body' ],
	[ 'If-None-Match with a quote-escape', ['If-None-Match: "\\""'], '200' ],
	[ 'If-None-Match invalid UTF-8', ["If-None-Match: \"\xff\xfe\""], '200|400' ],
	[ 'header value invalid UTF-8', ["X-Junk: \xc0\xaf\xed\xa0\x80"], '200|400' ],
	[ 'header over the limit', [ 'X-Big: ' . ('b' x 40000) ], '431', 'libmicrohttpd answers 431 with an HTML body' ],
	[ '200 headers', [ map { "X-H$_: v$_" } 1 .. 200 ], '200|4xx' ],
	[ 'hostile cookie', ['Cookie: a="b;c=d"; =x; ;;; e; f=' . ('g' x 1000)], '200' ],
	[ 'cookie with quotes', ['Cookie: x="\\"};DROP'], '200' ],
	[ 'Authorization garbage', ['Authorization: Bearer ' . ('x' x 3000)], '401' ],
	[ 'Authorization empty bearer', ['Authorization: Bearer '], '401' ],
	[ 'Authorization with a NUL-looking escape', ['Authorization: Bearer a.b%00.c'], '401' ],
	[ 'Prefer garbage', ['Prefer: return=representation; tx=rollback; ' . ('p' x 500)], '200|400' ],
	[ 'Accept text/html', ['Accept: text/html'], '200|406' ],
	[ 'Accept garbage', ['Accept: */*;q=abc, ;;;'], '200|406' ],
	[ 'Content-Type on GET', ['Content-Type: application/x-evil'], '200|415' ],
  )
{
	my ($label, $headers, $expect, $todo) = @$c;
	check("GET with $label", 'GET', $S, $expect, headers => $headers, todo => $todo);
}
alive('headers');

# --- bodies -------------------------------------------------------------------------------

my $U = '/api/rpc/update_listing';
my $deep = ('[' x 20000) . (']' x 20000);
my $deep_obj = ('{"a":' x 10000) . '1' . ('}' x 10000);
for my $c (
	[ 'not JSON', 'not json', '400' ],
	[ 'truncated JSON', '{"id": 1, "title": "x', '400' ],
	[ 'a JSON array', '[1, 2]', '400' ],
	[ 'a JSON string', '"x"', '400' ],
	[ 'a JSON number', '42', '400' ],
	[ 'null', 'null', '400' ],
	[ 'trailing garbage', qq({"id": $target} x), '400' ],
	[ 'two objects', qq({"id": $target}{"id": 1}), '400' ],
	[ 'id a string of letters', '{"id": "abc"}', '400' ],
	[ 'id a fraction', '{"id": 1.5}', '400' ],
	[ 'id huge', '{"id": 1e400}', '400' ],
	[ 'id an object', '{"id": {"x": 1}}', '400' ],
	[ 'id an array', '{"id": [1]}', '400' ],
	[ 'id true', '{"id": true}', '400' ],
	[ 'id null', '{"id": null}', '400' ],
	[ 'duplicate key', qq({"id": $target, "id": 1}), '400' ],
	[ 'duplicate long multibyte key', qq({"id": $target, "a) . ("\xc3\xa9" x 40) . qq(": 1, "a) . ("\xc3\xa9" x 40) . '": 2}', '400' ],
	[ 'unknown key', qq({"id": $target, "nope": 1}), '404' ],
	[ 'empty key', qq({"id": $target, "": 1}), '400|404' ],
	[ 'key with a NUL escape', qq({"id": $target, "ti\\u0000tle": "x"}), '400|404' ],
	[ 'title with a NUL escape', qq({"id": $target, "title": "a\\u0000b"}), '400' ],
	[ 'title with a lone surrogate escape', qq({"id": $target, "title": "\\ud800"}), '400' ],
	[ 'title with invalid UTF-8', qq({"id": $target, "title": "\xff\xfe"}), '400' ],
	[ 'title with overlong UTF-8', qq({"id": $target, "title": "\xc0\xaf"}), '400' ],
	[ 'title empty', qq({"id": $target, "title": ""}), '400' ],
	[ 'negative price', qq({"id": $target, "price_cents": -1}), '400' ],
	[ 'price a string', qq({"id": $target, "price_cents": "cheap"}), '400' ],
	[ 'price overflow', qq({"id": $target, "price_cents": 99999999999999999999}), '400' ],
	[ 'unknown status', qq({"id": $target, "status": "stolen"}), '400' ],
	[ 'status injection', qq({"id": $target, "status": "sold'; DROP TABLE housing.listings; --"}), '400' ],
	[ 'unknown listing', '{"id": 987654321, "title": "x"}', '404' ],
	[ 'deeply nested arrays', $deep, '400|413' ],
	[ 'deeply nested objects', $deep_obj, '400|413' ],
	[ 'deep value', qq({"id": $target, "description": ) . ('[' x 5000) . (']' x 5000) . '}', '200|400|413' ],
	[ 'body over the limit', qq({"id": $target, "description": ") . ('d' x 70000) . '"}', '413' ],
	[ 'many keys', '{' . join(',', map { "\"k$_\": $_" } 1 .. 100) . '}', '400|404' ],
  )
{
	my ($label, $body, $expect) = @$c;
	check("POST update_listing: $label", 'POST', $U, $expect, token => $editor, body => $body,
		headers => ['Content-Type: application/json']);
}
for my $c (
	[ 'form body', "id=$target&title=%27%29%3B--", 'application/x-www-form-urlencoded', '200' ],
	[ 'form body, invalid escape', "id=$target&title=%zz", 'application/x-www-form-urlencoded', '400' ],
	[ 'text/plain', '{}', 'text/plain', '415' ],
	[ 'JSON with charset latin1', qq({"id": $target}), 'application/json; charset=iso-8859-1', '200|400|415' ],
	[ 'no content type', qq({"id": $target}), undef, '200|400|415' ],
  )
{
	my ($label, $body, $ct, $expect) = @$c;
	check("POST update_listing: $label", 'POST', $U, $expect, token => $editor, body => $body,
		headers => [ defined $ct ? "Content-Type: $ct" : 'Content-Type:' ]);
}
# Hostile but valid text is stored exactly as sent.
for my $title (q{'); DROP TABLE housing.listings; --}, q{Bo"st\on</script>}, "\x{1F3E0} \x{2028}", '$1 %s %n')
{
	my $r = check('POST update_listing: title ' . substr($title =~ s/[^\x20-\x7e]/?/gr, 0, 30),
		'POST', $U, '200', token => $editor, json => { id => 0 + $target, title => $title });
	my $stored = $node->safe_psql('postgres', "SELECT title FROM housing.listings WHERE id = $target");
	utf8::decode($stored);
	is($stored, $title, 'stored exactly as sent');
}
check('POST listings without a token: anonymous write of nothing', 'POST', "$L", '200',
	json => { city => 'Boston', page_size => 1 });
check('POST update_listing anonymously', 'POST', $U, '401', json => { id => 0 + $target, title => 'anon' });
alive('bodies');

# --- the end state ------------------------------------------------------------------------

ok(!grep({ $_ >= 500 || $_ == 0 } keys %statuses), "no 5xx and no dropped connection in $requests requests")
  or diag(explain(\%statuses));
my $status = $srv->stop;
is($status, 0, 'the server stops cleanly on SIGTERM');
my $log = $srv->log_text;
unlike($log, qr/ERROR: AddressSanitizer|runtime error:|SUMMARY: (?:Address|Undefined)/,
	'no sanitizer report in the server log')
  or diag(join("\n", grep { /Sanitizer|runtime error/ } split /\n/, $log));

done_testing();
