/* pfnstop.so: an LD_PRELOAD shim that stops (SIGSTOP) a process right before it unmaps a file
 * mapping whose path starts with one of the colon-separated prefixes in $PFNSTOP_PREFIX, so that a root process can read the mapping's
 * PFNs (/proc/PID/pagemap) and NUMA nodes (move_pages) while it is still in place, then let it
 * go on with SIGCONT. It lets the e2e test inspect the mappings of the unmodified libmaru
 * examples, which map, use and unmap a chunk and exit. Prints, before stopping:
 *   pfnstop: pid=PID addr=0xADDR path=PATH
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* whether path starts with one of the colon-separated prefixes in list */
static int has_prefix(const char *path, const char *list)
{
    while (*list) {
        size_t n = strcspn(list, ":");
        if (n && strncmp(path, list, n) == 0)
            return 1;
        list += n;
        if (*list == ':')
            list++;
    }
    return 0;
}

int munmap(void *addr, size_t len)
{
    static int (*real_munmap)(void *, size_t);
    if (!real_munmap)
        real_munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
    const char *prefix = getenv("PFNSTOP_PREFIX");
    FILE *f = prefix && *prefix ? fopen("/proc/self/maps", "r") : NULL;
    if (f) {
        char line[4096];
        uint64_t a = (uint64_t)(uintptr_t)addr;
        while (fgets(line, sizeof line, f)) {
            uint64_t s, e;
            char *p = strchr(line, '/');
            if (!p || sscanf(line, "%" SCNx64 "-%" SCNx64, &s, &e) != 2 || a < s || a >= e)
                continue;
            line[strcspn(line, "\n")] = 0;
            if (has_prefix(p, prefix)) {
                fprintf(stderr, "pfnstop: pid=%d addr=0x%" PRIx64 " path=%s\n", getpid(), a, p);
                fflush(stderr);
                raise(SIGSTOP);
            }
            break;
        }
        fclose(f);
    }
    return real_munmap(addr, len);
}
