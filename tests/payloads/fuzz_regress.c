/* fuzz_regress.c - the calls the syscall fuzzer (fuzz_syscalls.c) found answered differently under km, one case
 * per defect, each printing what a program would see; compared with a native run (tests/fuzz/test_regressions.py).
 * usage: fuzz_regress CASE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r) {
    printf("%-40s %s\n", what, r < 0 ? strerror(errno) : r == 0 ? "0" : "ok");
}

static void on_alarm(int sig) { (void)sig; }

static int fallocate_case(void) {
    int fd = open("fuzz-regress.tmp", O_CREAT | O_TRUNC | O_RDWR, 0600);
    unlink("fuzz-regress.tmp");
    show("fallocate 0..64 KiB", syscall(SYS_fallocate, fd, 0, 0L, 65536L));
    struct stat st;
    fstat(fd, &st);
    printf("%-40s %lld\n", "size after fallocate", (long long)st.st_size);
    show("fallocate length 0", syscall(SYS_fallocate, fd, 0, 0L, 0L));
    show("fadvise64 advice 99", syscall(SYS_fadvise64, fd, 0L, 0L, 99));
    show("fadvise64 DONTNEED", syscall(SYS_fadvise64, fd, 0L, 0L, 4));
    return 0;
}

static int sigtimedwait_case(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;                       /* no SA_RESTART: the wait ends with EINTR */
    sigaction(SIGALRM, &sa, NULL);
    uint64_t set = 1UL << (SIGUSR1 - 1);
    struct timespec forever = {INT64_MAX, 0}, bad = {0, 1000000000L}, negative = {-1, 0};
    show("rt_sigtimedwait size 7", syscall(SYS_rt_sigtimedwait, &set, NULL, &forever, 7));
    show("rt_sigtimedwait nsec 1e9", syscall(SYS_rt_sigtimedwait, &set, NULL, &bad, 8));
    show("rt_sigtimedwait sec -1", syscall(SYS_rt_sigtimedwait, &set, NULL, &negative, 8));
    struct itimerval t = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &t, NULL);
    show("rt_sigtimedwait 2^63 s, alarm", syscall(SYS_rt_sigtimedwait, &set, NULL, &forever, 8));
    return 0;
}

static int ids_case(void) {
    gid_t groups[64];
    uint64_t pending = 0;
    show("getgroups -1", syscall(SYS_getgroups, -1, groups));
    show("rt_sigpending size 9", syscall(SYS_rt_sigpending, &pending, 9));
    show("rt_sigpending size 4", syscall(SYS_rt_sigpending, &pending, 4));
    show("close_range flags above 32 bits", syscall(SYS_close_range, 900, 950, 1L << 40));
    /* int and unsigned int arguments are their low 32 bits */
    show("getpriority which 2^32 (0)", syscall(SYS_getpriority, 1L << 32, 0));
    struct rlimit { uint64_t cur, max; } limit;
    show("getrlimit resource 2^63 (0)", syscall(SYS_getrlimit, 1UL << 63, &limit));
    show("getrlimit NULL", syscall(SYS_getrlimit, 0, NULL));
    show("kill signal 2^40 (0)", syscall(SYS_kill, getpid(), 1L << 40));
    /* getcwd copies the path only: a buffer whose tail is unmapped is fine */
    char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page + 4096, 4096);
    show("getcwd, buffer's tail unmapped", syscall(SYS_getcwd, page + 4096 - 64, 8192));
    show("getcwd, size 1", syscall(SYS_getcwd, page, 1));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "fallocate"))
        return fallocate_case();
    if (!strcmp(c, "sigtimedwait"))
        return sigtimedwait_case();
    if (!strcmp(c, "ids"))
        return ids_case();
    fprintf(stderr, "usage: %s fallocate|sigtimedwait|ids\n", argv[0]);
    return 2;
}
