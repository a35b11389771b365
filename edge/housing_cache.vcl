# housing_cache's HTTP edge: Varnish 7.1 in front of the API.
#
# The contract is edge/README.md; this file implements its caching rule:
#
#   An answer from the origin is stored only if its X-HC-Stamp "E/s" has
#   the purger's epoch E and s >= M, the greatest seq purged so far, while
#   a purger vouches for this edge (X-HC-Alive-For).  Every purge done so
#   far was then for a commit the answer already contains, and every later
#   purge finds it in the cache.  While no purger vouches (never started,
#   dead, lost Redis, heartbeats stopped), nothing is stored and nothing is
#   served from the cache: every request is passed to the origin.
#
# Epoch, M and the vouching deadline live in vmod_var globals, set by the
# purger's PURGE requests (hc_purge below): they outlive a VCL reload, not a
# restart of varnishd, after which the edge is empty and waits for the next
# vouching PURGE (at least one a second).
#
# What is cached: GET and HEAD of /api/rpc/*, keyed by URL and Accept, for
# s-maxage seconds, with no grace and no keep (no stale answers, no
# revalidation with the origin).  If-None-Match is answered here from the
# cached object's ETag.  Passed, never cached: other methods (writes), any
# request with Authorization, Cookie or X-Min-LSN (a session that must read
# its own writes), and /api/events (server-sent events, streamed).  A
# request with X-HC-Min-Stamp "E/n" (a browser revalidating after an event
# whose id is E/n) is answered from the cache only if the cached answer's
# stamp is at least E/n, else passed to the origin's primary.
#
# The addresses come from the environment when varnishd starts: edge/run
# writes housing_cache_env.vcl (backends hc_primary and hc_read, acl
# purgers, sub hc_backend_url) into a directory on vcl_path.  See
# edge/README.md, "Running the edge".

vcl 4.1;

import std;
import var;
import xkey;

include "housing_cache_env.vcl";

# --- requests ---------------------------------------------------------------

sub vcl_recv {
	# only this edge says that a fetch is its own
	unset req.http.X-HC-Edge-Fetch;

	if (req.method == "PURGE") {
		call hc_purge;
	}
	if (req.method != "GET" && req.method != "HEAD" && req.method != "POST" &&
	    req.method != "PUT" && req.method != "PATCH" && req.method != "DELETE" &&
	    req.method != "OPTIONS") {
		return (synth(405, "Method Not Allowed"));
	}
	if (req.http.host ~ "[[:upper:]]") {
		set req.http.host = req.http.host.lower();
	}

	if (req.url ~ "^/api/events(/|\?|$)") {
		# a stream: as long as the browser keeps it open
		set sess.send_timeout = 1d;
		var.set("hc_reason", "event stream");
		return (pass);
	}
	if (req.method != "GET" && req.method != "HEAD") {
		var.set("hc_reason", "method");
		return (pass);
	}
	if (req.url !~ "^/api/rpc/") {
		var.set("hc_reason", "not an API read");
		return (pass);
	}
	if (req.http.Authorization) {
		var.set("hc_reason", "authorization");
		return (pass);
	}
	if (req.http.Cookie) {
		var.set("hc_reason", "cookie");
		return (pass);
	}
	if (req.http.X-Min-LSN) {
		var.set("hc_reason", "x-min-lsn");
		return (pass);
	}
	if (!(std.real(var.global_get("hc_alive_until"), 0.0) > std.time2real(now, 0.0))) {
		var.set("hc_reason", "no purger vouches");
		return (pass);
	}
	return (hash);
}

sub vcl_hash {
	hash_data(req.url);
	hash_data("accept:" + req.http.Accept);
	return (lookup);
}

sub vcl_hit {
	# A browser told of a change E/n: the cached answer must contain it.
	if (req.http.X-HC-Min-Stamp) {
		if (regsub(obj.http.X-HC-Stamp, "/.*$", "") != regsub(req.http.X-HC-Min-Stamp, "/.*$", "") ||
		    std.integer(regsub(obj.http.X-HC-Stamp, "^[^/]*/", ""), -1) <
		    std.integer(regsub(req.http.X-HC-Min-Stamp, "^[^/]*/", ""), 0)) {
			var.set("hc_reason", "older than x-hc-min-stamp");
			set req.http.X-HC-Edge-Fetch = "1";
			return (pass);
		}
	}
	return (deliver);
}

sub vcl_miss {
	# fetched to be cached: the origin answers from the primary, the only
	# server whose stamps this edge accepts
	set req.http.X-HC-Edge-Fetch = "1";
	return (fetch);
}

# --- purges (the purger, edge/README.md "Purges") ---------------------------

sub hc_purge {
	if (client.ip !~ purgers) {
		return (synth(403, "Forbidden"));
	}
	# Everything, across databases: a ban that every object in the cache now
	# matches (objects stored later do not).
	if (req.http.X-HC-Purge-All == "1") {
		if (!std.ban("obj.status != 0")) {
			return (synth(500, "ban failed: " + std.ban_error()));
		}
		set req.http.X-HC-Purged = "all";
	}
	if (req.http.X-HC-Keys) {
		set req.http.X-HC-Purged = "" + xkey.purge(req.http.X-HC-Keys);
	}
	# After purging: the purger's epoch and the greatest seq purged (M).  A
	# new epoch replaces M; within an epoch M only grows.
	if (req.http.X-HC-Epoch ~ "^[0-9]{1,20}$" && req.http.X-HC-Seq ~ "^[0-9]{1,18}$") {
		if (var.global_get("hc_epoch") != req.http.X-HC-Epoch) {
			var.global_set("hc_epoch", req.http.X-HC-Epoch);
			var.global_set("hc_m", req.http.X-HC-Seq);
		} elsif (std.integer(req.http.X-HC-Seq, 0) > std.integer(var.global_get("hc_m"), 0)) {
			var.global_set("hc_m", req.http.X-HC-Seq);
		}
	}
	# Vouching: until now + S (0 withdraws it at once).
	if (req.http.X-HC-Alive-For ~ "^[0-9]{1,6}(\.[0-9]{1,6})?$") {
		var.global_set("hc_alive_until",
		    "" + (std.time2real(now, 0.0) + std.real(req.http.X-HC-Alive-For, 0.0)));
	}
	return (synth(200, "Purged"));
}

# --- fetches ------------------------------------------------------------------

sub vcl_backend_fetch {
	# The edge's own fetches, writes and retries go to the primary's API;
	# passed reads (sessions, events, and everything while no purger
	# vouches) to the read API, which may be a hot standby's.
	if (bereq.http.X-HC-Edge-Fetch || bereq.retries > 0 ||
	    (bereq.method != "GET" && bereq.method != "HEAD")) {
		set bereq.backend = hc_primary;
	} else {
		set bereq.backend = hc_read;
	}
	if (bereq.url ~ "^/api/events(/|\?|$)") {
		# events may be minutes apart
		set bereq.between_bytes_timeout = 1h;
	}
	call hc_backend_url;
	if (bereq.method == "GET") {
		unset bereq.body;
	}
	return (fetch);
}

sub vcl_backend_response {
	# A read the read API could not answer (a standby down or behind): once
	# more, on the primary.
	if (bereq.uncacheable && bereq.retries == 0 && !bereq.http.X-HC-Edge-Fetch &&
	    (bereq.method == "GET" || bereq.method == "HEAD") &&
	    beresp.status >= 502 && beresp.status <= 504) {
		return (retry);
	}
	if (bereq.uncacheable) {
		# passes: delivered as they come (the event stream included)
		set beresp.do_stream = true;
		return (deliver);
	}
	set beresp.grace = 0s;
	set beresp.keep = 0s;

	if (!beresp.http.X-HC-Stamp) {
		set beresp.http.X-Edge-Reason = "no stamp";
		call hc_uncacheable;
	}
	if (!(std.real(var.global_get("hc_alive_until"), 0.0) > std.time2real(now, 0.0))) {
		set beresp.http.X-Edge-Reason = "no purger vouches";
		call hc_uncacheable;
	}
	if (beresp.http.X-HC-Stamp !~ "^[0-9]{1,20}/[0-9]{1,18}$") {
		set beresp.http.X-Edge-Reason = "malformed stamp";
		call hc_uncacheable;
	}
	if (regsub(beresp.http.X-HC-Stamp, "/.*$", "") != var.global_get("hc_epoch")) {
		set beresp.http.X-Edge-Reason = "stamp of another epoch";
		call hc_uncacheable;
	}
	if (std.integer(regsub(beresp.http.X-HC-Stamp, "^[^/]*/", ""), -1) <
	    std.integer(var.global_get("hc_m"), 0)) {
		set beresp.http.X-Edge-Reason = "stamp older than the last purge";
		call hc_uncacheable;
	}
	# the lifetime is the API's s-maxage, nothing else
	if (beresp.http.Cache-Control !~ "(^|[ ,])s-maxage=[0-9]+") {
		set beresp.http.X-Edge-Reason = "no s-maxage";
		call hc_uncacheable;
	}
	set beresp.ttl = std.duration(regsub(beresp.http.Cache-Control,
	    "^(.*[ ,])?s-maxage=([0-9]+).*$", "\2") + "s", 0s);
	if (beresp.ttl <= 0s) {
		set beresp.http.X-Edge-Reason = "s-maxage=0";
		call hc_uncacheable;
	}
	if (beresp.http.Set-Cookie || beresp.http.Vary == "*" ||
	    beresp.http.Cache-Control ~ "(?i)(^|[ ,])(no-store|private)") {
		set beresp.http.X-Edge-Reason = "private";
		call hc_uncacheable;
	}
	return (deliver);
}

# Not stored; for a second the requests for it go to the origin without
# waiting for one another (hit-for-miss: the next cacheable answer is
# stored).
sub hc_uncacheable {
	set beresp.ttl = 1s;
	set beresp.grace = 0s;
	set beresp.keep = 0s;
	set beresp.uncacheable = true;
	return (deliver);
}

sub vcl_backend_error {
	if (bereq.retries == 0 && !bereq.http.X-HC-Edge-Fetch &&
	    (bereq.method == "GET" || bereq.method == "HEAD")) {
		return (retry);
	}
	# never stored: the next request tries the origin again
	set beresp.ttl = 0s;
	set beresp.grace = 0s;
	set beresp.keep = 0s;
	set beresp.uncacheable = true;
	set beresp.http.Content-Type = "application/json; charset=utf-8";
	set beresp.http.Retry-After = "1";
	set beresp.http.Cache-Control = "no-store";
	set beresp.body = {"{"code":"HCEDGE","message":"the edge could not reach the API","details":null,"hint":null}"};
	return (deliver);
}

# --- answers --------------------------------------------------------------------

sub vcl_deliver {
	# xkey and X-HC-Stamp stay: the web UI reads the keys of what it shows.
	if (obj.uncacheable) {
		set resp.http.X-Edge-Cache = "PASS";
		if (!resp.http.X-Edge-Reason && var.get("hc_reason")) {
			set resp.http.X-Edge-Reason = var.get("hc_reason");
		}
	} elsif (obj.hits > 0) {
		set resp.http.X-Edge-Cache = "HIT";
		set resp.http.X-Cache = "HIT";
	} else {
		set resp.http.X-Edge-Cache = "MISS";
	}
	return (deliver);
}

sub vcl_synth {
	if (req.method == "PURGE") {
		if (req.http.X-HC-Purged) {
			set resp.http.X-HC-Purged = req.http.X-HC-Purged;
		}
		set resp.http.Content-Type = "text/plain; charset=utf-8";
		set resp.body = resp.reason + {"
"};
		return (deliver);
	}
	if (resp.status == 405) {
		set resp.http.Allow = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
	}
	set resp.http.Content-Type = "text/plain; charset=utf-8";
	set resp.body = "" + resp.status + " " + resp.reason + {"
"};
	return (deliver);
}
