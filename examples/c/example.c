/* libmaru from C: publish a chunk in one process, read it in another.
 *
 *   example <pool-dir> put <key> <text>   create a chunk holding <text>, publish it
 *   example <pool-dir> get <key>          map the chunk read-only and print it
 *
 * Build against an installed libmaru (scripts/install-libmaru.sh; pkg-config finds it,
 * PKG_CONFIG_PATH=<prefix>/lib/pkgconfig for a prefix off its default path):
 *   cc example.c $(pkg-config --cflags --libs maru) -o example
 * Build in the checkout (programs load the SONAME libmaru.so.0, which cargo does not
 * make; the rpath lets it run without LD_LIBRARY_PATH):
 *   cargo build -p libmaru && ln -sf libmaru.so target/debug/libmaru.so.0
 *   cc examples/c/example.c -I libmaru/include -L target/debug -Wl,-rpath,$PWD/target/debug -lmaru -o example
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "maru.h"

int main(int argc, char **argv) {
    int put = argc == 5 && strcmp(argv[2], "put") == 0;
    int get = argc == 4 && strcmp(argv[2], "get") == 0;
    if (!put && !get) {
        fprintf(stderr, "usage: %s <pool-dir> put <key> <text> | get <key>\n", argv[0]);
        return 2;
    }
    maru_pool *pool = NULL;
    int rc = maru_pool_open(argv[1], &pool);
    if (rc != 0) {
        fprintf(stderr, "example: %s\n", maru_last_error());
        return 1;
    }
    const char *key = argv[3];
    if (put) {
        const char *text = argv[4];
        maru_chunk *chunk = NULL;
        void *data = NULL;
        rc = maru_chunk_create(pool, strlen(text), &chunk, &data, NULL);
        if (rc == 0) {
            memcpy(data, text, strlen(text)); /* write straight into the pool */
            rc = maru_chunk_publish(chunk, key, strlen(key));
            if (rc == -EEXIST) fprintf(stderr, "example: %s (kept the first)\n", maru_last_error());
            maru_chunk_free(chunk);
            if (rc == -EEXIST) rc = 0;
        }
    } else {
        maru_view *view = NULL;
        const void *data = NULL;
        size_t len = 0;
        rc = maru_get(pool, key, strlen(key), &view, &data, &len);
        if (rc == 0) {
            /* No copy: these are the pool's pages, pinned while the view lives. */
            printf("%.*s\n", (int)len, (const char *)data);
            maru_view_release(view);
        }
    }
    if (rc != 0) fprintf(stderr, "example: %s\n", maru_last_error());
    maru_pool_close(pool);
    return rc == 0 ? 0 : 1;
}
