/* fuzz_syscalls.c - a random syscall stream: numbers 0-460 with random arguments (small ints, -1, pointers into a
 * scratch arena, paths, NULL, unmapped, kernel and misaligned addresses, huge lengths, random bits).
 *
 * usage: fuzz_syscalls COUNT SEED [FIRST]
 * Prints one line per call, "INDEX NR A0 A1 A2 A3 A4 A5 = RESULT" (RESULT the raw return or -ERRNO) or
 * "INDEX NR ... skip" for a call it must not make, then "fuzz done COUNT". The stream (numbers and arguments)
 * depends only on the seed, never on results, so a native run and a km run make the same calls; FIRST starts the
 * output at that index (the calls before it still run) and writes each line at once, to replay a failure.
 *
 * It must run in a throwaway sandbox: cwd a scratch directory, the rest of the file system read-only, no network
 * (tests/fuzz/sandbox.py). Calls are skipped only when they would end or block the stream or reach beyond the
 * process: exit, fork/clone/exec, signals with a real signal number, handlers and masks it relies on, its own
 * memory (image, heap, stack, TLS) and output descriptor, machine-wide settings (clock, modules, reboot, keys,
 * credentials, other processes). A call that may block gets a 10 ms SIGALRM watchdog (EINTR). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef SYS_quotactl_fd               /* newer than some libcs' headers */
#define SYS_quotactl_fd 443
#endif
#ifndef SYS_process_mrelease
#define SYS_process_mrelease 448
#endif
#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef SYS_futex_wait
#define SYS_futex_wait 455
#endif
#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

#define P 4096UL
#define ARENA ((char *)0x100000000000UL)   /* 16 scratch pages, then a read-only page, a PROT_NONE page, a hole */
#define ARENA_PAGES 16
#define RO (ARENA + ARENA_PAGES * P)
#define NONE (RO + P)
#define HOLE (NONE + P)
#define OUT 200                             /* the stream's output: random calls never get this number */
#define TASK_SIZE 0x7ffffffff000UL
#define LOW_PRECIOUS_END 0x100000000UL      /* the program image and its heap live below 4 GiB */
#define HIGH_PRECIOUS 0x7f0000000000UL      /* stack, vDSO, TLS mappings live above */
#define BIG (64UL << 20)

static uint64_t state;
static char out[1 << 16];
static size_t used;

static uint64_t next(void) {                /* splitmix64 */
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void flush(void) {
    size_t done = 0;
    while (done < used) {
        long n = syscall(SYS_write, OUT, out + done, used - done);
        if (n <= 0)
            break;
        done += n;
    }
    used = 0;
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
    va_list ap;
    if (used > sizeof out - 512)
        flush();
    va_start(ap, fmt);
    used += vsnprintf(out + used, sizeof out - used, fmt, ap);
    va_end(ap);
}

static const char *const paths[] = {
    "f0", "f1", "d0", "d0/f2", "l0", "p0", "nonexistent", "", ".", "f0/x", "d0/", "new0", "new1", "d1",
    "/proc/self/maps", "/proc/self/fd", "/dev/null", "/dev/zero", "/proc/self/status",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",          /* a 270-byte name: ENAMETOOLONG */
};

static long arg(void) {
    uint64_t r = next();
    switch (r % 20) {
    case 0: case 1: return (r >> 8) % 65;                         /* small ints, fds */
    case 2: return -1;
    case 3: case 4: return (long)(ARENA + ((r >> 8) % (ARENA_PAGES * P)) / 8 * 8);
    case 5: return (long)(ARENA + ((r >> 8) % ARENA_PAGES) * P);
    case 6: return (long)(ARENA + 1 + ((r >> 8) % (ARENA_PAGES * P - 8)) / 8 * 8);   /* misaligned */
    case 7: return (long)paths[(r >> 8) % (sizeof paths / sizeof *paths)];
    case 8: return 0;
    case 9: return 0x10 + (r >> 8) % 0xff0;                        /* the NULL page */
    case 10: return (r >> 8) & 1 ? (long)HOLE : 0xdeadbeef000L;  /* unmapped */
    case 11: return (r >> 8) & 1 ? (long)0xffff800000000000UL : (long)0xffffffffff600000UL;  /* kernel */
    case 12: {                                                    /* huge lengths */
        static const long huge[] = {1L << 62 << 1, 1L << 47, -4096, 0x7fffffff, 0xffffffffL, 1L << 32, 1L << 40,
                                    (1L << 47) - 4096, -2};
        return huge[(r >> 8) % (sizeof huge / sizeof *huge)];
    }
    case 13: return (long)next();
    case 14: return (long)RO + ((r >> 8) % P) / 8 * 8;
    case 15: return (long)NONE;
    case 16: return (long)(uint32_t)next();                       /* flags */
    case 17: return -100;                                         /* AT_FDCWD */
    case 18: return 1 + (r >> 8) % 8192;                          /* sizes */
    default: return (r >> 8) % 4 == 0 ? -4096 + (long)((r >> 10) % 4096) : (long)((r >> 8) % 16);
    }
}

static uint64_t page_align(uint64_t n) { return (n + P - 1) & ~(P - 1); }

/* Whether [addr, addr + len) as the kernel computes it (PAGE_ALIGN, 64-bit) may reach the program's own memory
 * (image, heap, stack, vDSO): a wrapping or empty range is refused before any VMA is touched. */
static int reaches_own_memory(uint64_t addr, uint64_t len) {
    uint64_t size = page_align(len), end = addr + size;
    if (!size || end < addr || addr >= TASK_SIZE)
        return 0;
    if (addr & (P - 1))                        /* mlock rounds the start down: be safe */
        addr &= ~(P - 1), end = addr + page_align(len + P);
    return (addr < LOW_PRECIOUS_END && end > 0x1000) || (end > HIGH_PRECIOUS && addr < TASK_SIZE);
}

static int valid_pointer(long p) {
    return (p >= (long)ARENA && p < (long)(NONE)) || (p >= (long)paths[0] - 65536 && p < (long)paths[0] + 65536);
}

static int real_signal(long sig) { return (int)sig >= 1 && (int)sig <= 64 && (unsigned long)sig < 0x100000000UL; }

/* Why a call must not be made, or NULL. */
static const char *skip(long nr, const long *a) {
    for (int i = 0; i < 6; i++)
        if (a[i] == OUT)
            return "its output descriptor";
    switch (nr) {
    case 335:                           /* unused on x86-64, but this project's host kernels kill its caller (SIGILL) */
        return "SIGILL from the host kernel";
    case SYS_exit: case SYS_exit_group: case SYS_rt_sigreturn: case SYS_fork: case SYS_vfork: case SYS_clone:
    case SYS_clone3: case SYS_execve: case SYS_execveat: case SYS_pause: case SYS_rt_sigsuspend:
        return "ends or stops the stream";
    case SYS_kill: case SYS_tkill: case SYS_pidfd_send_signal:
        return real_signal(a[1]) ? "a real signal" : NULL;
    case SYS_tgkill: case SYS_rt_tgsigqueueinfo:
        return real_signal(a[2]) ? "a real signal" : NULL;
    case SYS_rt_sigqueueinfo:
        return real_signal(a[1]) ? "a real signal" : NULL;
    case SYS_rt_sigaction:
        return valid_pointer(a[1]) ? "a handler of its own choosing" : NULL;
    case SYS_ptrace: case SYS_seccomp: case SYS_rseq: case SYS_userfaultfd: case SYS_perf_event_open:
    case SYS_bpf: case SYS_process_vm_writev: case SYS_process_madvise: case SYS_process_mrelease:
    case SYS_pidfd_getfd: case SYS_get_robust_list:
        return "tracing, filters, or another process's memory";
    case SYS_reboot: case SYS_kexec_load: case SYS_kexec_file_load: case SYS_init_module: case SYS_finit_module:
    case SYS_delete_module: case SYS_settimeofday: case SYS_clock_settime: case SYS_clock_adjtime: case SYS_adjtimex:
    case SYS_swapon: case SYS_swapoff: case SYS_acct: case SYS_syslog: case SYS_iopl: case SYS_ioperm:
    case SYS_mount: case SYS_umount2: case SYS_pivot_root: case SYS_chroot: case SYS_quotactl: case SYS_quotactl_fd:
    case SYS_vhangup: case SYS_add_key: case SYS_request_key: case SYS_keyctl: case SYS_sync: case SYS_syncfs:
    case SYS_move_mount: case SYS_fsmount: case SYS_fsopen: case SYS_fsconfig: case SYS_fspick: case SYS_open_tree:
    case SYS_mount_setattr: case SYS_setuid: case SYS_setgid: case SYS_setreuid: case SYS_setregid:
    case SYS_setresuid: case SYS_setresgid: case SYS_setfsuid: case SYS_setfsgid: case SYS_setgroups:
    case SYS_capset: case SYS_sched_setscheduler: case SYS_sched_setattr: case SYS_sched_setparam:
    case SYS_setpriority: case SYS_ioprio_set: case SYS_setns: case SYS_sethostname: case SYS_setdomainname:
        return "machine-wide, credentials or scheduling";
    case SYS_setrlimit:
        return "its limits";
    case SYS_prlimit64:
        return a[2] ? "its limits" : NULL;
    case SYS_setitimer: case SYS_timer_settime:
        return valid_pointer(a[1]) ? "a timer signal storm" : NULL;
    case SYS_mq_notify:
        return "a signal on arrival";
    case SYS_sched_setaffinity: case SYS_migrate_pages: case SYS_move_pages: case SYS_process_vm_readv:
        return a[0] && a[0] != getpid() ? "another process" : NULL;
    case SYS_fcntl:                                   /* F_SETOWN, F_SETSIG, F_SETLEASE, F_NOTIFY, F_SETOWN_EX */
        return (int)a[1] == 8 || (int)a[1] == 10 || (int)a[1] == 1024 || (int)a[1] == 1026 || (int)a[1] == 15
               ? "signals on I/O" : NULL;
    case SYS_prctl:                                   /* SECCOMP, SET_MM, SET_TSC, SYSCALL_USER_DISPATCH, GET_TID_ADDRESS */
        return (int)a[0] == 22 || (int)a[0] == 35 || (int)a[0] == 26 || (int)a[0] == 59 || (int)a[0] == 40
               ? "its own execution" : NULL;
    case SYS_arch_prctl: {
        int code = (int)a[0];
        return (code >= 0x1001 && code <= 0x1004) || code == 0x1012 || (code >= 0x4001 && code <= 0x4004) ||
               (code >= 0x5001 && code <= 0x5005) ? "its TLS or CPU state" : NULL;
    }
    case SYS_mlockall:
        return (a[0] & 3) && !(a[0] & 4) ? "populating everything" : NULL;
    case SYS_mmap:
        if ((a[3] & 0x10) && reaches_own_memory(a[0], a[1]))            /* MAP_FIXED over its own memory */
            return "its own memory";
        return (a[3] & (0x8000 | 0x2000)) && page_align(a[1]) > BIG ? "populating a huge mapping" : NULL;
    case SYS_fallocate:
        return (uint64_t)a[3] > BIG ? "filling the disk" : NULL;
    case SYS_shmat:     /* at an address it lands on the arena natively, and km does not serve it (ENOSYS) */
        return a[1] ? "mapping over its own memory" : NULL;
    case SYS_munmap: case SYS_mprotect: case SYS_pkey_mprotect: case SYS_madvise: case SYS_msync:
    case SYS_mlock: case SYS_mlock2: case SYS_munlock: case SYS_remap_file_pages: case SYS_mbind:
    case SYS_mseal:
        return reaches_own_memory(a[0], a[1]) ? "its own memory" : NULL;
    case SYS_mremap:
        if (reaches_own_memory(a[0], (uint64_t)a[1] > (uint64_t)a[2] ? a[1] : a[2]))
            return "its own memory";
        return (a[3] & 2) && reaches_own_memory(a[4], a[2]) ? "its own memory" : NULL;
    case SYS_close_range:
        return (unsigned)a[0] <= OUT && (unsigned)a[1] >= OUT ? "its output descriptor" : NULL;
    }
    return NULL;
}

/* Calls that may sleep: they get the watchdog. */
static int may_block(long nr) {
    switch (nr) {
    case SYS_read: case SYS_write: case SYS_readv: case SYS_writev: case SYS_pread64: case SYS_pwrite64:
    case SYS_preadv: case SYS_pwritev: case SYS_preadv2: case SYS_pwritev2: case SYS_open: case SYS_openat:
    case SYS_openat2: case SYS_creat: case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg: case SYS_sendto:
    case SYS_sendmsg: case SYS_sendmmsg: case SYS_accept: case SYS_accept4: case SYS_connect: case SYS_futex:
    case SYS_futex_waitv: case SYS_futex_wait: case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_select: case SYS_pselect6:
    case SYS_poll: case SYS_ppoll: case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2:
    case SYS_rt_sigtimedwait: case SYS_wait4: case SYS_waitid: case SYS_msgrcv: case SYS_msgsnd: case SYS_semop:
    case SYS_semtimedop: case SYS_flock: case SYS_fcntl: case SYS_splice: case SYS_tee: case SYS_vmsplice:
    case SYS_sendfile: case SYS_copy_file_range: case SYS_io_getevents: case SYS_io_pgetevents:
    case SYS_io_uring_enter: case SYS_mq_timedreceive: case SYS_mq_timedsend: case SYS_mq_open: case SYS_ioctl:
    case SYS_fsync: case SYS_fdatasync: case SYS_sync_file_range: case SYS_close: case SYS_dup2: case SYS_dup3:
    case SYS_restart_syscall: case SYS_getrandom:
        return 1;
    }
    return 0;
}

/* What a call wrote that differs from run to run (clocks, usage counters, inode numbers, free blocks, the CPU, random
 * bytes, remaining times, /proc text, the directory's name): which argument points at it and how many bytes (0: the
 * call's result). Later calls read paths and structures from the arena, so such bytes would make their answers
 * differ between two runs of one stream (a path named by the uptime's low bytes...). */
static const struct { long nr; int arg; long size; } volatile_out[] = {
    {SYS_time, 0, 8}, {SYS_gettimeofday, 0, 16}, {SYS_gettimeofday, 1, 8}, {SYS_clock_gettime, 1, 16},
    {SYS_sysinfo, 0, 112}, {SYS_times, 0, 32}, {SYS_getrusage, 1, 144}, {SYS_getcpu, 0, 4}, {SYS_getcpu, 1, 4},
    {SYS_getrandom, 0, 0}, {SYS_timer_gettime, 1, 32}, {SYS_timerfd_gettime, 1, 32}, {SYS_getitimer, 1, 32},
    {SYS_nanosleep, 1, 16}, {SYS_clock_nanosleep, 3, 16}, {SYS_select, 4, 16}, {SYS_pselect6, 4, 16},
    {SYS_ppoll, 2, 16}, {SYS_stat, 1, 144}, {SYS_lstat, 1, 144}, {SYS_fstat, 1, 144}, {SYS_newfstatat, 2, 144},
    {SYS_statx, 4, 256}, {SYS_statfs, 1, 120}, {SYS_fstatfs, 1, 120}, {SYS_getdents, 1, 0}, {SYS_getdents64, 1, 0},
    {SYS_readlink, 1, 0}, {SYS_readlinkat, 2, 0}, {SYS_read, 1, 0}, {SYS_pread64, 1, 0}, {SYS_getcwd, 0, 0},
    {SYS_msgctl, 2, 120}, {SYS_shmctl, 2, 112}, {SYS_semctl, 3, 64},
};

/* Zero those bytes where they lie in the arena's scratch pages: through the kernel (a read of /dev/zero), so a page
 * the stream made read-only or unmapped since is an EFAULT here, never a crash. Not on the record. */
static void scrub(long nr, const long *a, long r) {
    for (size_t i = 0; i < sizeof volatile_out / sizeof *volatile_out; i++) {
        if (volatile_out[i].nr != nr)
            continue;
        long size = volatile_out[i].size ? volatile_out[i].size : r, p = a[volatile_out[i].arg];
        if (size <= 0 || p < (long)ARENA || p >= (long)RO)
            continue;
        if (size > (long)RO - p)
            size = (long)RO - p;
        long zero = syscall(SYS_open, "/dev/zero", O_RDONLY | O_CLOEXEC);
        if (zero >= 0) {
            syscall(SYS_read, zero, p, size);
            syscall(SYS_close, zero);
        }
    }
}

/* Descriptors closed at once, or every later descriptor number (dup, eventfd...) would differ between two runs:
 * those Linux gives and km does not (ENOSYS, tests/fuzz's NOT_IMPLEMENTED), and inotify and fanotify instances,
 * which count against a per-user limit of the whole machine (128 each): root's other programs and the two other
 * streams running beside this one could leave none for one run and some for the next. */
static int closed_at_once(long nr) {
    return nr == SYS_memfd_secret || nr == SYS_signalfd || nr == SYS_signalfd4 || nr == SYS_io_uring_setup ||
           nr == SYS_landlock_create_ruleset || nr == SYS_inotify_init || nr == SYS_inotify_init1 ||
           nr == SYS_fanotify_init;
}

static void on_alarm(int sig) { (void)sig; }

static void watchdog(long usec) {
    struct itimerval t = {{0, 0}, {0, usec}};
    syscall(SYS_setitimer, ITIMER_REAL, &t, NULL);
}

static void sandbox_files(void) {
    int fd = open("f0", O_CREAT | O_TRUNC | O_WRONLY, 0644);
    static const char text[] = "the quick brown fox jumps over the lazy dog\n";
    for (int i = 0; i < 100; i++)
        write(fd, text, sizeof text - 1);
    close(fd);
    close(open("f1", O_CREAT | O_TRUNC | O_WRONLY, 0644));
    mkdir("d0", 0755);
    close(open("d0/f2", O_CREAT | O_TRUNC | O_WRONLY, 0600));
    unlink("l0");
    symlink("f0", "l0");
    unlink("p0");
    mkfifo("p0", 0644);
}

static void setup(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;                      /* no SA_RESTART: a blocked call returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGIO, &sa, NULL);
    sigaction(SIGXFSZ, &sa, NULL);
    sigaction(SIGTTOU, &sa, NULL);
    sigaction(SIGTTIN, &sa, NULL);
    struct rlimit files = {1000, 1000};             /* as km reports it: km's own descriptors live above */
    setrlimit(RLIMIT_NOFILE, &files);
    mmap(ARENA, (ARENA_PAGES + 2) * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    for (size_t i = 0; i < (ARENA_PAGES + 1) * P / 8; i++)
        ((uint64_t *)ARENA)[i] = next();
    memcpy(ARENA, "f0\0d0\0f1\0", 9);
    mprotect(RO, P, PROT_READ);
    mprotect(NONE, P, PROT_NONE);
    munmap(HOLE, 2 * P);
    sandbox_files();
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s COUNT SEED [FIRST]\n", argv[0]);
        return 2;
    }
    long count = atol(argv[1]), first = argc > 3 ? atol(argv[3]) : 0;
    if (fcntl(1, F_DUPFD, OUT) != OUT)
        return 3;
    int null = open("/dev/null", O_RDWR);
    dup2(null, 1);
    close(null);
    state = strtoull(argv[2], NULL, 0);
    setup();
    sigset_t none;
    sigemptyset(&none);
    for (long i = 0; i < count; i++) {
        long nr = next() % 461, a[6];
        for (int k = 0; k < 6; k++)
            a[k] = arg();
        const char *why = skip(nr, a);
        if (i >= first) {
            emit("%ld %ld %lx %lx %lx %lx %lx %lx", i, nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            if (first)
                flush();                               /* replaying: the call is on record before it runs */
        }
        if (why) {
            if (i >= first)
                emit(" skip\n");
            continue;
        }
        int guard = may_block(nr);
        if (guard)
            watchdog(10000);
        long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        int e = errno;
        if (guard)
            watchdog(0);
        if (nr == SYS_rt_sigprocmask || nr == SYS_rt_sigtimedwait || nr == SYS_signalfd4 || nr == SYS_signalfd)
            sigprocmask(SIG_SETMASK, &none, NULL);     /* the watchdog's SIGALRM must stay deliverable */
        scrub(nr, a, r);
        if (r >= 0 && closed_at_once(nr))
            syscall(SYS_close, r);
        if (i >= first)
            emit(" = %ld\n", r == -1 ? -e : r);
        if (i % 1000 == 999 || first)
            flush();
    }
    emit("fuzz done %ld\n", count);
    flush();
    return 0;
}
