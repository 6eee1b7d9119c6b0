/* sys_badptr.c - bad guest pointers must come back as EFAULT (natively and under km), never crash the monitor.
 * Pointers: NULL page, an unmapped page, a PROT_NONE reservation, a read-only page (for calls that write). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

static void show(const char *what, long r) {
    printf("%-28s %ld %s\n", what, r, r < 0 ? (errno == EFAULT ? "EFAULT" : strerror(errno)) : "");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char *none = mmap(0, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *gone = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, 4096);
    const char *names[] = {"low", "unmapped", "prot_none", "read_only"};
    char *ptrs[] = {(char *)16, gone, none, ro};
    int fd = open("/etc/hostname", O_RDONLY);
    char stat_buf[256];
    for (int i = 0; i < 4; i++) {
        char what[64];
        printf("-- %s\n", names[i]);
        show("read into it", syscall(SYS_read, fd, ptrs[i], 8));
        if (i < 3) {      /* reading from a read-only page is fine: write() of it succeeds */
            show("write from it", syscall(SYS_write, 1, ptrs[i], 8));
            show("openat path", syscall(SYS_openat, AT_FDCWD, ptrs[i], O_RDONLY));
            show("newfstatat path", syscall(SYS_newfstatat, AT_FDCWD, ptrs[i], stat_buf, 0));
            show("stat path", syscall(SYS_stat, ptrs[i], stat_buf));
        }
        show("newfstatat buf", syscall(SYS_newfstatat, AT_FDCWD, "/", ptrs[i], 0));
        show("fstat buf", syscall(SYS_fstat, fd, ptrs[i]));
        struct iovec iov = {ptrs[i], 8};
        show("readv into it", syscall(SYS_readv, fd, &iov, 1));
        show("readv iovec itself", syscall(SYS_readv, fd, ptrs[i], 1));
        show("clock_gettime", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, ptrs[i]));
        show("uname", syscall(SYS_uname, ptrs[i]));
        show("pipe2", syscall(SYS_pipe2, ptrs[i], 0));
        snprintf(what, sizeof what, "getcwd");
        show(what, syscall(SYS_getcwd, ptrs[i], 64));
    }
    printf("still alive\n");
    return 0;
}
