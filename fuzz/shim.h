/*-------------------------------------------------------------------------
 *
 * shim.h
 *	  Just enough of the PostgreSQL backend to run housing_cache's pure code
 *	  (value.c, key.c, tag.c, generation.c, conditional.c, the template
 *	  parser of registry.c, message.c, invalidate.c) in a fuzzer process.
 *
 * The shim provides: memory contexts over malloc (every chunk is a separate
 * malloc, so AddressSanitizer sees the exact size of each palloc), the
 * ereport machinery (an ERROR longjmps to the innermost PG_TRY, exactly as
 * in a backend; FATAL, PANIC, an ERROR outside PG_TRY or a failed Assert
 * abort), StringInfo, and the globals the extension reads (hc_shared,
 * MyDatabaseId, ... and every setting, defined from extension/settings.h at
 * its production default).  HMAC and SHA-256 come from PostgreSQL's own
 * frontend libpgcommon.a.
 *
 *-------------------------------------------------------------------------
 */
#ifndef HC_FUZZ_SHIM_H
#define HC_FUZZ_SHIM_H

#include "postgres.h"

#include "utils/memutils.h"

#include "../extension/housing_cache.h"

/*
 * Set up the globals; call once, from LLVMFuzzerInitialize or the first run.
 * hc_shared gets hc_generation_slots generation slots (the setting's
 * default, unless the harness changed it before this call), a fixed epoch
 * and a fixed HMAC key.
 */
extern void shim_init(void);

/*
 * A memory context for one fuzz input: shim_begin() makes a fresh one
 * current, shim_end() frees everything allocated in it.
 */
extern void shim_begin(void);
extern void shim_end(void);

/* the error of the last ereport(ERROR) caught, or "" */
extern const char *shim_last_error(void);
extern int	shim_last_sqlstate(void);

/* every palloc'd chunk still alive in a context (for leak assertions) */
extern long shim_context_chunks(MemoryContext cxt);

/* abort with a message: the fuzzer records a crash and the input */
#define SHIM_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			shim_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

extern void shim_fail(const char *file, int line, const char *cond,
					  const char *fmt,...) pg_attribute_printf(4, 5) pg_attribute_noreturn();

/* Run stmt; true if it raised an ERROR (caught, state flushed). */
#define SHIM_CATCH_ERROR(stmt) \
	({ \
		volatile bool shim_raised_ = false; \
		PG_TRY(); \
		{ \
			stmt; \
		} \
		PG_CATCH(); \
		{ \
			shim_raised_ = true; \
			FlushErrorState(); \
		} \
		PG_END_TRY(); \
		shim_raised_; \
	})

#endif							/* HC_FUZZ_SHIM_H */
