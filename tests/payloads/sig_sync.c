/* Synchronous and self-sent signals: `sig_sync.km <test>`; every line is deterministic (compared with native).
   raise · segv (SA_SIGINFO, si_addr, siglongjmp) · altstack · fpe · ill · resethand · nodefer · mask · fpregs
   · crash (unhandled SIGSEGV). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static volatile int last_signo;
static sigjmp_buf jump;
static volatile void *fault_addr;
static volatile int fault_code;
static volatile long fault_tid;

static void count(int signo) { hits++; last_signo = signo; }

static void on_fault(int signo, siginfo_t *info, void *uc) {
    (void)uc;
    last_signo = signo;
    fault_addr = info->si_addr;
    fault_code = info->si_code;
    siglongjmp(jump, 1);
}

static void install(int signo, void (*fn)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}

static void install_info(int signo, void (*fn)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}

static void show_info(int signo, siginfo_t *info, void *uc) {
    (void)uc;
    printf("siginfo: signo %d code %d pid ok %d uid ok %d\n", signo, info->si_code, info->si_pid == getpid(),
           info->si_uid == getuid());
}

static int test_siginfo(void) {
    /* kill: SI_USER, tgkill (raise): SI_TKILL, sigqueue: SI_QUEUE; each with the sender's pid and uid */
    install_info(SIGUSR1, show_info, 0);
    kill(getpid(), SIGUSR1);
    raise(SIGUSR1);
    sigqueue(getpid(), SIGUSR1, (union sigval){.sival_int = 1});
    return 0;
}

static int test_raise(void) {
    install(SIGUSR1, count, 0);
    raise(SIGUSR1);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);
    printf("raise: hits %d signo %d\n", hits, last_signo);
    return 0;
}

static int test_segv(void) {
    install_info(SIGSEGV, on_fault, 0);
    char *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int survived = 0;
    for (int i = 0; i < 3; i++) {        /* the handler runs again after each siglongjmp (mask restored) */
        if (sigsetjmp(jump, 1) == 0) {
            page[100 + i] = 1;
        } else {
            survived++;
            printf("segv: signo %d addr=page+%ld code %d\n", last_signo, (long)((char *)fault_addr - page),
                   fault_code);
        }
    }
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(jump, 1) == 0)
        ro[8] = 1;
    else
        printf("segv: read-only addr=ro+%ld code %d\n", (long)((char *)fault_addr - ro), fault_code);
    if (sigsetjmp(jump, 1) == 0)
        *(volatile int *)24 = 1;
    else
        printf("segv: unmapped addr=%p code %d\n", fault_addr, fault_code);
    printf("segv: survived %d\n", survived);
    return 0;
}

static char *alt_base;
static size_t alt_size;
static volatile int on_alt, alt_flags;

static void on_altstack(int signo) {
    char local;
    stack_t now;
    (void)signo;
    on_alt = &local >= alt_base && &local < alt_base + alt_size;
    sigaltstack(NULL, &now);
    alt_flags = now.ss_flags;
}

static int test_altstack(void) {
    alt_size = 64 * 1024;
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    install(SIGUSR2, on_altstack, SA_ONSTACK);
    raise(SIGUSR2);
    printf("altstack: handler on alt stack %d ss_flags %d\n", on_alt, alt_flags);
    install(SIGUSR2, on_altstack, 0);
    raise(SIGUSR2);
    printf("altstack: without SA_ONSTACK on alt stack %d\n", on_alt);
    stack_t old;
    sigaltstack(NULL, &old);
    printf("altstack: outside handler ss_flags %d size ok %d\n", old.ss_flags, old.ss_size == alt_size);
    return 0;
}

static volatile int zero;

static int test_fpe(void) {
    install_info(SIGFPE, on_fault, 0);
    if (sigsetjmp(jump, 1) == 0) {
        volatile int x = 10 / zero;
        (void)x;
        printf("fpe: no signal\n");
    } else {
        printf("fpe: signo %d code %d (FPE_INTDIV %d)\n", last_signo, fault_code, FPE_INTDIV);
    }
    return 0;
}

static void *volatile ud2_addr;

static int test_ill(void) {
    install_info(SIGILL, on_fault, 0);
    if (sigsetjmp(jump, 1) == 0) {
        __asm__ volatile("lea 0f(%%rip), %%rax\n\tmov %%rax, %0\n\t" "0: ud2" : "=m"(ud2_addr) :: "rax");
        printf("ill: no signal\n");
    } else {
        printf("ill: signo %d code %d (ILL_ILLOPN %d) addr at ud2 %d\n", last_signo, fault_code, ILL_ILLOPN,
               fault_addr == ud2_addr);
    }
    return 0;
}

static int test_resethand(void) {
    install(SIGUSR1, count, SA_RESETHAND);
    raise(SIGUSR1);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    printf("resethand: hits %d handler now SIG_DFL %d\n", hits, now.sa_handler == SIG_DFL);
    return 0;
}

static volatile int depth, max_depth, calls;

static void nested(int signo) {
    depth++;
    calls++;
    if (depth > max_depth)
        max_depth = depth;
    if (calls < 3)
        raise(signo);            /* delivered at once only under SA_NODEFER, else after the handler returns */
    depth--;
}

static int test_nodefer(void) {
    install(SIGUSR1, nested, SA_NODEFER);
    raise(SIGUSR1);
    printf("nodefer: calls %d max depth %d\n", calls, max_depth);
    max_depth = calls = 0;
    install(SIGUSR1, nested, 0);
    raise(SIGUSR1);
    printf("defer: calls %d max depth %d\n", calls, max_depth);   /* 1: the nested raise waits for the handler's return */
    return 0;
}

static int test_mask(void) {
    install(SIGUSR1, count, 0);
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    sigpending(&pending);
    printf("mask: blocked hits %d pending %d\n", hits, sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    sigpending(&pending);
    printf("mask: unblocked hits %d pending %d\n", hits, sigismember(&pending, SIGUSR1));
    /* the handler's own sa_mask: SIGUSR2 is blocked while the SIGUSR1 handler runs */
    return 0;
}

static volatile double handler_result;

static void clobber_fp(int signo) {
    (void)signo;
    volatile double a = 1.5, b = 2.25;
    handler_result = a * b;
    __asm__ volatile("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm7, %%xmm7\n\t"
                     "pcmpeqd %%xmm8, %%xmm8\n\tpcmpeqd %%xmm15, %%xmm15\n\tfninit" ::: "xmm0", "xmm1", "xmm7",
                     "xmm8", "xmm15");
}

static int test_fpregs(void) {
    install(SIGUSR1, clobber_fp, 0);
    double before[4] = {3.25, -7.5, 1e100, 0.125}, after[4];
    register double x0 __asm__("xmm0");
    __asm__ volatile("movsd %4, %%xmm0\n\tmovsd %5, %%xmm1\n\tmovsd %6, %%xmm8\n\tmovsd %7, %%xmm15\n\t"
                     "mov %8, %%edi\n\tmov $62, %%eax\n\t"       /* kill(pid, SIGUSR1): delivered on return */
                     "mov %9, %%esi\n\tsyscall\n\t"
                     "movsd %%xmm0, %0\n\tmovsd %%xmm1, %1\n\tmovsd %%xmm8, %2\n\tmovsd %%xmm15, %3"
                     : "=m"(after[0]), "=m"(after[1]), "=m"(after[2]), "=m"(after[3])
                     : "m"(before[0]), "m"(before[1]), "m"(before[2]), "m"(before[3]), "r"(getpid()), "r"(SIGUSR1)
                     : "rax", "rdi", "rsi", "rcx", "r11", "xmm0", "xmm1", "xmm8", "xmm15", "memory");
    (void)x0;
    long double ld = 1.0L / 3.0L;                /* x87 state across a handler that did fninit */
    raise(SIGUSR1);
    long double ld3 = ld * 3.0L;
    printf("fpregs: %g %g %g %g handler %g x87 %d\n", after[0], after[1], after[2], after[3], handler_result,
           ld3 > 0.999L && ld3 < 1.001L);
    return 0;
}

static int test_coalesce(void) {
    /* a standard signal is pending at most once; real-time signals queue, each with its value, in order */
    install(SIGUSR1, count, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("coalesce: standard hits %d\n", hits);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (int i = 1; i <= 3; i++) {
        union sigval value = {.sival_int = i * 11};
        if (sigqueue(getpid(), SIGRTMIN + (i == 2), value))
            perror("sigqueue");
    }
    struct timespec zero_timeout = {0, 0};
    siginfo_t info;
    int got;
    while ((got = sigtimedwait(&set, &info, &zero_timeout)) > 0)
        printf("coalesce: rt SIGRTMIN+%d value %d code SI_QUEUE %d\n", got - SIGRTMIN, info.si_value.sival_int,
               info.si_code == SI_QUEUE);
    return 0;
}

static volatile char order[8];
static volatile int norder;

static void record(int signo) { order[norder++] = signo == SIGUSR1 ? '1' : signo == SIGUSR2 ? '2' : '?'; }

static int test_order(void) {
    /* two pending signals unblocked at once: both handlers run before sigprocmask returns */
    install(SIGUSR1, record, 0);
    install(SIGUSR2, record, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR2);
    raise(SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("order: %d handlers ran before sigprocmask returned, in order %s\n", norder, (const char *)order);
    return 0;
}

static void skip_instruction(int signo, siginfo_t *info, void *ucv) {
    /* a JIT's trick: step over the faulting 7-byte `movl $1, 0x10(%rax)`... by editing the saved RIP */
    ucontext_t *uc = ucv;
    (void)signo;
    fault_addr = info->si_addr;
    uc->uc_mcontext.gregs[REG_RIP] += 7;
    uc->uc_mcontext.gregs[REG_RBX] = 0x1234;
    sigaddset(&uc->uc_sigmask, SIGUSR2);           /* the mask sigreturn restores */
}

static int test_ucontext(void) {
    install_info(SIGSEGV, skip_instruction, 0);
    long rbx;
    __asm__ volatile("xor %%ebx, %%ebx\n\tmov $0x100, %%rax\n\t"
                     ".byte 0xc7, 0x40, 0x10, 0x01, 0x00, 0x00, 0x00\n\t"     /* movl $1, 0x10(%%rax) */
                     "mov %%rbx, %0" : "=r"(rbx) :: "rax", "rbx", "memory");
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("ucontext: resumed after the fault addr %p rbx %#lx SIGUSR2 now blocked %d\n", fault_addr, rbx,
           sigismember(&now, SIGUSR2));
    return 0;
}

static int test_abort(void) {
    install(SIGABRT, count, 0);
    printf("abort: calling abort with a handler\n");
    abort();                          /* the handler returns: abort resets SIGABRT and raises it again */
}

static int test_sigkill(void) {
    printf("sigkill: sending\n");
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif
static volatile int inside_flags;

static void report_altstack(int signo) {
    char local;
    stack_t now;
    (void)signo;
    on_alt = &local >= alt_base && &local < alt_base + alt_size;
    sigaltstack(NULL, &now);
    inside_flags = now.ss_flags;
}

static int test_autodisarm(void) {
    /* SS_AUTODISARM: the alternate stack is disarmed while a handler runs on it, and back after sigreturn */
    alt_size = 64 * 1024;
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = SS_AUTODISARM};
    int r = sigaltstack(&ss, NULL);
    install(SIGUSR2, report_altstack, SA_ONSTACK);
    raise(SIGUSR2);
    stack_t after;
    sigaltstack(NULL, &after);
    printf("autodisarm: set %d, handler on alt %d, flags inside %#x, after %#x size ok %d\n", r, on_alt,
           (unsigned)inside_flags, (unsigned)after.ss_flags, after.ss_size == alt_size);
    raise(SIGUSR2);
    printf("autodisarm: again on alt %d\n", on_alt);
    return 0;
}

static volatile int overflow_on_alt;

static void on_overflow(int signo, siginfo_t *info, void *uc) {
    char local;
    (void)info, (void)uc;
    overflow_on_alt = &local >= alt_base && &local < alt_base + alt_size;
    last_signo = signo;
    siglongjmp(jump, 1);
}

static int recurse(int depth) {
    volatile char pad[1024];
    pad[0] = (char)depth;
    return recurse(depth + 1) + pad[0];
}

static int test_overflow(void) {
    /* the classic sigaltstack use: a stack overflow's SIGSEGV handled on the alternate stack */
    alt_size = 64 * 1024;
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    install_info(SIGSEGV, on_overflow, SA_ONSTACK);
    struct rlimit lim = {8 << 20, 8 << 20};
    setrlimit(RLIMIT_STACK, &lim);
    if (sigsetjmp(jump, 1) == 0)
        recurse(0);
    printf("overflow: signo %d handled on alt stack %d\n", last_signo, overflow_on_alt);
    return 0;
}

static void *thread_faults(void *arg) {
    (void)arg;
    if (sigsetjmp(jump, 1) == 0)
        *(volatile int *)32 = 1;
    else
        printf("thread segv: handled on the faulting thread %d addr %p\n", (long)syscall(SYS_gettid) == fault_tid,
               fault_addr);
    return NULL;
}

static void on_thread_fault(int signo, siginfo_t *info, void *uc) {
    fault_tid = syscall(SYS_gettid);
    on_fault(signo, info, uc);
}

static int test_thread_segv(void) {
    install_info(SIGSEGV, on_thread_fault, 0);
    pthread_t t;
    pthread_create(&t, NULL, thread_faults, NULL);
    pthread_join(t, NULL);
    return 0;
}

static void edit_xmm2(int signo, siginfo_t *info, void *ucv) {
    /* the handler sees the interrupted SSE state in the frame's fpstate, and edits to it are restored */
    ucontext_t *uc = ucv;
    double seen;
    (void)signo, (void)info;
    memcpy(&seen, &uc->uc_mcontext.fpregs->_xmm[2], sizeof seen);
    handler_result = seen;
    double replaced = 42.5;
    memcpy(&uc->uc_mcontext.fpregs->_xmm[2], &replaced, sizeof replaced);
    uc->uc_mcontext.fpregs->mxcsr |= 0x6000;        /* rounding: toward zero */
}

static int test_fpstate(void) {
    install_info(SIGUSR1, edit_xmm2, 0);
    double in = 6.75, out;
    unsigned mxcsr;
    __asm__ volatile("movsd %2, %%xmm2\n\t"
                     "mov %3, %%edi\n\tmov %4, %%esi\n\tmov $62, %%eax\n\tsyscall\n\t"
                     "movsd %%xmm2, %0\n\tstmxcsr %1"
                     : "=m"(out), "=m"(mxcsr) : "m"(in), "r"(getpid()), "r"(SIGUSR1)
                     : "rax", "rdi", "rsi", "rcx", "r11", "xmm2", "memory");
    printf("fpstate: handler saw %g, after return %g, rounding bits %#x\n", handler_result, out, mxcsr & 0x6000);
    return 0;
}

static int test_badstack(void) {
    /* no room for the signal frame: the kernel kills with SIGSEGV */
    install(SIGUSR1, count, 0);
    printf("badstack: raising with rsp in an unmapped page\n");
    fflush(stdout);
    __asm__ volatile("mov %0, %%edi\n\tmov %1, %%esi\n\tmov $62, %%eax\n\tmov $0x1000, %%rsp\n\tsyscall\n\t"
                     "ud2" :: "r"(getpid()), "r"(SIGUSR1) : "rax", "rdi", "rsi", "rcx", "r11", "memory");
    return 0;
}

static int test_badreturn(void) {
    /* rt_sigreturn with no frame under rsp: the kernel kills with SIGSEGV */
    printf("badreturn: rt_sigreturn with rsp in an unmapped page\n");
    fflush(stdout);
    __asm__ volatile("mov $0x1000, %%rsp\n\tmov $15, %%eax\n\tsyscall\n\tud2" ::: "rax", "rcx", "r11", "memory");
    return 0;
}

static void corrupt_xsave(int signo, siginfo_t *info, void *ucv) {
    /* reserved bits in the XSAVE header of the frame's fpstate: sigreturn cannot restore it */
    ucontext_t *uc = ucv;
    (void)signo, (void)info;
    unsigned char *xsave = (unsigned char *)uc->uc_mcontext.fpregs;
    xsave[512 + 8 + 7] = 0xff;                  /* xcomp_bv: compacted format bit + garbage */
    xsave[512 + 7] = 0x80;
}

static int test_badfpstate(void) {
    install_info(SIGUSR1, corrupt_xsave, 0);
    printf("badfpstate: raising\n");
    fflush(stdout);
    raise(SIGUSR1);
    printf("badfpstate: survived\n");
    return 0;
}

static int test_ignored_fault(void) {
    /* SIG_IGN does not apply to a synchronous fault: it kills */
    signal(SIGSEGV, SIG_IGN);
    printf("ignored fault: faulting\n");
    fflush(stdout);
    *(volatile int *)8 = 1;
    return 0;
}

static int test_crash(void) {
    printf("crash: about to fault\n");
    fflush(stdout);
    *(volatile int *)16 = 1;
    return 0;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "raise";
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct { const char *name; int (*fn)(void); } tests[] = {
        {"raise", test_raise}, {"siginfo", test_siginfo}, {"segv", test_segv}, {"altstack", test_altstack}, {"fpe", test_fpe},
        {"ill", test_ill}, {"resethand", test_resethand}, {"nodefer", test_nodefer}, {"mask", test_mask},
        {"fpregs", test_fpregs}, {"coalesce", test_coalesce}, {"order", test_order}, {"ucontext", test_ucontext},
        {"overflow", test_overflow}, {"thread_segv", test_thread_segv}, {"abort", test_abort}, {"sigkill", test_sigkill},
        {"fpstate", test_fpstate}, {"badstack", test_badstack}, {"ignored_fault", test_ignored_fault},
        {"badreturn", test_badreturn}, {"autodisarm", test_autodisarm}, {"badfpstate", test_badfpstate}, {"crash", test_crash},
    };
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
        if (!strcmp(what, tests[i].name))
            return tests[i].fn();
    fprintf(stderr, "unknown test %s\n", what);
    return 2;
}
