/* C ABI test of libmaru: every function of include/maru.h, against a pool
 * directory given as argv[1]. Exits non-zero on the first failed check. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "maru.h"

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n",    \
                    __FILE__, __LINE__, #cond, maru_last_error());           \
            failures++;                                                      \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

static void fill(uint8_t *p, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 31 + seed);
}

static int holds(const uint8_t *p, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(i * 31 + seed)) return 0;
    return 1;
}

static void publish(maru_pool *pool, const void *key, size_t key_len,
                    size_t size, uint8_t seed) {
    maru_chunk *c = NULL;
    void *data = NULL;
    size_t len = 0;
    CHECK(maru_chunk_create(pool, size, &c, &data, &len) == 0);
    CHECK(c != NULL && data == maru_chunk_data(c) && len == size);
    CHECK(maru_chunk_len(c) == size);
    fill(data, len, seed);
    CHECK(maru_chunk_publish(c, key, key_len) == 0);
    maru_chunk_free(c);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <pool-dir>\n", argv[0]);
        return 2;
    }
    CHECK(maru_abi_version() == MARU_ABI_VERSION);
    CHECK(strcmp(maru_last_error(), "") == 0);

    /* Opening: a missing pool fails with -ENOENT and a message naming it. */
    maru_pool *pool = NULL;
    CHECK(maru_pool_open("/dev/shm/no-such-maru-pool-c", &pool) == -ENOENT);
    CHECK(strstr(maru_last_error(), "no-such-maru-pool-c") != NULL);
    CHECK(maru_pool_open(NULL, &pool) == -EINVAL);
    CHECK(maru_pool_open(argv[1], &pool) == 0 && pool != NULL);

    /* Create, write, publish, get. */
    const char key[] = "model@1@0@abc/def@bf16";
    publish(pool, key, strlen(key), 1 << 20, 7);
    CHECK(maru_contains(pool, key, strlen(key)) == 1);
    CHECK(maru_contains(pool, "absent", 6) == 0);

    /* What the pool shows: nothing on a plain directory, capacity and use
     * on maru-fs; pin counts only where maru-fs counts them. */
    maru_info info;
    memset(&info, 0xff, sizeof info);
    CHECK(maru_pool_info(pool, &info) == 0);
    CHECK((info.fields & ~0xfu) == 0);
    CHECK(!(info.fields & MARU_INFO_CAPACITY) || info.capacity > 0);
    CHECK(!(info.fields & MARU_INFO_USED) || info.used >= (1u << 20));
    CHECK(maru_pool_info(pool, NULL) == -EINVAL);
    CHECK(maru_pool_info(NULL, &info) == -EINVAL);
    CHECK(maru_pins(pool, "absent", 6) == -ENOENT);
    int pins = maru_pins(pool, key, strlen(key));
    CHECK(pins == 0 || pins == -ENODATA || pins == -EOPNOTSUPP);
    maru_view *v = NULL;
    const void *vdata = NULL;
    size_t vlen = 0;
    CHECK(maru_get(pool, key, strlen(key), &v, &vdata, &vlen) == 0);
    CHECK(vlen == 1 << 20 && vdata == maru_view_data(v) && maru_view_len(v) == vlen);
    CHECK(holds(vdata, vlen, 7));
    CHECK(maru_get(pool, "absent", 6, &v, NULL, NULL) == -ENOENT);
    CHECK(strstr(maru_last_error(), "absent") != NULL);
    CHECK(maru_get(pool, "", 0, &v, NULL, NULL) == -EINVAL);

    /* First writer wins; the loser's handle stays valid until freed. */
    maru_chunk *loser = NULL;
    void *ldata = NULL;
    CHECK(maru_chunk_create(pool, 4096, &loser, &ldata, NULL) == 0);
    fill(ldata, 4096, 9);
    CHECK(maru_chunk_publish(loser, key, strlen(key)) == -EEXIST);
    CHECK(strstr(maru_last_error(), "already exists") != NULL);
    CHECK(holds(ldata, 4096, 9));
    CHECK(maru_chunk_publish(loser, "other", 5) == -EINVAL);
    /* Sealed once published (or aborted): no more writes through the API. */
    CHECK(maru_chunk_write(loser, 0, "x", 1) == -EINVAL);
    CHECK(strstr(maru_last_error(), "aborted") != NULL);
    maru_chunk_free(loser);
    CHECK(maru_chunk_create(pool, 0, &loser, NULL, NULL) == -EINVAL);

    /* One-call store: copies and publishes, first writer wins. */
    uint8_t buf[10000];
    fill(buf, sizeof buf, 11);
    CHECK(maru_store(pool, "stored", 6, buf, sizeof buf) == 0);
    CHECK(maru_store(pool, "stored", 6, buf, sizeof buf) == -EEXIST);
    CHECK(maru_store(pool, "empty", 5, buf, 0) == -EINVAL);
    /* A reserve: store and create of that size take reserved chunks. */
    CHECK(maru_pool_reserve(pool, sizeof buf, 2) == 2);
    CHECK(maru_store(pool, "from-reserve", 12, buf, sizeof buf) == 0);
    CHECK(maru_pool_reserve(pool, sizeof buf, 2) == 2);
    CHECK(maru_pool_clear_reserve(pool) == 0);
    CHECK(maru_contains(pool, "from-reserve", 12) == 1);
    CHECK(maru_remove(pool, "from-reserve", 12) == 0);
    maru_chunk *wc = NULL;
    CHECK(maru_chunk_create(pool, sizeof buf, &wc, NULL, NULL) == 0);
    CHECK(maru_chunk_write(wc, 0, buf, sizeof buf) == 0);
    CHECK(maru_chunk_write(wc, 1, buf, sizeof buf) == -EINVAL);
    CHECK(holds(maru_chunk_data(wc), sizeof buf, 11));
    maru_chunk_free(wc);
    maru_view *sv = NULL;
    const void *sdata = NULL;
    size_t slen = 0;
    CHECK(maru_get(pool, "stored", 6, &sv, &sdata, &slen) == 0);
    CHECK(slen == sizeof buf && holds(sdata, slen, 11));
    maru_view_release(sv);
    CHECK(maru_remove(pool, "stored", 6) == 0);

    /* Another process maps the same chunk. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        maru_pool *p2 = NULL;
        maru_view *v2 = NULL;
        const void *d2 = NULL;
        size_t l2 = 0;
        int ok = maru_pool_open(argv[1], &p2) == 0 &&
                 maru_get(p2, key, strlen(key), &v2, &d2, &l2) == 0 &&
                 l2 == 1 << 20 && holds(d2, l2, 7);
        maru_view_release(v2);
        maru_pool_close(p2);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Pinning helpers. */
    CHECK(maru_view_prefault(v) == 0);
    CHECK(maru_view_mlock(v) == 0);
    CHECK(maru_view_munlock(v) == 0);
    maru_chunk *pc = NULL;
    CHECK(maru_chunk_create(pool, 8192, &pc, NULL, NULL) == 0);
    CHECK(maru_chunk_mlock(pc) == 0);
    CHECK(maru_chunk_munlock(pc) == 0);

    /* CUDA: registers where a driver exists, else a clear error, no crash. */
    if (maru_cuda_available()) {
        CHECK(maru_view_cuda_register(v) == 0);
        CHECK(maru_view_cuda_register(v) == 0);
        CHECK(maru_view_cuda_unregister(v) == 0);
        CHECK(maru_chunk_cuda_register(pc) == 0);
        CHECK(maru_chunk_cuda_unregister(pc) == 0);
        printf("CUDA registration: ok\n");
    } else {
        printf("SKIP CUDA registration: %s\n", maru_last_error());
        int rc = maru_view_cuda_register(v);
        CHECK(rc == -ENOTSUP || rc == -ENODEV);
        CHECK(strlen(maru_last_error()) > 0);
        rc = maru_chunk_cuda_register(pc);
        CHECK(rc == -ENOTSUP || rc == -ENODEV);
    }
    maru_chunk_free(pc); /* aborts the unpublished chunk */

    /* Batch and prefix operations on packed keys: k0 k1 k2 (k3 missing) k4. */
    const char *names[] = {"tok/0", "tok/1", "tok/2", "tok/3", "tok/4"};
    uint8_t packed[64];
    size_t lens[5], off = 0;
    for (int i = 0; i < 5; i++) {
        lens[i] = strlen(names[i]);
        memcpy(packed + off, names[i], lens[i]);
        off += lens[i];
        if (i != 3) publish(pool, names[i], lens[i], 4096, (uint8_t)i);
    }
    uint8_t present[5];
    CHECK(maru_batch_contains(pool, packed, lens, 5, present) == 4);
    CHECK(present[0] && present[1] && present[2] && !present[3] && present[4]);
    maru_view *views[5];
    const void *datas[5];
    size_t vlens[5];
    CHECK(maru_batch_get(pool, packed, lens, 5, views, datas, vlens) == 4);
    for (int i = 0; i < 5; i++) {
        if (i == 3) {
            CHECK(views[i] == NULL && datas[i] == NULL && vlens[i] == 0);
        } else {
            CHECK(views[i] != NULL && vlens[i] == 4096);
            CHECK(holds(datas[i], 4096, (uint8_t)i));
        }
        maru_view_release(views[i]);
    }
    CHECK(maru_prefix_contains(pool, packed, lens, 5, NULL) == 3);
    CHECK(maru_prefix_contains(pool, packed, lens, 5, views) == 3);
    CHECK(views[0] && views[1] && views[2] && !views[3] && !views[4]);
    CHECK(holds(maru_view_data(views[2]), 4096, 2));
    for (int i = 0; i < 3; i++) maru_view_release(views[i]);
    CHECK(maru_batch_contains(pool, NULL, NULL, 0, NULL) == 0);
    /* Lengths whose sum overflows are refused, not walked. */
    size_t huge[2] = {1, SIZE_MAX};
    CHECK(maru_batch_contains(pool, packed, huge, 2, present) == -EINVAL);
    CHECK(strstr(maru_last_error(), "key_lens[1]") != NULL);
    CHECK(maru_batch_contains(pool, packed, huge, SIZE_MAX, present) == -EINVAL);
    /* A NULL data pointer is named in the message. */
    CHECK(maru_store(pool, "k", 1, NULL, 0) == -EINVAL);
    CHECK(strstr(maru_last_error(), "data is NULL") != NULL);

    /* Keys with NUL bytes and long keys, listing. */
    const char nulkey[] = {'a', 0, 'b'};
    publish(pool, nulkey, 3, 4096, 3);
    char longkey[600];
    memset(longkey, '/', sizeof longkey);
    publish(pool, longkey, sizeof longkey, 4096, 4);
    CHECK(maru_contains(pool, longkey, sizeof longkey) == 1);
    maru_key_list *list = NULL;
    int n = maru_list_keys(pool, &list);
    CHECK(n == 7 && maru_key_list_count(list) == 7);
    int seen_nul = 0, seen_long = 0;
    for (int i = 0; i < n; i++) {
        size_t kl = 0;
        const uint8_t *k = maru_key_list_key(list, (size_t)i, &kl);
        CHECK(k != NULL);
        if (kl == 3 && memcmp(k, nulkey, 3) == 0) seen_nul = 1;
        if (kl == sizeof longkey && memcmp(k, longkey, kl) == 0) seen_long = 1;
    }
    size_t kl = 1;
    CHECK(maru_key_list_key(list, 99, &kl) == NULL && kl == 0);
    CHECK(seen_nul && seen_long);
    maru_key_list_free(list);

    /* Escaping helpers. */
    char name[MARU_NAME_MAX + 1];
    CHECK(maru_key_escape("a/b", 3, name, sizeof name) == 5);
    CHECK(strcmp(name, "a%2Fb") == 0);
    CHECK(maru_key_escape(".x", 2, name, sizeof name) == 4 && strcmp(name, "%2Ex") == 0);
    uint8_t back[16];
    CHECK(maru_key_unescape("a%2Fb", 5, back, sizeof back) == 3);
    CHECK(memcmp(back, "a/b", 3) == 0);
    CHECK(maru_key_unescape(".stage-1-1", 10, back, sizeof back) == -EINVAL);
    int ln = maru_key_escape(longkey, sizeof longkey, name, sizeof name);
    CHECK(ln > 0 && ln <= MARU_NAME_MAX);
    CHECK(maru_key_unescape(name, (size_t)ln, back, sizeof back) == -ENODATA);
    char big[MARU_KEY_MAX + 1];
    memset(big, 'x', sizeof big);
    CHECK(maru_key_escape(big, sizeof big, name, sizeof name) == -ENAMETOOLONG);

    /* View cache: a repeated get returns the same mapping. */
    CHECK(maru_pool_set_view_cache(pool, 4) == 0);
    CHECK(maru_pool_set_view_cache(NULL, 4) == -EINVAL);
    maru_view *c1 = NULL, *c2 = NULL;
    const void *p1 = NULL, *p2 = NULL;
    CHECK(maru_get(pool, "tok/1", 5, &c1, &p1, NULL) == 0);
    maru_view_release(c1);
    CHECK(maru_get(pool, "tok/1", 5, &c2, &p2, NULL) == 0);
    CHECK(p1 == p2 && holds(p2, 4096, 1));
    maru_view_release(c2);
    CHECK(maru_pool_set_view_cache(pool, 0) == 0);

    /* Removal: mapped views survive it. */
    CHECK(maru_remove(pool, key, strlen(key)) == 0);
    CHECK(maru_contains(pool, key, strlen(key)) == 0);
    CHECK(maru_remove(pool, key, strlen(key)) == -ENOENT);
    CHECK(holds(vdata, vlen, 7));
    maru_view_release(v);

    /* NULL handles are refused, never a crash; views outlive the pool. */
    CHECK(maru_contains(NULL, "k", 1) == -EINVAL);
    CHECK(maru_view_mlock(NULL) == -EINVAL);
    CHECK(maru_chunk_data(NULL) == NULL && maru_view_len(NULL) == 0);
    CHECK(maru_get(pool, "tok/0", 5, &v, &vdata, &vlen) == 0);
    maru_pool_close(pool);
    CHECK(holds(vdata, vlen, 0));
    maru_view_release(v);
    maru_pool_close(NULL);
    maru_view_release(NULL);
    maru_chunk_free(NULL);
    maru_key_list_free(NULL);

    printf("C ABI test: all checks passed\n");
    return failures ? 1 : 0;
}
