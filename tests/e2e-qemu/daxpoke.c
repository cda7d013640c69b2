/* daxpoke: inspect or change bytes of a device-dax node, which has no read(2)/write(2): the
 * range is reached through an mmap of the 2 MiB-aligned window around it.
 *
 *   daxpoke DEV blank OFF LEN   exit 0 if LEN bytes at OFF are all zero, 1 if not
 *   daxpoke DEV zero OFF LEN    set LEN bytes at OFF to zero (an administrator's wipe)
 *   daxpoke DEV flip OFF        invert the byte at OFF (to corrupt a header on purpose)
 *   daxpoke DEV get OFF         print the byte at OFF as 0xNN
 *   daxpoke DEV dump OFF LEN    write LEN bytes at OFF to stdout (to hash a chunk's extent as
 *                               a process mapping the device node sees it)
 * OFF and LEN accept 0x... hex. Exit status 2 on a usage or system error.
 * Built statically (gcc -static) for the guest's busybox initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WINDOW (2UL << 20)

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: daxpoke DEV blank|zero|dump OFF LEN | daxpoke DEV flip|get OFF\n");
        return 2;
    }
    const char *dev = argv[1], *op = argv[2];
    uint64_t off = strtoull(argv[3], NULL, 0);
    uint64_t len = argc > 4 ? strtoull(argv[4], NULL, 0) : 1;
    if (len == 0 || (argc < 5 && (!strcmp(op, "blank") || !strcmp(op, "zero") || !strcmp(op, "dump")))) {
        fprintf(stderr, "daxpoke: %s needs OFF and a non-zero LEN\n", op);
        return 2;
    }
    int ro = !strcmp(op, "blank") || !strcmp(op, "get") || !strcmp(op, "dump");
    int fd = open(dev, ro ? O_RDONLY : O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "daxpoke: open %s: %s\n", dev, strerror(errno));
        return 2;
    }
    uint64_t start = off / WINDOW * WINDOW;
    size_t maplen = (off + len - start + WINDOW - 1) / WINDOW * WINDOW;
    unsigned char *p = mmap(NULL, maplen, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
    if (p == MAP_FAILED) {
        fprintf(stderr, "daxpoke: mmap %s at %#llx len %#zx: %s\n", dev, (unsigned long long)start, maplen,
                strerror(errno));
        return 2;
    }
    unsigned char *b = p + (off - start);
    int rc = 0;
    if (!strcmp(op, "blank")) {
        for (uint64_t i = 0; i < len; i++)
            if (b[i]) {
                printf("daxpoke: %s byte %#llx is 0x%02x: not blank\n", dev, (unsigned long long)(off + i), b[i]);
                rc = 1;
                break;
            }
        if (!rc)
            printf("daxpoke: %s [%#llx, +%#llx) is blank\n", dev, (unsigned long long)off, (unsigned long long)len);
    } else if (!strcmp(op, "zero")) {
        memset(b, 0, len);
        printf("daxpoke: zeroed %s [%#llx, +%#llx)\n", dev, (unsigned long long)off, (unsigned long long)len);
    } else if (!strcmp(op, "flip")) {
        b[0] ^= 0xff;
        printf("daxpoke: %s byte %#llx is now 0x%02x\n", dev, (unsigned long long)off, b[0]);
    } else if (!strcmp(op, "dump")) {
        for (uint64_t done = 0; done < len;) {
            ssize_t w = write(1, b + done, len - done);
            if (w <= 0) {
                fprintf(stderr, "daxpoke: write to stdout: %s\n", strerror(errno));
                rc = 2;
                break;
            }
            done += (uint64_t)w;
        }
    } else if (!strcmp(op, "get")) {
        printf("0x%02x\n", b[0]);
    } else {
        fprintf(stderr, "daxpoke: unknown operation %s\n", op);
        rc = 2;
    }
    munmap(p, maplen);
    close(fd);
    return rc;
}
