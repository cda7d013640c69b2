/* pfnmap: report the physical frames (PFNs) and NUMA nodes behind a file mapping.
 *
 *   pfnmap pid PID PATH   the first mapping of PATH in process PID (found in /proc/PID/maps)
 *   pfnmap pid PID 0xADDR the file mapping of process PID that contains address ADDR
 *   pfnmap map PATH       map PATH read-only itself, touch every page, report
 *
 * Prints key=value lines on stdout:
 *   pages=N present=N first_pfn=0x.. min_pfn=0x.. max_pfn=0x.. digest=0x.. nodes=NODE:COUNT,...
 * `digest` is an FNV-1a hash of the PFN list in page order: two mappings of the same pages
 * have the same digest. PFNs come from /proc/PID/pagemap (needs CAP_SYS_ADMIN, i.e. root),
 * nodes from move_pages(2) in query mode. Exit status 0 when every page was present and
 * resolved to a node, 1 otherwise, 2 on a usage or system error.
 * Built statically (gcc -static) so it runs in the guest's busybox initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_NODES 64

static int find_mapping(int pid, const char *path, uint64_t *start, uint64_t *end)
{
    int by_addr = strncmp(path, "0x", 2) == 0;
    uint64_t addr = by_addr ? strtoull(path, NULL, 16) : 0;
    char maps[64], line[4096];
    snprintf(maps, sizeof maps, "/proc/%d/maps", pid);
    FILE *f = fopen(maps, "r");
    if (!f) {
        fprintf(stderr, "pfnmap: open %s: %s\n", maps, strerror(errno));
        return -1;
    }
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *p = strchr(line, '/');
        if (!p || sscanf(line, "%" SCNx64 "-%" SCNx64, start, end) != 2)
            continue;
        if (by_addr ? (addr >= *start && addr < *end) : strcmp(p, path) == 0) {
            fprintf(stderr, "pfnmap: pid %d maps %s at 0x%" PRIx64 "-0x%" PRIx64 "\n", pid, p, *start, *end);
            found = 0;
            break;
        }
    }
    fclose(f);
    if (found)
        fprintf(stderr, "pfnmap: %s is not mapped in process %d\n", path, pid);
    return found;
}

static int report(int pid, uint64_t start, uint64_t end)
{
    long psz = sysconf(_SC_PAGESIZE);
    size_t n = (end - start) / psz;
    char pm[64];
    snprintf(pm, sizeof pm, "/proc/%d/pagemap", pid);
    int fd = open(pm, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "pfnmap: open %s: %s\n", pm, strerror(errno));
        return 2;
    }
    uint64_t *ent = calloc(n, sizeof *ent);
    void **pages = calloc(n, sizeof *pages);
    int *status = calloc(n, sizeof *status);
    if (!ent || !pages || !status) {
        fprintf(stderr, "pfnmap: out of memory for %zu pages\n", n);
        return 2;
    }
    if (pread(fd, ent, n * sizeof *ent, (off_t)(start / psz) * sizeof *ent) != (ssize_t)(n * sizeof *ent)) {
        fprintf(stderr, "pfnmap: read %s: %s\n", pm, strerror(errno));
        return 2;
    }
    close(fd);
    for (size_t i = 0; i < n; i++)
        pages[i] = (void *)(uintptr_t)(start + i * psz);
    if (syscall(SYS_move_pages, pid, n, pages, NULL, status, 0) != 0) {
        fprintf(stderr, "pfnmap: move_pages query on %d: %s\n", pid, strerror(errno));
        return 2;
    }
    uint64_t digest = 0xcbf29ce484222325ULL, minp = UINT64_MAX, maxp = 0, first = 0;
    size_t present = 0, nodecnt[MAX_NODES] = {0}, unresolved = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t pfn = 0;
        if (ent[i] & (1ULL << 63)) {
            pfn = ent[i] & ((1ULL << 55) - 1);
            present++;
            if (pfn < minp)
                minp = pfn;
            if (pfn > maxp)
                maxp = pfn;
        }
        if (i == 0)
            first = pfn;
        for (int b = 0; b < 8; b++) {
            digest ^= (pfn >> (8 * b)) & 0xff;
            digest *= 0x100000001b3ULL;
        }
        if (status[i] >= 0 && status[i] < MAX_NODES)
            nodecnt[status[i]]++;
        else
            unresolved++;
    }
    printf("pid=%d\nstart=0x%" PRIx64 "\npages=%zu\npresent=%zu\nfirst_pfn=0x%" PRIx64 "\n", pid, start, n,
           present, first);
    printf("min_pfn=0x%" PRIx64 "\nmax_pfn=0x%" PRIx64 "\ndigest=0x%016" PRIx64 "\nnodes=", present ? minp : 0,
           maxp, digest);
    const char *sep = "";
    for (int i = 0; i < MAX_NODES; i++)
        if (nodecnt[i]) {
            printf("%s%d:%zu", sep, i, nodecnt[i]);
            sep = ",";
        }
    printf("\nunresolved=%zu\n", unresolved);
    if (present && first == 0)
        fprintf(stderr, "pfnmap: PFNs read as 0: run as root (CAP_SYS_ADMIN)\n");
    return (present == n && unresolved == 0 && n > 0 && first != 0) ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "pid")) {
        uint64_t start, end;
        int pid = atoi(argv[2]);
        if (find_mapping(pid, argv[3], &start, &end))
            return 2;
        return report(pid, start, end);
    }
    if (argc == 3 && !strcmp(argv[1], "map")) {
        int fd = open(argv[2], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
            fprintf(stderr, "pfnmap: open %s: %s\n", argv[2], fd < 0 ? strerror(errno) : "empty file");
            return 2;
        }
        long psz = sysconf(_SC_PAGESIZE);
        size_t len = ((size_t)st.st_size + psz - 1) / psz * psz;
        volatile unsigned char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "pfnmap: mmap %s: %s\n", argv[2], strerror(errno));
            return 2;
        }
        unsigned sum = 0;
        for (size_t off = 0; off < len; off += psz)
            sum += p[off];
        (void)sum;
        return report(getpid(), (uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)p + len);
    }
    fprintf(stderr, "usage: pfnmap pid PID PATH|0xADDR | pfnmap map PATH\n");
    return 2;
}
