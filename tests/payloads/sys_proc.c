/* sys_proc.c - identity, limits, randomness, TLS and time syscalls, printed for a differential run.
 * Lines starting with '~' differ between runs (pids, km's uname version) and are checked by the test alone.
 * usage: sys_proc                 the checks
 *        sys_proc exit N          exit(N) through SYS_exit (one thread: the process ends with N)
 *        sys_proc exit_group N    exit_group(N) */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/utsname.h>

#define ARCH_SET_GS 0x1001
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#define PR_SET_NAME 15
#define PR_GET_NAME 16

static double now(clockid_t c) {
    struct timespec t;
    syscall(SYS_clock_gettime, c, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void identity(void) {
    struct utsname u, host;
    printf("uname = %ld\n", syscall(SYS_uname, &u));
    printf("sysname %s machine %s\n", u.sysname, u.machine);
    printf("~version %s\n", u.version);
    printf("~release %s\n", u.release);
    long pid = syscall(SYS_getpid), tid = syscall(SYS_gettid);
    printf("gettid == getpid in the main thread: %d\n", pid == tid && pid > 1);
    printf("~pid %ld\n", pid);
    printf("getppid %ld\n", (long)syscall(SYS_getppid));
    printf("uid %ld euid %ld gid %ld egid %ld\n", syscall(SYS_getuid), syscall(SYS_geteuid), syscall(SYS_getgid),
           syscall(SYS_getegid));
    unsigned r, e, s;
    printf("getresuid %ld %u %u %u\n", syscall(SYS_getresuid, &r, &e, &s), r, e, s);
    char name[17] = {0};
    printf("prctl set name %ld\n", syscall(SYS_prctl, PR_SET_NAME, "worker-name-long-truncated", 0, 0, 0));
    printf("prctl get name %ld [%s]\n", syscall(SYS_prctl, PR_GET_NAME, name, 0, 0, 0), name);
    (void)host;
}

static void limits(void) {
    struct rlimit rl;
    printf("getrlimit STACK %ld\n", syscall(SYS_getrlimit, RLIMIT_STACK, &rl));
    printf("~stack %lu %lu\n", (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
    struct rlimit old;
    printf("prlimit64 NOFILE %ld\n", syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &old));
    printf("~nofile %lu %lu\n", (unsigned long)old.rlim_cur, (unsigned long)old.rlim_max);
    printf("nofile soft <= hard: %d, at least 256: %d\n", old.rlim_cur <= old.rlim_max, old.rlim_cur >= 256);
    long bad = syscall(SYS_prlimit64, 0, 999, NULL, &old);
    printf("prlimit64 bad resource %ld %s\n", bad, errno == EINVAL ? "EINVAL" : "?");
    struct sysinfo si;
    printf("sysinfo %ld\n", syscall(SYS_sysinfo, &si));
    printf("sysinfo uptime>0 %d totalram>0 %d mem_unit %u procs>0 %d\n", si.uptime > 0, si.totalram > 0, si.mem_unit,
           si.procs > 0);
    unsigned char buf[64] = {0}, zero[64] = {0};
    printf("getrandom %ld\n", syscall(SYS_getrandom, buf, sizeof buf, 0));
    printf("getrandom filled: %d\n", memcmp(buf, zero, sizeof buf) != 0);
    printf("getrandom NONBLOCK %ld\n", syscall(SYS_getrandom, buf, 16, 1));
}

static __thread int tls_var = 42;

static void tls(void) {
    uintptr_t fs = 0, gs = 0;
    printf("arch_prctl GET_FS %ld\n", syscall(SYS_arch_prctl, ARCH_GET_FS, &fs));
    uintptr_t self;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(self));
    printf("fs base is the thread pointer: %d, tls var %d\n", fs == self && fs != 0, tls_var);
    static uint64_t gsarea[4] = {0x1122334455667788ULL};
    printf("arch_prctl SET_GS %ld\n", syscall(SYS_arch_prctl, ARCH_SET_GS, gsarea));
    long got = syscall(SYS_arch_prctl, ARCH_GET_GS, &gs);
    printf("arch_prctl GET_GS %ld same: %d\n", got, gs == (uintptr_t)gsarea);
    uint64_t v;
    __asm__ volatile("mov %%gs:0, %0" : "=r"(v));
    printf("gs:0 reads the area: %d\n", v == 0x1122334455667788ULL);
    got = syscall(SYS_arch_prctl, 0x9999, 0);
    printf("arch_prctl bad code %ld %s\n", got, errno == EINVAL ? "EINVAL" : "?");
}

static void times_(void) {
    double m0 = now(CLOCK_MONOTONIC), r0 = now(CLOCK_REALTIME);
    struct timeval tv;
    printf("gettimeofday %ld\n", syscall(SYS_gettimeofday, &tv, NULL));
    double g = tv.tv_sec + tv.tv_usec / 1e6;
    long t = syscall(SYS_time, NULL);
    printf("realtime, gettimeofday and time agree: %d %d\n", g - r0 < 1 && g - r0 > -1, t - (long)r0 <= 1 && t >= (long)r0 - 1);  /* time() reads the coarse clock: a tick behind */
    struct timespec req = {0, 30 * 1000 * 1000}, rem = {0, 0};
    printf("nanosleep %ld\n", syscall(SYS_nanosleep, &req, &rem));
    double m1 = now(CLOCK_MONOTONIC);
    printf("nanosleep slept >= 30 ms: %d, < 2 s: %d\n", m1 - m0 >= 0.030, m1 - m0 < 2);
    printf("clock_nanosleep %ld\n", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &req, &rem));
    struct timespec abs;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &abs);
    abs.tv_nsec += 20 * 1000 * 1000;
    if (abs.tv_nsec >= 1000000000) { abs.tv_sec++; abs.tv_nsec -= 1000000000; }
    printf("clock_nanosleep TIMER_ABSTIME %ld\n", syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL));
    double m2 = now(CLOCK_MONOTONIC);
    printf("monotonic advanced >= 80 ms: %d\n", m2 - m0 >= 0.080);
    struct timespec bad = {0, 2000000000};
    long r = syscall(SYS_nanosleep, &bad, NULL);
    printf("nanosleep bad nsec %ld %s\n", r, errno == EINVAL ? "EINVAL" : "?");
    struct timespec res;
    printf("clock_getres %ld\n", syscall(SYS_clock_getres, CLOCK_MONOTONIC, &res));
    printf("process cputime sane: %d\n", now(CLOCK_PROCESS_CPUTIME_ID) >= 0);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 2 && !strcmp(argv[1], "exit")) {
        printf("exiting with %s\n", argv[2]);
        syscall(SYS_exit, atoi(argv[2]));
    }
    if (argc > 2 && !strcmp(argv[1], "exit_group")) {
        printf("exit_group with %s\n", argv[2]);
        syscall(SYS_exit_group, atoi(argv[2]));
    }
    identity();
    limits();
    tls();
    times_();
    return 0;
}
