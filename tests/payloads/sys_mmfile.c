/* sys_mmfile.c - file mappings: private copies, MAP_SHARED writes that reach the file (and writes by read/write
 * seen through the mapping), offsets, access-mode errors. Run in a scratch directory; leaves shared.dat behind
 * with the bytes written through the mapping, for the test to read on the host. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

static const char *err(void *p) { return p == MAP_FAILED ? (errno == EACCES ? "EACCES" : strerror(errno)) : "ok"; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int fd = open("shared.dat", O_CREAT | O_RDWR | O_TRUNC, 0600);
    char page[4096];
    for (int i = 0; i < 3; i++) { memset(page, 'a' + i, sizeof page); write(fd, page, sizeof page); }
    char *priv = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("private map: %s [%c%c%c]\n", err(priv), priv[0], priv[4096], priv[8191 + 4096]);
    priv[0] = 'P';
    char *shared = mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4096);
    printf("shared map at offset 4096: %s [%c%c]\n", err(shared), shared[0], shared[4096]);
    memcpy(shared + 10, "THROUGH-THE-MAP", 15);
    printf("msync %d\n", msync(shared, 2 * 4096, MS_SYNC));
    char back[16] = {0};
    pread(fd, back, 15, 4096 + 10);
    printf("read sees the shared write: [%s]\n", back);
    pread(fd, back, 1, 0);
    printf("private write stays private: %c\n", back[0]);
    pwrite(fd, "written-by-pwrite", 17, 2 * 4096 + 100);
    printf("shared map sees pwrite: [%.17s]\n", shared + 4096 + 100);
    printf("private map sees the file's new bytes where untouched: [%.17s]\n", priv + 2 * 4096 + 100);
    int dn = madvise(priv, 4096, MADV_DONTNEED);
    printf("madvise DONTNEED on the private map %d: file bytes again [%c]\n", dn, priv[0]);
    char *none = mmap(0, 4096, PROT_NONE, MAP_PRIVATE, fd, 0);
    int r = mprotect(none, 4096, PROT_READ);
    printf("PROT_NONE file map %s, mprotect %d, then reads [%c]\n", err(none), r, none[1]);
    int ro = open("shared.dat", O_RDONLY);
    printf("shared writable map of O_RDONLY fd: %s\n", err(mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0)));
    char *rs = mmap(0, 4096, PROT_READ, MAP_SHARED, ro, 4096);
    printf("shared read-only map of O_RDONLY fd: %s [%.15s]\n", err(rs), rs + 10);
    int wo = open("shared.dat", O_WRONLY);
    printf("map of O_WRONLY fd: %s\n", err(mmap(0, 4096, PROT_READ, MAP_PRIVATE, wo, 0)));
    printf("map of a bad fd: %s\n", mmap(0, 4096, PROT_READ, MAP_PRIVATE, 99, 0) == MAP_FAILED && errno == EBADF ?
           "EBADF" : "?");
    printf("write() from the shared map: %ld\n", (long)write(1, shared + 10, 15));
    printf("\nmunmap %d %d\n", munmap(shared, 2 * 4096), munmap(priv, 3 * 4096));
    char *past = mmap(0, 4 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);     /* the file is 3 pages: map 4 */
    printf("mapping past the end: %s, last file page [%c]\n", err(past), past[2 * 4096]);
    int z = open("/dev/zero", O_RDWR);
    char *zp = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, z, 0);
    zp[5] = 1;
    printf("/dev/zero private map: %s %d %d\n", err(zp), zp[0], zp[5]);
    char *big = mmap(0, 64 << 20, PROT_READ, MAP_PRIVATE, open("/proc/self/exe", O_RDONLY), 0);
    printf("a map larger than the file: %s, ELF magic %d\n", err(big), big != MAP_FAILED && big[1] == 'E');
    return 0;
}
