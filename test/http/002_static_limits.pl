# hc_http: static files (Next.js export layout, content types, cache
# headers, no way out of the root) and request limits (URL, headers, body,
# slow clients).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use File::Path qw(make_path);
use File::Temp ();
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time sleep);

use HcHttp;

# --- a static export ----------------------------------------------------------

my $base = File::Temp->newdir;
my $root = "$base/out";
my %files = (
	'index.html' => "<h1>home</h1>\n",
	'listing.html' => "<h1>listing page</h1>\n",
	'listing/index.html' => "<h1>listing dir</h1>\n",
	'about/index.html' => "<h1>about</h1>\n",
	'404.html' => "<h1>not here</h1>\n",
	'_next/static/chunks/main-0a1b2c.js' => "console.log('hi');\n",
	'_next/static/css/app-9f8e.css' => "body{margin:0}\n",
	'data.json' => "{\"a\":1}\n",
	'logo.svg' => "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
	'icon.png' => "\x89PNG\r\n\x1a\n",
	'favicon.ico' => "\0\0\1\0",
	'fonts/inter.woff2' => "wOF2",
	'robots.txt' => "User-agent: *\n",
	'blob.bin' => "\1\2\3",
);
for my $f (keys %files)
{
	my $path = "$root/$f";
	(my $dir = $path) =~ s{/[^/]+$}{};
	make_path($dir);
	open my $fh, '>', $path or die "$path: $!";
	binmode $fh;
	print $fh $files{$f};
	close $fh;
}
open my $sfh, '>', "$base/secret.txt" or die $!;
print $sfh "TOP SECRET\n";
close $sfh;
symlink("$base/secret.txt", "$root/leak.txt") or die "symlink: $!";
symlink($base, "$root/up") or die "symlink: $!";
chmod 0755, $base;

my $stack = HcHttp->new(name => 'http_static', listings => 100);
my $srv = $stack->start_server('--static', $root, '--pool', '2',
	'--request-timeout', '3', '--idle-timeout', '2');

my %types = (
	'/' => 'text/html; charset=utf-8',
	'/index.html' => 'text/html; charset=utf-8',
	'/_next/static/chunks/main-0a1b2c.js' => 'text/javascript; charset=utf-8',
	'/_next/static/css/app-9f8e.css' => 'text/css; charset=utf-8',
	'/data.json' => 'application/json; charset=utf-8',
	'/logo.svg' => 'image/svg+xml',
	'/icon.png' => 'image/png',
	'/favicon.ico' => 'image/x-icon',
	'/fonts/inter.woff2' => 'font/woff2',
	'/robots.txt' => 'text/plain; charset=utf-8',
	'/blob.bin' => 'application/octet-stream',
);
for my $path (sort keys %types)
{
	my $r = $srv->request('GET', $path);
	is($r->{status}, 200, "$path: 200");
	is($r->{headers}{'content-type'}, $types{$path}, "$path: Content-Type");
	my $file = $path eq '/' ? 'index.html' : substr($path, 1);
	is($r->{body}, $files{$file}, "$path: content");
	is($r->{headers}{'x-content-type-options'}, 'nosniff', "$path: nosniff");
}

# routes of the export
my $r = $srv->request('GET', '/listing');
is($r->{body}, $files{'listing.html'}, '/listing -> listing.html');
$r = $srv->request('GET', '/listing/');
is($r->{body}, $files{'listing/index.html'}, '/listing/ -> listing/index.html');
$r = $srv->request('GET', '/about');
is($r->{body}, $files{'about/index.html'}, '/about -> about/index.html (no about.html)');
$r = $srv->request('GET', '/listing?id=42');
is($r->{body}, $files{'listing.html'}, 'query strings are ignored');
$r = $srv->request('GET', '/about%20us');
is($r->{status}, 404, 'missing: 404');
is($r->{body}, $files{'404.html'}, 'missing: the export\'s 404.html');

# cache headers
$r = $srv->request('GET', '/_next/static/chunks/main-0a1b2c.js');
is($r->{headers}{'cache-control'}, 'public, max-age=31536000, immutable', '_next/static: immutable');
$r = $srv->request('GET', '/index.html');
is($r->{headers}{'cache-control'}, 'no-cache', 'html: revalidated');
my $etag = $r->{headers}{etag};
ok(defined $etag, 'static: ETag');
$r = $srv->request('GET', '/index.html', headers => ["If-None-Match: $etag"]);
is($r->{status}, 304, 'static If-None-Match: 304');
is($r->{body}, '', 'static 304: no body');
$r = $srv->request('HEAD', '/data.json');
is($r->{status}, 200, 'HEAD: 200');
is($r->{headers}{'content-length'}, length $files{'data.json'}, 'HEAD: Content-Length');
$r = $srv->request('POST', '/index.html', body => 'x');
is($r->{status}, 405, 'POST on a file: 405');

# no way out of the root
for my $path (
	'/../secret.txt',
	'/../../../../etc/passwd',
	'/%2e%2e/secret.txt',
	'/%2E%2E/%2E%2E/etc/passwd',
	'/_next/..%2f..%2fsecret.txt',
	'/%2e%2e%2fsecret.txt',
	'/..%5csecret.txt',
	'/_next/%2e%2e/%2e%2e/secret.txt',
	'/index.html%00.png',
	'/%00',
	'/./index.html',
	'/listing/..',
	'/%zz',
	'/%2',
	'/a\\..\\secret.txt')
{
	my $r2 = $srv->request('GET', $path);
	is($r2->{status}, 400, "traversal $path: 400");
	unlike($r2->{body}, qr/SECRET|root:/, "traversal $path: nothing leaked");
}
for my $path ('/leak.txt', '/up/secret.txt', '/%c0%ae%c0%ae/secret.txt', '//secret.txt', '/secret.txt')
{
	my $r2 = $srv->request('GET', $path);
	is($r2->{status}, 404, "outside the root $path: 404");
	unlike($r2->{body}, qr/SECRET/, "outside the root $path: nothing leaked");
}

# --- limits -------------------------------------------------------------------

my $long = 'a' x 10_000;
$r = $srv->request('GET', "/api/rpc/listings?city=$long");
is($r->{status}, 414, 'URL over --max-url: 414');
is($r->{json}{code}, 'HC414', '414: JSON error');
$r = $srv->request('GET', '/api/rpc/listings?city=' . ('b' x 100_000));
ok($r->{status} == 414 || $r->{status} == 431 || $r->{status} == 0,
	"URL over the header memory: refused ($r->{status})");
$r = $srv->request('GET', '/', headers => ['X-Big: ' . ('c' x 64_000)]);
ok($r->{status} == 431 || $r->{status} == 413 || $r->{status} == 0,
	"64 kB header: refused ($r->{status})");

my $editor = $srv->token('web_editor');
$r = $srv->request('POST', '/api/rpc/update_listing', token => $editor,
	json => '{"id": 1, "description": "' . ('d' x 100_000) . '"}');
is($r->{status}, 413, 'body over --max-body: 413');
is($r->{json}{code}, 'HC413', '413: JSON error');
$r = $srv->request('POST', '/api/rpc/update_listing', token => $editor,
	json => '{"id": 1, "description": "' . ('d' x 100_000) . '"}',
	headers => ['Transfer-Encoding: chunked']);
is($r->{status}, 413, 'chunked body over --max-body: 413');
$r = $srv->request('POST', '/api/rpc/update_listing', token => $editor,
	json => '{"id": 1, "description": "' . ('e' x 60_000) . '"}');
is($r->{status}, 200, 'body just under --max-body: accepted');

# --- slow clients: cut off by --request-timeout (3 s) / --idle-timeout (2 s) ---

# Writes $step bytes every second for up to 15 s; returns the seconds until
# the server closed the connection (or 15 if it never did).
sub slow_client
{
	my ($first, $step) = @_;
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port)
	  or die "connect: $!";
	local $SIG{PIPE} = 'IGNORE';
	my $t0 = time;
	syswrite($sock, $first) if length $first;
	while (time - $t0 < 15)
	{
		my $rin = '';
		vec($rin, fileno($sock), 1) = 1;
		if (select(my $rout = $rin, undef, undef, 1) > 0)
		{
			my $n = sysread($sock, my $buf, 4096);
			return time - $t0 if !$n;    # closed (a reply may come first)
			next;
		}
		if (defined $step)
		{
			return time - $t0 unless defined syswrite($sock, $step);
		}
	}
	return time - $t0;
}

my $t = slow_client("GET / HTTP/1.1\r\nHost: x\r\n", "X-Slow: 1\r\n");
ok($t < 8, sprintf('headers trickled a line a second: cut off after %.1f s', $t));
$t = slow_client("POST /api/rpc/listings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	  . "Content-Length: 1000\r\n\r\n{", ' ');
ok($t < 8, sprintf('body trickled a byte a second: cut off after %.1f s', $t));
$t = slow_client('', undef);
ok($t < 6, sprintf('connection that sends nothing: closed after %.1f s', $t));
$t = slow_client("GET / HTTP/1.1\r\nHost: x\r\n", undef);
ok($t < 6, sprintf('incomplete headers, then silence: closed after %.1f s', $t));
like($srv->log_text, qr/closed \d+ connection\(s\) whose request was not received within 3 s/,
	'slow clients logged');

# keep-alive still works: two requests on one connection
{
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $srv->port)
	  or die "connect: $!";
	my @got;
	for my $path ('/', '/listing')
	{
		syswrite($sock, "GET $path HTTP/1.1\r\nHost: x\r\n\r\n");
		my $buf = '';
		my $deadline = time + 5;
		while (time < $deadline)
		{
			my $n = sysread($sock, $buf, 4096, length $buf);
			last unless $n;
			if ($buf =~ /\r\n\r\n/ && $buf =~ /Content-Length: (\d+)/i)
			{
				my $len = $1;
				my ($head, $rest) = split /\r\n\r\n/, $buf, 2;
				last if length($rest) >= $len;
			}
		}
		push @got, $buf;
	}
	like($got[0], qr{^HTTP/1.1 200.*<h1>home</h1>}s, 'keep-alive: first response');
	like($got[1], qr{^HTTP/1.1 200.*<h1>listing page</h1>}s, 'keep-alive: second response on the same connection');
}
$r = $srv->request('GET', '/api/rpc/listing?id=1');
is($r->{status}, 200, 'API still answers after the limits');
ok($srv->is_running, 'server alive');
is($srv->stop, 0, 'server exits 0');

done_testing();
