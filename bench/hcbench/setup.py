"""Servers and data shared by every workload.

  redis   one Redis, L2 of both PostgreSQL servers
  pg_a    PostgreSQL with housing_cache as configured by default (L1 + L2)
  pg_b    a copy of pg_a's cluster with housing_cache.l1_size_mb = 0 (L2 only),
          running at the same time, so L2-only runs alternate with the others
  pgpool  pgpool-II in front of pg_a, memory_cache_enabled = on, shmem
  pg_s    a streaming hot standby of pg_a (pg_basebackup -R), with pg_a's
          settings; started by the standby workload for its own duration
          (standby.py), stopped like the others on failure or interrupt
"""

import os
import time

from .pgbench import Runner
from .procs import Pgpool, Postgres, Redis, log

# Cities in the order of their share of listings (generate_listings' weights):
# rank 1 is the most listed, which random_zipfian draws most often.
CITIES = ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia",
          "San Antonio", "San Diego", "Dallas", "Austin", "Boston", "Denver", "Seattle",
          "Miami", "Portland", "Atlanta", "Nashville", "Minneapolis", "Detroit", "San Francisco"]

# The newest-first search as one query (test/sql/fragments.sql's whole(): the
# portal's search before it was composed), parameters as the portal's
# registered searches take them: city, min/max price, min bedrooms, page,
# page size.  bench/seed/seed/views.py runs the same SQL.
WHOLE_FILTER = ("status = 'active' AND ($1 IS NULL OR city = $1) "
                "AND ($2 IS NULL OR price_cents >= $2) AND ($3 IS NULL OR price_cents <= $3) "
                "AND ($4 IS NULL OR bedrooms >= $4)")
WHOLE_NEWEST_SQL = """SELECT json_build_object(
    'total', (SELECT count(*) FROM housing.listings WHERE %(f)s),
    'page', $5, 'page_size', $6,
    'items', coalesce((
        SELECT json_agg(i ORDER BY i.created_at DESC, i.id DESC)
          FROM (SELECT id, title, city, neighborhood, price_cents, bedrooms,
                       bathrooms, area_sqm, lat, lon, created_at
                  FROM housing.listings WHERE %(f)s ORDER BY created_at DESC, id DESC
                 LIMIT $6 OFFSET ($5 - 1) * $6) i), '[]'::json))""" % {"f": WHOLE_FILTER}

# The hot search of the portal, and its row form (what pgpool-II can cache).
SEARCH_SQL = ("housing_cache.search_listings(city => 'Boston', min_bedrooms => 2, "
              "sort => 'price_asc')")
SEARCH_ROWS_SQL = ("SELECT id, title, city, neighborhood, price_cents, bedrooms, bathrooms, "
                   "area_sqm, lat, lon, created_at FROM housing.listings "
                   "WHERE status = 'active' AND city = 'Boston' AND bedrooms >= 2 "
                   "ORDER BY price_cents, id LIMIT 20")
LISTING_SQL = "housing_cache.get_listing(42)"
STATS_SQL = "housing_cache.city_stats('Boston')"

QUERIES = [("search", SEARCH_SQL), ("listing", LISTING_SQL), ("stats", STATS_SQL)]


def pg_settings(cfg, redis_port):
    s = {
        "shared_preload_libraries": "housing_cache",
        "housing_cache.redis_host": "127.0.0.1",
        "housing_cache.redis_port": redis_port,
        "shared_buffers": cfg.shared_buffers,
        "effective_cache_size": "4GB",
        "work_mem": "32MB",
        "maintenance_work_mem": "512MB",
        "max_connections": 200,
        # the write workloads measure the CPU path of a commit, not fsync
        "synchronous_commit": "off",
        "max_wal_size": "8GB",
        "checkpoint_timeout": "30min",
        # JIT compiles the uncached 1M-row aggregates differently from run to run
        "jit": "off",
        "log_min_messages": "warning",
        "log_checkpoints": "off",
    }
    # BENCH_PG_SETTINGS="name=value;name=value": more settings for both
    # servers, for experiments (e.g. housing_cache.generation_slots=1048576)
    for item in os.environ.get("BENCH_PG_SETTINGS", "").split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            s[k.strip()] = v.strip()
    return s


BENCH_SCHEMA = r"""
CREATE SCHEMA bench;

-- Answers of a chosen size for the value-size scaling: the answer of
-- bench.blob for id = n is a JSON string of exactly size bytes (hex text,
-- stored uncompressed so that reading it costs what its size costs).
CREATE TABLE bench.blobs (id int PRIMARY KEY, size int NOT NULL, payload text NOT NULL);
ALTER TABLE bench.blobs ALTER payload SET STORAGE EXTERNAL;
INSERT INTO bench.blobs
SELECT row_number() OVER (ORDER BY s), s,
       left(repeat(md5(s::text), s / 32 + 1), s - 2)
  FROM unnest(%(sizes)s::int[]) AS s;
SELECT housing_cache.watch_table('bench.blobs');
SELECT housing_cache.register_query(
    'bench.blob',
    $q$SELECT to_json(b.payload) FROM bench.blobs b WHERE b.id = $1$q$,
    '{int}', '{bench.blobs/id=$1}');

-- The newest-first search computed whole, as one query (the portal's search
-- before it was composed: test/sql/fragments.sql's whole()), registered twice
-- for the mixed and fragments workloads: tagged per city, and with the table
-- tag only.  Their readers run with housing_cache.column_tags = off, so that
-- they behave as answers did before column-aware tags.
SELECT housing_cache.register_query('bench.whole_city', %(whole)s,
                                    '{text,bigint,bigint,integer,integer,integer}',
                                    '{housing.listings/city=$1}');
SELECT housing_cache.register_query('bench.whole_table', %(whole)s,
                                    '{text,bigint,bigint,integer,integer,integer}',
                                    '{housing.listings}');

-- The mixed workload's readers count here the reads that were not served
-- from the cache whole (a miss, a bypass, or a fragment computed): one
-- nextval() per such read, none per clean one.
CREATE UNLOGGED SEQUENCE bench.dirty_reads;

-- The seed stack's role (bench/seed: Django reading the same table).
DO $r$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_seed') THEN
        CREATE ROLE bench_seed LOGIN;
    END IF;
END $r$;
GRANT USAGE ON SCHEMA housing TO bench_seed;
GRANT SELECT ON housing.listings TO bench_seed;
"""


class Context:
    def __init__(self, cfg, procs):
        self.cfg = cfg
        self.procs = procs
        self.scratch = procs.scratch
        self.work = procs.mkdir(os.path.join(procs.scratch, "pgbench"))
        self.runner = Runner(self.work, cfg.length)
        self.redis = None
        self.pg_a = None
        self.pg_b = None
        self.pgpool = None
        self.pg_s = None
        self.settings = None
        self.setup_s = {}
        self.facts = {}

    def timed(self, what, fn):
        t = time.time()
        fn()
        self.setup_s[what] = time.time() - t

    def start(self):
        cfg = self.cfg
        self.redis = Redis(self.procs, "redis")
        self.redis.start()
        log("Redis on 127.0.0.1:%d" % self.redis.port)

        settings = self.settings = pg_settings(cfg, self.redis.port)
        self.pg_a = Postgres(self.procs, "pg_a", settings)
        self.pg_a.initdb()
        self.pg_a.start()
        log("PostgreSQL A (L1 + L2) on 127.0.0.1:%d" % self.pg_a.port)
        a = self.pg_a
        a.psql("CREATE DATABASE housing", db="postgres")
        a.psql("CREATE EXTENSION housing_portal CASCADE")
        log("generating %d listings" % cfg.rows)
        self.timed("generate %d listings" % cfg.rows,
                   lambda: a.psql("SELECT housing_cache.generate_listings(%d)" % cfg.rows))
        self.timed("VACUUM ANALYZE", lambda: a.psql("VACUUM ANALYZE housing.listings"))
        sizes = "'{%s}'" % ",".join(str(k * 1024) for k in cfg.value_sizes_kib)
        a.psql(BENCH_SCHEMA % {"sizes": sizes,
                               "whole": "$w$%s$w$" % WHOLE_NEWEST_SQL})
        a.psql("VACUUM ANALYZE bench.blobs")
        a.psql("CHECKPOINT")

        # B: the same cluster, copied while A is stopped, without L1
        a.stop()
        # B publishes on a channel of its own: it is a copy of A's cluster
        # (the same system identifier), and a purger following A's messages
        # (the edge workload) must not hear B's heartbeats as A's
        self.pg_b = Postgres(self.procs, "pg_b", dict(settings, **{
            "housing_cache.l1_size_mb": 0, "housing_cache.channel": "housing_cache:bench-B"}))
        self.timed("copy the cluster for B", lambda: self.pg_b.copy_from(a))
        a.start()
        self.pg_b.start()
        log("PostgreSQL B (L2 only) on 127.0.0.1:%d" % self.pg_b.port)

        for n in cfg.table_sizes:
            if n == cfg.rows:
                continue
            db = "housing_%d" % n
            log("generating %d listings in %s" % (n, db))
            a.psql("CREATE DATABASE %s" % db, db="postgres")
            a.psql("CREATE EXTENSION housing_portal CASCADE", db=db)
            a.psql("SELECT housing_cache.generate_listings(%d)" % n, db=db)
            a.psql("VACUUM ANALYZE housing.listings", db=db)

        self.pgpool = Pgpool(self.procs, "pgpool", a.port)
        self.pgpool.start()
        log("pgpool-II on 127.0.0.1:%d (backend A)" % self.pgpool.port)

        self.facts["rows"] = int(a.psql("SELECT count(*) FROM housing.listings"))
        self.facts["table_size"] = a.psql(
            "SELECT pg_size_pretty(pg_total_relation_size('housing.listings'))")
        self.facts["boston_listing_id"] = int(a.psql(
            "SELECT min(id) FROM housing.listings WHERE city = 'Boston'"))
        self.facts["postgres_version"] = a.psql("SHOW server_version")
        self.facts["redis_version"] = self.redis_version()
        self.facts["pgpool_version"] = os.popen("pgpool --version 2>&1").read().strip()

    def redis_version(self):
        out = os.popen("redis-cli -h 127.0.0.1 -p %d INFO server" % self.redis.port).read()
        for line in out.splitlines():
            if line.startswith("redis_version:"):
                return line.split(":", 1)[1].strip()
        return "?"

    def db_for_size(self, n):
        return "housing" if n == self.cfg.rows else "housing_%d" % n
