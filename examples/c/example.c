/* libmaru from C: publish a chunk in one process, read it in another.
 *
 *   example <pool-dir> put <key> <text>   create a chunk holding <text>, publish it
 *   example <pool-dir> get <key>          map the chunk read-only and print it
 *
 * Build: gcc -I libmaru/include example.c -L target/debug -lmaru
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
