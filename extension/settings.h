/*-------------------------------------------------------------------------
 *
 * settings.h
 *	  Every configuration parameter of housing_cache, listed once: its C
 *	  variable, the variable's C type and its default.
 *
 * The list is an X-macro: HC_SETTINGS(X) expands to one X(kind, type,
 * variable, default) per setting, kind being BOOL, INT, REAL or STRING.
 * Whoever defines the variables expands it:
 *
 *	  guc.c			defines them for the server (a STRING starts NULL and
 *					gets its default from DefineCustomStringVariable, like
 *					every other setting's default, from this list);
 *	  fuzz/shim.c	defines them for the fuzzers, at the same defaults, so
 *					that they run the configuration the server starts with.
 *
 * A default therefore lives here only.  The names, descriptions, bounds,
 * contexts, flags and hooks of the settings are in guc.c; the extern
 * declarations in housing_cache.h (a definition made from this list whose
 * type differs from its declaration does not compile).
 *
 *-------------------------------------------------------------------------
 */
#ifndef HC_SETTINGS_H
#define HC_SETTINGS_H

#define HC_SETTINGS(X) \
	X(BOOL,   bool,   hc_enabled,                  true) \
	X(STRING, char *, hc_redis_host,               "127.0.0.1") \
	X(INT,    int,    hc_redis_port,               6379) \
	X(STRING, char *, hc_redis_password,           "") \
	X(STRING, char *, hc_redis_password_file,      "") \
	X(STRING, char *, hc_redis_sentinels,          "") \
	X(STRING, char *, hc_redis_sentinel_master,    "mymaster") \
	X(STRING, char *, hc_redis_sentinel_password,  "") \
	X(STRING, char *, hc_redis_sentinel_password_file, "") \
	X(INT,    int,    hc_redis_db,                 0) \
	X(INT,    int,    hc_redis_connect_timeout_ms, 200) \
	X(INT,    int,    hc_redis_command_timeout_ms, 100) \
	X(INT,    int,    hc_default_ttl,              300) \
	X(INT,    int,    hc_ttl_jitter_pct,           10) \
	X(INT,    int,    hc_max_value_bytes,          1024 * 1024) \
	X(STRING, char *, hc_key_prefix,               "hc:") \
	X(STRING, char *, hc_channel,                  "housing_cache:invalidations") \
	X(BOOL,   bool,   hc_publish,                  true) \
	X(INT,    int,    hc_publish_max_tags,         256) \
	X(INT,    int,    hc_generation_slots,         1048576) \
	X(INT,    int,    hc_breaker_backoff_ms,       500) \
	X(INT,    int,    hc_breaker_max_backoff_ms,   30000) \
	X(INT,    int,    hc_l1_size_mb,               64) \
	X(INT,    int,    hc_l1_max_value_bytes,       256 * 1024) \
	X(BOOL,   bool,   hc_single_flight,            true) \
	X(BOOL,   bool,   hc_column_tags,              true) \
	X(INT,    int,    hc_fill_wait_ms,             5000) \
	X(REAL,   double, hc_xfetch_beta,              1.0) \
	X(INT,    int,    hc_escalate_rows,            10000) \
	X(STRING, char *, hc_value_secret,             "") \
	X(STRING, char *, hc_value_secret_file,        "") \
	X(INT,    int,    hc_http_max_age,             5) \
	X(INT,    int,    hc_http_shared_max_age,      3600) \
	X(INT,    int,    hc_heartbeat_ms,             1000) \
	X(INT,    int,    hc_publish_queue_kb,         1024) \
	X(INT,    int,    hc_publish_batch_ms,         1) \
	X(INT,    int,    hc_wal_rmgr_id,              128) \
	X(STRING, char *, hc_min_lsn,                  "") \
	X(INT,    int,    hc_min_lsn_wait_ms,          1000)

#endif							/* HC_SETTINGS_H */
