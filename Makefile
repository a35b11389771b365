# housing_cache: PGXS build.
#
#   make && make install && make installcheck   (as PostgreSQL users expect)
#   make test        every suite, with its own PostgreSQL and Redis
#   make demo        a local cluster + Redis with 100k listings
#   make demo-stop   stop it

# Two extensions from one tree and one library: housing_cache, the engine,
# and housing_portal, the housing portal built on it (it `requires`
# housing_cache).
EXTENSION = housing_cache housing_portal
MODULE_big = housing_cache
OBJS = \
	extension/housing_cache.o \
	extension/guc.o \
	extension/shmem.o \
	extension/tag.o \
	extension/generation.o \
	extension/key.o \
	extension/value.o \
	extension/redis.o \
	extension/sentinel.o \
	extension/breaker.o \
	extension/l1.o \
	extension/singleflight.o \
	extension/message.o \
	extension/invalidate.o \
	extension/publisher.o \
	extension/edge.o \
	extension/standby.o \
	extension/catalog.o \
	extension/ddl.o \
	extension/registry.o \
	extension/conditional.o \
	extension/fetch.o \
	extension/stats.o \
	extension/httpapi.o \
	portal/listings.o

# Install scripts.  Every released version's scripts stay shipped, so that
# ALTER EXTENSION ... UPDATE works from each; the current version's are
# built from one file per concern (sql/<extension>/), and the update script
# from the previous version is its migration followed by the same code
# (every part but catalog.sql uses CREATE OR REPLACE).  When a version is
# released, its built scripts are committed as they are and new parts go
# into the next version's.
DATA = sql/housing_cache--0.1.0.sql
DATA_built = sql/housing_cache--0.2.0.sql sql/housing_cache--0.1.0--0.2.0.sql \
	sql/housing_portal--0.2.0.sql
ENGINE_SQL = $(addprefix sql/housing_cache/, invalidation.sql watch.sql ddl.sql \
	queries.sql stats.sql http.sql objects.sql)
PORTAL_SQL = $(addprefix sql/housing_portal/, install.sql adopt.sql listings.sql \
	sample.sql data.sql api.sql roles.sql)
PGFILEDESC = "housing_cache - tiered, transactionally invalidated query cache"

SHLIB_LINK = -lhiredis -lcrypto
PG_CPPFLAGS = -I$(srcdir)/extension
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

# pg_regress runs on its own temporary, preloaded instance; HC_REGRESS_CONF
# lets the test driver point it at the Redis it started.
HC_REGRESS_CONF ?= test/regress.conf
REGRESS_OPTS_DIRS = --inputdir=test --outputdir=test
REGRESS = setup listings engine invalidation own_writes tag_spelling edge fragments ddl security keys hardening guc bad_input
REGRESS_OPTS = $(REGRESS_OPTS_DIRS) --temp-instance=$(CURDIR)/tmp_check/regress \
	--temp-config=$(HC_REGRESS_CONF)

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
PROVE_FLAGS = -I test/perl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/housing_cache--0.2.0.sql: sql/housing_cache/install.sql sql/housing_cache/catalog.sql \
		sql/housing_cache/replication.sql $(ENGINE_SQL)
	cat $^ > $@

sql/housing_cache--0.1.0--0.2.0.sql: sql/housing_cache/update-0.1.0.sql \
		sql/housing_cache/replication.sql $(ENGINE_SQL)
	cat $^ > $@

sql/housing_portal--0.2.0.sql: $(PORTAL_SQL)
	cat $^ > $@

.PHONY: test demo demo-stop

test:
	scripts/test

demo:
	scripts/demo start

demo-stop:
	scripts/demo stop

# One suite at a time (scripts/test runs them separately so that each gets
# its own Redis and its own verdict); `make installcheck` still runs both.
.PHONY: installcheck-regress installcheck-tap

installcheck-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

installcheck-tap:
	$(prove_installcheck)

# pg_regress creates its --temp-instance directory but not the parent.
.PHONY: hc-tmp-check
hc-tmp-check:
	@$(MKDIR_P) tmp_check
installcheck installcheck-regress: hc-tmp-check

# Makefile.global resets PROVE_FLAGS (it is for the user's own flags, e.g.
# `make installcheck PROVE_FLAGS=--verbose`), so the setting above is lost:
# the path of our test modules goes with PGXS's own -I flags instead.
PG_PROVE_FLAGS += -I $(srcdir)/test/perl

# PGXS tracks no header dependencies unless PostgreSQL was configured with
# --enable-depend; every module includes the one shared header.
$(OBJS): extension/housing_cache.h
extension/guc.o: extension/settings.h

# The development HTTP server, http/hc_http (see http/README.md); `make demo`
# builds and starts it too.
.PHONY: http
http:
	$(MAKE) -C http

# The HTTP edge's purger, purger/hc_purger (see purger/README.md and
# edge/README.md); `make demo` builds and starts it, with Varnish.
.PHONY: purger
purger:
	$(MAKE) -C purger

# The benchmark suite (see bench/README.md): `make bench` on 1M listings
# writes bench/results/REPORT.md; `make bench-smoke` runs the same code on
# tiny data (part of `make test`).
.PHONY: bench bench-smoke
bench:
	bench/run

bench-smoke:
	bench/run --smoke

# Fuzzing (fuzz/README.md): each libFuzzer harness for FUZZ_TIME seconds
# (default 20), failing on any crash or sanitizer report; `make test` runs
# them for 10 s each (the fuzz suite).
.PHONY: fuzz valgrind
fuzz:
	$(MAKE) -C fuzz run

# The regress and tap suites with every server process under Valgrind
# Memcheck (test/valgrind/README.md); opt-in, it takes hours.
valgrind:
	HC_SUITES=valgrind scripts/test
