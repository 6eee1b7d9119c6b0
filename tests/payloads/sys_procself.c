/* sys_procself.c - the payload's own /proc/self files: maps (and glibc's pthread_getattr_np, which reads it),
 * cmdline, environ, auxv, comm, also through /proc/<pid>/; printed as facts that hold natively too. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>

static long slurp(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    long n = 0, r;
    while (n < (long)size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0) n += r;
    buf[n] = 0;
    close(fd);
    return n;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    static char buf[1 << 16];
    int local = 0;
    pthread_attr_t attr;
    void *stack;
    size_t size;
    int r = pthread_getattr_np(pthread_self(), &attr);
    pthread_attr_getstack(&attr, &stack, &size);
    printf("pthread_getattr_np %d, stack holds a local: %d\n", r,
           (char *)&local >= (char *)stack && (char *)&local < (char *)stack + size);

    long n = slurp("/proc/self/maps", buf, sizeof buf);
    char self[4096];
    realpath(argv[0], self);
    int stack_line = 0, exe_line = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)&local >= lo && (uintptr_t)&local < hi)
            stack_line = strstr(line, "[stack]") != NULL && strstr(line, " rw-p ") != NULL;
        if (strstr(line, self) && strstr(line, "r-xp")) exe_line = 1;
    }
    printf("maps read %d, [stack] line holds a local %d, executable text line %d\n", n > 0, stack_line, exe_line);

    n = slurp("/proc/self/cmdline", buf, sizeof buf);
    int same = 1;
    long pos = 0;
    for (int i = 0; i < argc; i++) { same &= !strcmp(buf + pos, argv[i]); pos += strlen(argv[i]) + 1; }
    printf("cmdline is argv: %d (%ld bytes)\n", same && pos == n, n == pos ? n : -1L);

    n = slurp("/proc/self/environ", buf, sizeof buf);
    int found = 0;
    for (long p = 0; p < n; p += strlen(buf + p) + 1) found |= !strcmp(buf + p, "PROCSELF_MARKER=marker value");
    printf("environ has the marker: %d\n", found);

    n = slurp("/proc/self/auxv", buf, sizeof buf);
    unsigned long pagesz = 0, entry = 0;
    for (Elf64_auxv_t *a = (Elf64_auxv_t *)buf; (char *)a < buf + n && a->a_type != AT_NULL; a++) {
        if (a->a_type == AT_PAGESZ) pagesz = a->a_un.a_val;
        if (a->a_type == AT_ENTRY) entry = a->a_un.a_val;
    }
    printf("auxv AT_PAGESZ %lu, AT_ENTRY as getauxval: %d\n", pagesz, entry == getauxval(AT_ENTRY) && entry);

    struct stat exe, prog;
    int efd = open("/proc/self/exe", O_RDONLY);
    printf("/proc/self/exe opens the program's file: %d\n",
           efd >= 0 && !fstat(efd, &exe) && !stat(argv[0], &prog) && exe.st_ino == prog.st_ino);
    close(efd);
    prctl(PR_SET_NAME, "procself-name");
    slurp("/proc/self/comm", buf, sizeof buf);
    printf("comm [%s]", buf);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", getpid());
    char again[256];
    printf("/proc/<pid>/cmdline same length: %d\n", slurp(path, again, sizeof again) == pos);
    return 0;
}
