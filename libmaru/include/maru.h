/*
 * maru.h — C ABI of libmaru, the Maru client library.
 *
 * Maru shares KV-cache chunks between processes through files in a pool
 * directory of the maru-fs mount (e.g. /mnt/maru/<pool>). A writer creates a
 * staging chunk, fills it through a read-write mapping and publishes it under a
 * key (first writer wins). Readers map published chunks read-only; every
 * process that maps a chunk sees the same physical pages (no copy).
 *
 * Link with -lmaru (libmaru.so, built by `cargo build -p libmaru`).
 *
 * Conventions (every function):
 *   - Functions returning `int` return 0 (or a non-negative count) on success
 *     and a negative errno value (-ENOENT, -EEXIST, -EACCES, ...) on failure.
 *     After a failure, maru_last_error() describes what failed and on which
 *     object. Functions returning a pointer or void never fail unless stated.
 *   - Keys are arbitrary byte strings given as (pointer, length); they may
 *     contain '/', NUL and any other byte; at most MARU_KEY_MAX bytes.
 *     libmaru escapes them reversibly into file names (see maru_key_escape and
 *     docs/libmaru.md).
 *   - Batch functions take n keys packed into one buffer: `keys` holds the
 *     keys back to back and `key_lens[i]` is the length of the i-th key.
 *   - Handles (maru_pool, maru_chunk, maru_view, maru_key_list) are opaque.
 *     A handle may be used from any thread, but must not be freed while
 *     another thread uses it. Chunks and views keep what they need of their
 *     pool alive: they stay valid after maru_pool_close().
 *   - NULL handle arguments are rejected with -EINVAL (never a crash).
 */
#ifndef MARU_H
#define MARU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Version of this ABI; bumped on any incompatible change. */
#define MARU_ABI_VERSION 1

/** Longest key, in bytes, that libmaru accepts (-ENAMETOOLONG above). */
#define MARU_KEY_MAX 4000

/** Longest escaped file name (a pool entry name), in bytes, without NUL. */
#define MARU_NAME_MAX 255

/** An open pool directory. */
typedef struct maru_pool maru_pool;
/** A writable staging chunk (read-write mapping) until published or freed. */
typedef struct maru_chunk maru_chunk;
/** A read-only mapping of a published chunk; pins the chunk while it lives. */
typedef struct maru_view maru_view;
/** A snapshot of the keys published in a pool (see maru_list_keys). */
typedef struct maru_key_list maru_key_list;

/* ------------------------------------------------------------------ */
/* Library                                                              */
/* ------------------------------------------------------------------ */

/** Returns MARU_ABI_VERSION of the library actually loaded. */
uint32_t maru_abi_version(void);

/**
 * Message describing the last failure of a maru_* call on the calling
 * thread ("" if none yet). The pointer is valid until the next maru_* call
 * on the same thread; copy it to keep it.
 */
const char *maru_last_error(void);

/* ------------------------------------------------------------------ */
/* Pools                                                                */
/* ------------------------------------------------------------------ */

/**
 * Opens the pool directory `path` (NUL-terminated, e.g. "/mnt/maru/llama").
 * On success stores the handle in *out and returns 0. Every chunk and view
 * holds one file descriptor, so the first open raises the process's soft
 * RLIMIT_NOFILE to its hard limit.
 * Errors: -ENOENT (no such directory), -ENOTDIR, -EACCES (no permission on
 * the pool directory), -EINVAL (NULL argument).
 */
int maru_pool_open(const char *path, maru_pool **out);

/**
 * Releases the caller's pool handle. Chunks and views obtained from it stay
 * valid until they are freed/released themselves. NULL is ignored.
 */
void maru_pool_close(maru_pool *pool);

/**
 * Keeps up to `max_views` released views of this pool mapped (least recently
 * used dropped first), so getting the same key again costs one stat and
 * returns the same mapping, already CUDA-registered if it was before.
 * Published chunks are immutable and the chunk's inode is checked on every
 * hit, so a removed and republished key is never served stale. Cached
 * mappings keep their chunks pinned (not evictable); maru_remove() drops the
 * key's entry. 0 (the default) disables the cache and drops its entries.
 * Returns 0, or -EINVAL for a NULL pool.
 */
int maru_pool_set_view_cache(maru_pool *pool, size_t max_views);

/* ------------------------------------------------------------------ */
/* Staging chunks (writer side)                                         */
/* ------------------------------------------------------------------ */

/**
 * Creates staging chunks of `size` bytes ahead of need until the pool holds
 * `count` of that size (created, sized, mapped and pre-faulted as by
 * maru_chunk_create). maru_chunk_create() and maru_store() of that size then
 * take one instead of creating a file, so a store costs the copy and one
 * publish. Reserved chunks are charged to the pool; maru_pool_clear_reserve()
 * or maru_pool_close() of the last handle removes them.
 * Returns the number of reserved chunks of `size` (>= 0), or errors as
 * maru_chunk_create.
 */
int maru_pool_reserve(maru_pool *pool, size_t size, size_t count);

/** Removes every reserved chunk of the pool. Returns 0, or -EINVAL. */
int maru_pool_clear_reserve(maru_pool *pool);

/** maru_info.fields: which members the pool shows. */
#define MARU_INFO_CAPACITY 1u
#define MARU_INFO_USED 2u
#define MARU_INFO_ONLINE 4u
#define MARU_INFO_NODE 8u

/** A pool's capacity, use, state and NUMA node, as maru-fs shows them. */
typedef struct maru_info {
    uint64_t capacity; /**< bytes (MARU_INFO_CAPACITY) */
    uint64_t used;     /**< bytes charged to the pool (MARU_INFO_USED) */
    uint32_t fields;   /**< MARU_INFO_* bits: the members that are set */
    int32_t online;    /**< 1 online, 0 offline (MARU_INFO_ONLINE) */
    int32_t node;      /**< NUMA node, -1 if not known (MARU_INFO_NODE) */
} maru_info;

/**
 * Fills *out with what maru-fs shows about the pool now (read through the
 * pool's path: a pool removed since maru_pool_open fails with -ENOENT). A
 * plain directory shows nothing: fields is 0. Returns 0, or -errno.
 */
int maru_pool_info(maru_pool *pool, maru_info *out);

/**
 * The number of open descriptors (pins, all processes) of the chunk
 * published under the key, as maru-fs counts them, read without opening
 * (pinning) it. Returns the count, -ENOENT if there is no such key,
 * -ENODATA or -EOPNOTSUPP where the pool does not count pins (not maru-fs).
 */
int maru_pins(maru_pool *pool, const void *key, size_t key_len);

/**
 * Creates a staging chunk of `size` bytes (> 0) in the pool: a hidden
 * staging file, sized (the pool charges the size now), mapped read-write
 * and pre-faulted (its pages are allocated now). The chunk keeps its file
 * open (one file descriptor) until freed: with FUSE passthrough that open
 * file, not the mapping, is what keeps the chunk alive in the pool.
 * Mappings of 2 MiB or more are 2 MiB-aligned so the pool's huge pages are
 * mapped as huge pages. To store bytes that are not already in a chunk,
 * maru_store() is cheaper (no mapping).
 * On success stores the handle in *out and, when `data`/`len` are not NULL,
 * the mapping's address and length (== size). Returns 0.
 * Errors: -ENOSPC (pool full), -EFBIG (above the pool's max chunk size),
 * -ENODEV (pool offline), -EACCES (no write permission), -EINVAL (size 0).
 */
int maru_chunk_create(maru_pool *pool, size_t size, maru_chunk **out,
                      void **data, size_t *len);

/** Address of the chunk's read-write mapping (NULL if chunk is NULL). */
void *maru_chunk_data(const maru_chunk *chunk);

/** Length in bytes of the chunk's mapping (0 if chunk is NULL). */
size_t maru_chunk_len(const maru_chunk *chunk);

/**
 * Copies `len` bytes from `data` into the chunk at byte `offset` (before
 * publishing): for callers that do not write through maru_chunk_data().
 * Returns 0, or -EINVAL if the range is not inside the chunk, an argument
 * is NULL, or the chunk was already published (or aborted).
 */
int maru_chunk_write(maru_chunk *chunk, size_t offset, const void *data,
                     size_t len);

/**
 * Publishes the chunk under `key` (atomic rename, no replace). Publish only
 * what is completely written: readers may map it at once.
 * Returns 0 when published; -EEXIST when the key already existed (first
 * writer wins: this chunk's staging file is removed and its space freed).
 * In both cases the handle and its mapping stay valid until
 * maru_chunk_free(); after publishing, the writer must not modify the bytes
 * any more. Keys longer than a file name allows are stored under a hashed
 * name plus the xattr user.maru.key (transparent to every maru_* call).
 * Errors: -EINVAL (already published or aborted, NULL argument),
 * -ENAMETOOLONG (key > MARU_KEY_MAX), -EACCES, -ENOENT (staging file was
 * reclaimed, e.g. the pool was removed).
 */
int maru_chunk_publish(maru_chunk *chunk, const void *key, size_t key_len);

/**
 * Copies `len` bytes (> 0) from `data` into a new chunk with write(2) and
 * publishes it under `key`, in one call and without mapping anything: the
 * cheapest way to store bytes that are not already in a chunk.
 * Returns 0 when published, -EEXIST when the key already existed (first
 * writer wins; nothing stored). Other errors as maru_chunk_create and
 * maru_chunk_publish.
 */
int maru_store(maru_pool *pool, const void *key, size_t key_len,
               const void *data, size_t len);

/**
 * Unmaps and frees the chunk handle. An unpublished staging chunk is
 * aborted: its staging file is removed and its space returned to the pool.
 * A published chunk stays published. NULL is ignored.
 */
void maru_chunk_free(maru_chunk *chunk);

/* ------------------------------------------------------------------ */
/* Reading published chunks                                             */
/* ------------------------------------------------------------------ */

/**
 * Looks up `key` and maps the published chunk read-only (2 MiB-aligned when
 * 2 MiB or larger, so huge pages map as huge pages). Pages are faulted in
 * lazily on first access; call maru_view_prefault() to fault them in now.
 * The chunk is pinned (never evicted) while the view lives: the view keeps
 * the chunk's file open (one file descriptor per view). No bytes are copied.
 * On success stores the view in *out and, when not NULL, the mapping's
 * address in *data and its length in *len. Returns 0.
 * Errors: -ENOENT (no such key), -EACCES, -ENAMETOOLONG.
 */
int maru_get(maru_pool *pool, const void *key, size_t key_len,
             maru_view **out, const void **data, size_t *len);

/** Address of the view's read-only mapping (NULL if view is NULL). */
const void *maru_view_data(const maru_view *view);

/** Length in bytes of the view's mapping (0 if view is NULL). */
size_t maru_view_len(const maru_view *view);

/**
 * Unmaps the view (unregistering it from CUDA first if it was registered)
 * and drops its pin. NULL is ignored.
 */
void maru_view_release(maru_view *view);

/**
 * Whether `key` is published: returns 1 (present), 0 (absent) or -errno.
 * One stat of a cached name: no mapping, no pin.
 */
int maru_contains(maru_pool *pool, const void *key, size_t key_len);

/**
 * Removes the key from the pool. Processes that map the chunk keep their
 * mapping; its space returns when the last one lets go.
 * Returns 0, or -ENOENT (no such key), -EACCES, -EBUSY (refused by the
 * pool, e.g. pinned and the pool's policy forbids it).
 */
int maru_remove(maru_pool *pool, const void *key, size_t key_len);

/* ------------------------------------------------------------------ */
/* Batch and prefix operations (keys packed, see Conventions)           */
/* ------------------------------------------------------------------ */

/**
 * For each of the n keys stores 1 (present) or 0 (absent) in present[i].
 * Returns the number of present keys, or -errno (then present[] is
 * unspecified).
 */
int maru_batch_contains(maru_pool *pool, const uint8_t *keys,
                        const size_t *key_lens, size_t n, uint8_t *present);

/**
 * Gets each of the n keys: views[i] receives a view, or NULL when the key
 * is absent. When `data`/`lens` are not NULL, data[i]/lens[i] receive the
 * mapping's address/length (NULL/0 when absent).
 * Returns the number of views obtained (each must be released), or -errno
 * on any failure other than an absent key (then no view is held).
 */
int maru_batch_get(maru_pool *pool, const uint8_t *keys,
                   const size_t *key_lens, size_t n, maru_view **views,
                   const void **data, size_t *lens);

/**
 * Counts how many of the n keys are present from the first one on,
 * stopping at the first absent key (what a prefix-cache lookup needs).
 * When `views` is not NULL the present prefix is also mapped and pinned:
 * views[i] receives a view for i < result and NULL for i >= result (a key
 * removed between the check and the mapping ends the prefix there).
 * Returns the prefix length (0..n) or -errno (then no view is held).
 */
int maru_prefix_contains(maru_pool *pool, const uint8_t *keys,
                         const size_t *key_lens, size_t n, maru_view **views);

/* ------------------------------------------------------------------ */
/* Listing                                                              */
/* ------------------------------------------------------------------ */

/**
 * Takes a snapshot of the keys published in the pool (staging files are
 * not listed; names that are not valid escaped keys are skipped).
 * Stores the list in *out and returns the number of keys, or -errno.
 */
int maru_list_keys(maru_pool *pool, maru_key_list **out);

/** Number of keys in the list (0 if list is NULL). */
size_t maru_key_list_count(const maru_key_list *list);

/**
 * The i-th key (original bytes, not NUL-terminated); its length in *len.
 * Returns NULL (and *len = 0) when i is out of range. Valid until the list
 * is freed.
 */
const uint8_t *maru_key_list_key(const maru_key_list *list, size_t i,
                                 size_t *len);

/** Frees the list. NULL is ignored. */
void maru_key_list_free(maru_key_list *list);

/* ------------------------------------------------------------------ */
/* Key names                                                            */
/* ------------------------------------------------------------------ */

/**
 * Escapes `key` into the file name libmaru uses for it in a pool.
 * Writes at most out_cap bytes including a terminating NUL; a buffer of
 * MARU_NAME_MAX + 1 bytes is always enough. Returns the name's length
 * (without NUL; if >= out_cap nothing useful was written), or -EINVAL
 * (empty key), -ENAMETOOLONG (key > MARU_KEY_MAX).
 */
int maru_key_escape(const void *key, size_t key_len, char *out,
                    size_t out_cap);

/**
 * Reverses maru_key_escape for a name: writes the key into out (no NUL)
 * and returns its length (if > out_cap, only out_cap bytes were written;
 * call again with a larger buffer). Returns -EINVAL if `name` is not a
 * canonical escaped key name, -ENODATA if it is the hashed name of a long
 * key (the key is stored in the file's xattr user.maru.key; maru_list_keys
 * resolves it).
 */
int maru_key_unescape(const char *name, size_t name_len, uint8_t *out,
                      size_t out_cap);

/* ------------------------------------------------------------------ */
/* Pinning pages in memory                                              */
/* ------------------------------------------------------------------ */

/**
 * Locks the view's (or chunk's) pages in RAM (mlock; also faults them in).
 * Views of the same key served from the view cache share one mapping, so
 * the lock is shared by them too.
 * Unlocked by maru_*_munlock or when the view/chunk is released.
 * Errors: -ENOMEM / -EPERM (RLIMIT_MEMLOCK too low).
 */
int maru_view_mlock(maru_view *view);
int maru_view_munlock(maru_view *view);
int maru_chunk_mlock(maru_chunk *chunk);
int maru_chunk_munlock(maru_chunk *chunk);

/**
 * Faults every page of the view's mapping in now (MADV_POPULATE_READ), so
 * later accesses take no page fault. Returns 0 or -errno.
 */
int maru_view_prefault(maru_view *view);

/* ------------------------------------------------------------------ */
/* CUDA host registration (cargo feature `cuda`; driver loaded at run time) */
/* ------------------------------------------------------------------ */

/**
 * Returns 1 if CUDA registration can be used (built with the `cuda`
 * feature, libcuda found and initialised, at least one device), else 0 with
 * the reason in maru_last_error(). Never crashes without a driver.
 */
int maru_cuda_available(void);

/**
 * Registers the view's mapping with CUDA (cuMemHostRegister with
 * CU_MEMHOSTREGISTER_READ_ONLY | PORTABLE) so GPUs can DMA from it.
 * Idempotent: a mapping registers once; repeating the call is free, and a
 * view served again from the pool's view cache is already registered. The
 * mapping is unregistered when its last view (and cache entry) is released,
 * or by maru_view_cuda_unregister, which fails with -EBUSY while other views
 * or the view cache share the mapping.
 * Errors: -ENOTSUP (library built without the `cuda` feature), -ENODEV (no
 * CUDA driver or no device), -EIO (the driver refused; see message).
 */
int maru_view_cuda_register(maru_view *view);
int maru_view_cuda_unregister(maru_view *view);

/**
 * Same for a staging chunk's read-write mapping (PORTABLE | DEVICEMAP), so
 * a GPU can write a chunk before it is published.
 */
int maru_chunk_cuda_register(maru_chunk *chunk);
int maru_chunk_cuda_unregister(maru_chunk *chunk);

/* ---- Pool-wide pin counts ------------------------------------------------
 * One shared-memory table per pool (a file every process of the pool maps):
 * the pins each process holds on each key. A dead process's pins are not
 * counted; any process may drop any pin (its own first). Each call takes the
 * table's lock once for its whole batch. What keeps a pinned chunk from
 * eviction (holding it open or mapped) is the caller's. */

/** A pool's pin table. */
typedef struct maru_pin_table maru_pin_table;

/** Opens the table file at path, creating it with `slots` slots (0: 65536;
 * rounded up to a power of two) when absent. An existing table keeps its size. */
int maru_pin_table_open(const char *path, size_t slots, maru_pin_table **out);
/** Unmaps the handle (the pins stay). NULL is ignored. */
void maru_pin_table_close(maru_pin_table *pins);
/** Number of slots of the table. */
size_t maru_pin_table_slots(const maru_pin_table *pins);
/**
 * Pins the present prefix of n packed keys, one pin each: stops at the first
 * key the pool does not hold (checked under the lock) or when the table is
 * full (*full = 1). Returns how many keys were pinned; before[i] (may be NULL)
 * is this process's count of key i before the call.
 */
int maru_pin_table_pin(maru_pin_table *pins, maru_pool *pool, const uint8_t *keys,
                  const size_t *key_lens, size_t n, uint32_t *before, int *full);
/**
 * Drops one pin of each key (this process's own first, else another's).
 * released[i] = 1 if key i had one; mine[i] = this process's count after
 * (either may be NULL). Returns how many pins were dropped.
 */
int maru_pin_table_unpin(maru_pin_table *pins, const uint8_t *keys, const size_t *key_lens,
                    size_t n, uint8_t *released, uint32_t *mine);
/** Pool-wide (total) and this process's (mine) counts of n packed keys. */
int maru_pin_table_counts(maru_pin_table *pins, const uint8_t *keys, const size_t *key_lens,
                     size_t n, uint64_t *total, uint32_t *mine);
/** Removes key from pool unless pinned: 0, -ENOENT if absent, -EBUSY if pinned. */
int maru_pin_table_remove(maru_pin_table *pins, maru_pool *pool, const void *key, size_t key_len);
/** Writes up to cap pids of the processes holding pins; returns how many there are. */
int maru_pin_table_holders(maru_pin_table *pins, uint32_t *pids, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* MARU_H */
