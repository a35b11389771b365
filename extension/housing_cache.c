/*-------------------------------------------------------------------------
 *
 * housing_cache.c
 *	  Module entry point: configuration, shared memory and callbacks.
 *
 * The extension works in two modes.  Loaded through shared_preload_libraries
 * it owns a shared memory area (generation counters, stats, the Redis circuit
 * breaker) and caches answers.  Loaded on demand (CREATE EXTENSION without
 * preloading), it has no shared generations to key answers by, so every
 * cached function simply runs its query; it says so once per session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"

#include "housing_cache.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
hc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	HcShmemRequest();
}

static void
hc_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	HcShmemStartup();
}

/*
 * Module load callback.
 */
void
_PG_init(void)
{
	HcDefineGucs();

	if (process_shared_preload_libraries_in_progress)
	{
		/* a custom resource manager can only be registered now */
		HcStandbyRegisterRmgr();
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = hc_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = hc_shmem_startup;
		HcPublisherRegister();
	}

	/* transaction callbacks are registered once, here, for every backend */
	HcInvalidationInit();
	HcCatalogInit();
	HcRegistryInit();
	HcConditionalInit();
}
