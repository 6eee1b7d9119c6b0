/* Blocking syscalls and signals across threads: `sig_block.km <test>`; output is deterministic (compared with
   native). A blocked thread must block only itself; a handled signal cuts its call short (EINTR) or, under
   SA_RESTART, restarts it (signal(7)). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static volatile pid_t handler_tid;
static int pipefd[2];
static volatile int started;
static int futex_word;

static void on_signal(int signo) {
    (void)signo;
    handler_tid = syscall(SYS_gettid);
    handled++;
}

static void install(int signo, int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}

static void wait_for(volatile int *flag) {
    while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST))
        usleep(1000);
}

static void wait_handled(int n) {
    while (handled < n)
        usleep(1000);
}

/* ---- a thread blocked in a call; main signals it ---------------------------------------------------------- */
struct blocked { const char *call; long result; int err; pid_t tid; char byte; double slept; };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *blocker(void *arg) {
    struct blocked *b = arg;
    b->tid = syscall(SYS_gettid);
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    double t0 = now();
    errno = 0;
    if (!strcmp(b->call, "read")) {
        b->result = read(pipefd[0], &b->byte, 1);
    } else if (!strcmp(b->call, "nanosleep")) {
        struct timespec req = {5, 0}, rem = {0, 0};
        b->result = nanosleep(&req, &rem);
    } else if (!strcmp(b->call, "futex")) {
        b->result = syscall(SYS_futex, &futex_word, 0 /* FUTEX_WAIT */, 0, NULL, NULL, 0);
    } else if (!strcmp(b->call, "futex_timeout")) {
        struct timespec timeout = {5, 0};
        b->result = syscall(SYS_futex, &futex_word, 0 /* FUTEX_WAIT */, 0, &timeout, NULL, 0);
    } else if (!strcmp(b->call, "pause")) {
        b->result = pause();
    } else if (!strcmp(b->call, "sigsuspend")) {
        sigset_t empty;
        sigemptyset(&empty);
        b->result = sigsuspend(&empty);
    }
    b->err = errno;
    b->slept = now() - t0;
    return NULL;
}

/* The main thread keeps working while the other is blocked (proof that a block is per thread), then signals it. */
static int run_blocked(const char *call, int flags) {
    struct blocked b = {.call = call};
    pthread_t t;
    install(SIGUSR1, flags);
    pipe(pipefd);
    pthread_create(&t, NULL, blocker, &b);
    wait_for(&started);
    usleep(50000);                         /* let it block */
    long work = 0;
    for (int i = 0; i < 1000; i++)
        work += getppid() > 0;
    pthread_kill(t, SIGUSR1);
    wait_handled(1);
    usleep(20000);
    if (flags & SA_RESTART) {              /* the restarted call must still be waiting: complete it */
        if (!strcmp(call, "read"))
            write(pipefd[1], "x", 1);
        if (!strcmp(call, "futex")) {
            __atomic_store_n(&futex_word, 1, __ATOMIC_SEQ_CST);
            syscall(SYS_futex, &futex_word, 1 /* FUTEX_WAKE */, 1, NULL, NULL, 0);
        }
    }
    pthread_join(t, NULL);
    printf("%s%s: main worked %ld, handler on blocked thread %d, result %ld errno %s%s%s\n", call,
           flags & SA_RESTART ? " SA_RESTART" : "", work, handler_tid == b.tid, b.result,
           b.err == EINTR ? "EINTR" : b.err ? strerror(b.err) : "0",
           b.byte ? ", read " : "", b.byte ? (char[]){b.byte, 0} : "");
    return 0;
}

/* ---- timers, waits, masks ----------------------------------------------------------------------------------- */
static int run_alarm(void) {
    install(SIGALRM, 0);
    alarm(1);
    double t0 = now();
    int r = pause();
    printf("alarm: pause %d %s handled %d after >=0.9s %d\n", r, errno == EINTR ? "EINTR" : "?", handled,
           now() - t0 >= 0.9);
    return 0;
}

static int run_itimer(void) {
    install(SIGALRM, SA_RESTART);
    struct itimerval it = {{0, 20000}, {0, 20000}};       /* every 20 ms */
    setitimer(ITIMER_REAL, &it, NULL);
    while (handled < 5)
        pause();
    struct itimerval off = {{0, 0}, {0, 0}}, old;
    setitimer(ITIMER_REAL, &off, &old);
    printf("itimer: %d SIGALRMs, interval was %ld us\n", handled >= 5, (long)old.it_interval.tv_usec);
    return 0;
}

static void *send_later(void *arg) {
    usleep(30000);
    kill(getpid(), (int)(long)arg);
    return NULL;
}

static int run_sigtimedwait(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);       /* threads created after inherit the mask */
    pthread_t t;
    pthread_create(&t, NULL, send_later, (void *)(long)SIGUSR2);
    siginfo_t info;
    int got = sigwaitinfo(&set, &info);
    printf("sigwaitinfo: %d si_signo %d si_code SI_USER %d si_pid ok %d\n", got, info.si_signo,
           info.si_code == SI_USER, info.si_pid == getpid());
    pthread_join(t, NULL);
    struct timespec timeout = {0, 50000000};
    errno = 0;
    got = sigtimedwait(&set, &info, &timeout);
    printf("sigtimedwait: %d %s\n", got, errno == EAGAIN ? "EAGAIN" : strerror(errno));
    raise(SIGUSR2);                             /* already pending: no wait */
    got = sigtimedwait(&set, &info, &timeout);
    printf("sigtimedwait pending: %d handled %d\n", got, handled);
    return 0;
}

static int run_unblock(void) {
    /* a process-directed signal blocked by the only thread: pending; unblocking delivers it before return */
    install(SIGUSR1, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    pthread_create(&t, NULL, send_later, (void *)(long)SIGUSR1);
    pthread_join(t, NULL);
    printf("unblock: pending before %d\n", handled);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblock: handled after %d\n", handled);
    return 0;
}

static void *pauses(void *arg) {
    (void)arg;
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    pause();
    return NULL;
}

/* Sends its signal once main is about to pause(): a signal that came earlier would be handled before the pause,
 * which would then wait for ever (under heavy load main can take more than 30 ms to get from pthread_create to
 * pause, natively as in km). The window left is main's few instructions between the flag and the syscall. */
static volatile int pausing;
static void *send_when_pausing(void *arg) {
    wait_for(&pausing);
    usleep(30000);
    kill(getpid(), (int)(long)arg);
    return NULL;
}

static int run_blocked_pending(void) {
    /* a pending but blocked signal must not wake pause(): only the unblocked SIGUSR1 does */
    install(SIGUSR1, 0);
    install(SIGUSR2, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR2);
    pthread_t t;
    pthread_create(&t, NULL, send_when_pausing, (void *)(long)SIGUSR1);
    errno = 0;
    __atomic_store_n(&pausing, 1, __ATOMIC_SEQ_CST);
    int r = pause();
    printf("blocked pending: pause %d %s handled %d\n", r, errno == EINTR ? "EINTR" : "?", handled);
    pthread_join(t, NULL);
    /* the same in a read: a blocked pending signal does not cut it short */
    pipe(pipefd);
    struct blocked b = {.call = "read"};
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_create(&t, NULL, blocker, &b);
    wait_for(&started);
    usleep(30000);
    write(pipefd[1], "y", 1);
    pthread_join(t, NULL);
    printf("blocked pending: read %ld %c handled %d\n", b.result, b.byte, handled);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("blocked pending: unblocked handled %d\n", handled);
    return 0;
}

static int run_tgkill(void) {
    install(SIGUSR1, 0);
    pthread_t t;
    struct blocked b = {.call = "pause"};
    pthread_create(&t, NULL, blocker, &b);
    wait_for(&started);
    syscall(SYS_tgkill, getpid(), b.tid, SIGUSR1);
    pthread_join(t, NULL);
    printf("tgkill: handler ran on target %d (not main %d)\n", handler_tid == b.tid,
           handler_tid == syscall(SYS_gettid));
    return 0;
}

static void *cancellable(void *arg) {
    struct blocked *b = arg;
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    if (!strcmp(b->call, "read")) {
        char byte;
        read(pipefd[0], &byte, 1);
    } else if (!strcmp(b->call, "nanosleep")) {
        struct timespec req = {5, 0};
        nanosleep(&req, NULL);
    } else {
        pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
        pthread_cond_t c = PTHREAD_COND_INITIALIZER;
        pthread_mutex_lock(&m);
        pthread_cond_wait(&c, &m);   /* a futex wait */
    }
    return (void *)1;
}

static int run_cancel(void) {
    /* pthread_cancel: the C library's cancel signal (SIGRTMIN-ish, SA_RESTART) hits a thread blocked at a
       cancellation point; its handler reads the interrupted RIP from the ucontext to decide */
    const char *calls[] = {"read", "nanosleep", "cond"};
    pipe(pipefd);
    for (int i = 0; i < 3; i++) {
        struct blocked b = {.call = calls[i]};
        pthread_t t;
        void *result;
        started = 0;
        pthread_create(&t, NULL, cancellable, &b);
        wait_for(&started);
        usleep(30000);
        pthread_cancel(t);
        pthread_join(t, &result);
        printf("cancel %s: canceled %d\n", calls[i], result == PTHREAD_CANCELED);
    }
    return 0;
}

static void *waits_for_signals(void *arg) {
    sigset_t *set = arg;
    int signo;
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    sigwait(set, &signo);
    handler_tid = syscall(SYS_gettid);
    return (void *)(long)signo;
}

static int run_sigwait_thread(void) {
    /* the signal-handling-thread pattern: every thread blocks SIGUSR1, one sigwaits for it */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    void *got;
    pthread_create(&t, NULL, waits_for_signals, &set);
    wait_for(&started);
    usleep(20000);
    kill(getpid(), SIGUSR1);
    pthread_join(t, &got);
    printf("sigwait thread: got %ld, on the waiting thread %d\n", (long)got,
           handler_tid != syscall(SYS_gettid));
    return 0;
}

static volatile long spins;

static void *spin(void *arg) {
    (void)arg;
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    while (!handled)
        spins++;                  /* no syscalls: only a kick out of KVM_RUN gets the signal in */
    return NULL;
}

static int run_spin_tgkill(void) {
    install(SIGUSR1, 0);
    pthread_t t;
    pthread_create(&t, NULL, spin, NULL);
    wait_for(&started);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    printf("spin tgkill: handled %d on spinner %d\n", handled, handler_tid != syscall(SYS_gettid));
    return 0;
}

#define PINGS 300
static volatile int acked;

static void on_ping(int signo) {
    (void)signo;
    __atomic_fetch_add(&acked, 1, __ATOMIC_SEQ_CST);
}

static void *ponger(void *arg) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    (void)arg;
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&acked, __ATOMIC_SEQ_CST) < PINGS) {
        pthread_sigmask(SIG_BLOCK, &set, NULL);     /* signals arrive in every state: masked, in a call, */
        getppid();                                  /* running guest code */
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        for (volatile int i = 0; i < 100; i++)
            ;
    }
    return NULL;
}

static int run_pingpong(void) {
    /* one thread signals another PINGS times, each after the last was handled: none lost, none doubled */
    install(SIGUSR1, 0);
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    sa.sa_handler = on_ping;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, ponger, NULL);
    wait_for(&started);
    for (int i = 0; i < PINGS; i++) {
        pthread_kill(t, SIGUSR1);
        while (__atomic_load_n(&acked, __ATOMIC_SEQ_CST) <= i)
            sched_yield();
    }
    pthread_join(t, NULL);
    printf("pingpong: %d signals sent, %d handled\n", PINGS, acked);
    return 0;
}

static void *reads_until_acked(void *arg) {
    char byte;
    (void)arg;
    __atomic_store_n(&started, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&acked, __ATOMIC_SEQ_CST) < PINGS)
        read(pipefd[0], &byte, 1);           /* EINTR after each signal, then straight back into read */
    return NULL;
}

static int run_pingpong_read(void) {
    /* each signal must cut the read short promptly, also when it lands just as the thread re-enters read */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_ping;
    sigaction(SIGUSR1, &sa, NULL);
    pipe(pipefd);
    pthread_t t;
    pthread_create(&t, NULL, reads_until_acked, NULL);
    wait_for(&started);
    int late = 0;
    for (int i = 0; i < PINGS; i++) {
        pthread_kill(t, SIGUSR1);
        double t0 = now();
        while (__atomic_load_n(&acked, __ATOMIC_SEQ_CST) <= i) {
            if (now() - t0 > 1.0) {              /* lost: unblock the reader with a byte, count it */
                late++;
                write(pipefd[1], "x", 1);
                while (__atomic_load_n(&acked, __ATOMIC_SEQ_CST) <= i)
                    sched_yield();
                break;
            }
            sched_yield();
        }
    }
    pthread_join(t, NULL);
    printf("pingpong read: %d handled, %d late by more than 1 s\n", acked, late);
    return 0;
}

static int run_sigint(void) {
    /* the test sends SIGINT (then SIGTERM) to km once it sees "ready" */
    install(SIGINT, 0);
    printf("ready\n");
    fflush(stdout);
    while (!handled)
        pause();
    printf("got SIGINT in handler\n");
    fflush(stdout);
    for (;;)
        pause();                              /* SIGTERM, not handled: killed */
}

static int run_stdin(void) {
    /* Ctrl-C at a terminal: blocked reading stdin, no handler; the test sends SIGINT to km */
    char buf[16];
    printf("ready\n");
    fflush(stdout);
    long n = read(0, buf, sizeof buf);
    printf("read returned %ld\n", n);
    return 0;
}

static int run_fork_kill(void) {
    /* kill(2) to a forked child (a process of its own): its handler runs, then SIGTERM ends it for waitpid */
    install(SIGUSR1, 0);
    pipe(pipefd);
    pid_t child = fork();
    if (child == 0) {
        write(pipefd[1], "r", 1);
        while (!handled)
            pause();
        write(pipefd[1], "h", 1);
        for (;;)
            pause();
    }
    char byte;
    read(pipefd[0], &byte, 1);
    printf("parent: kill SIGUSR1 -> %d\n", kill(child, SIGUSR1));
    read(pipefd[0], &byte, 1);
    printf("parent: child handled SIGUSR1 %d\n", byte == 'h');
    printf("parent: kill SIGTERM -> %d\n", kill(child, SIGTERM));
    int status;
    waitpid(child, &status, 0);
    printf("parent: child killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    errno = 0;
    int r = kill(child, 0);
    printf("parent: kill of a reaped child -> %d %s\n", r, errno == ESRCH ? "ESRCH" : "?");
    return 0;
}

static volatile int notified;
static volatile pid_t notify_tid;

static void timer_thread_fn(union sigval value) {
    notify_tid = syscall(SYS_gettid);
    __atomic_fetch_add(&notified, value.sival_int, __ATOMIC_SEQ_CST);
}

static int run_posix_timer(void) {
    /* timer_create: a periodic SIGEV_SIGNAL timer read with sigwaitinfo, SIGEV_THREAD_ID aimed at one thread,
       and the C library's SIGEV_THREAD (a notification function on a thread of its own) */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 77;
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &ev, &timer)) {
        perror("timer_create");
        return 1;
    }
    struct itimerspec spec = {{0, 20000000}, {0, 20000000}}, cur;
    timer_settime(timer, 0, &spec, NULL);
    int good = 0;
    for (int i = 0; i < 3; i++) {
        siginfo_t info;
        int got = sigwaitinfo(&set, &info);
        good += got == SIGRTMIN && info.si_code == SI_TIMER && info.si_value.sival_int == 77;
    }
    timer_gettime(timer, &cur);
    printf("posix timer: 3 expiries as SI_TIMER with the value %d, interval %ld ns, armed %d\n", good == 3,
           cur.it_interval.tv_nsec, cur.it_value.tv_sec || cur.it_value.tv_nsec);
    struct itimerspec off = {{0, 0}, {0, 0}}, old;
    timer_settime(timer, 0, &off, &old);
    int first = timer_delete(timer);
    int again = timer_delete(timer);
    printf("posix timer: disarmed, old interval %ld ns; delete %d; delete again fails %d\n",
           old.it_interval.tv_nsec, first, again != 0);
    /* SIGEV_THREAD_ID: the signal goes to that thread */
    install(SIGUSR2, 0);
    struct blocked b = {.call = "pause"};
    pthread_t t;
    started = 0;
    pthread_create(&t, NULL, blocker, &b);
    wait_for(&started);
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGUSR2;
#ifdef sigev_notify_thread_id
    ev.sigev_notify_thread_id = b.tid;
#else
    ev._sigev_un._tid = b.tid;
#endif
    timer_create(CLOCK_REALTIME, &ev, &timer);
    struct timespec now_ts;
    clock_gettime(CLOCK_REALTIME, &now_ts);
    now_ts.tv_nsec += 20000000;
    if (now_ts.tv_nsec >= 1000000000) {
        now_ts.tv_sec++;
        now_ts.tv_nsec -= 1000000000;
    }
    struct itimerspec abs = {{0, 0}, now_ts};
    timer_settime(timer, TIMER_ABSTIME, &abs, NULL);
    pthread_join(t, NULL);
    printf("posix timer: SIGEV_THREAD_ID handler on that thread %d\n", handler_tid == b.tid);
    timer_delete(timer);
    /* SIGEV_THREAD */
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = timer_thread_fn;
    ev.sigev_value.sival_int = 5;
    timer_create(CLOCK_MONOTONIC, &ev, &timer);
    struct itimerspec once = {{0, 0}, {0, 10000000}};
    timer_settime(timer, 0, &once, NULL);
    while (!__atomic_load_n(&notified, __ATOMIC_SEQ_CST))
        usleep(1000);
    printf("posix timer: SIGEV_THREAD function got %d on another thread %d\n", notified,
           notify_tid != syscall(SYS_gettid));
    return 0;
}

static int run_cpu_timer(void) {
    /* a CPU-time timer advances only while its thread runs: not during a sleep, yes while spinning */
    install(SIGUSR1, 0);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    timer_t timer;
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &ev, &timer)) {
        perror("timer_create");
        return 1;
    }
    struct itimerspec spec = {{0, 0}, {0, 30000000}};         /* 30 ms of CPU */
    timer_settime(timer, 0, &spec, NULL);
    usleep(150000);
    int while_sleeping = handled;
    double t0 = now();
    while (!handled && now() - t0 < 10)
        ;
    printf("cpu timer: fired while sleeping %d, while spinning %d\n", while_sleeping, handled);
    return 0;
}

static int run_ignored(void) {
    /* ignored signals (SIG_IGN, or ignored by default like SIGWINCH and SIGCHLD) never cut a call short */
    signal(SIGUSR2, SIG_IGN);
    struct blocked b = {.call = "read"};
    pthread_t t;
    pipe(pipefd);
    pthread_create(&t, NULL, blocker, &b);
    wait_for(&started);
    usleep(30000);
    pthread_kill(t, SIGUSR2);
    pthread_kill(t, SIGWINCH);
    kill(getpid(), SIGCHLD);
    usleep(30000);
    write(pipefd[1], "z", 1);
    pthread_join(t, NULL);
    printf("ignored: read %ld %c errno %s\n", b.result, b.byte, b.err == EINTR ? "EINTR" : b.err ? "?" : "0");
    return 0;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "read";
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *calls[] = {"read", "nanosleep", "futex", "futex_timeout", "pause", "sigsuspend"};
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        if (!strcmp(what, calls[i]))
            return run_blocked(calls[i], 0);
        if (!strncmp(what, calls[i], strlen(calls[i])) && !strcmp(what + strlen(calls[i]), "_restart"))
            return run_blocked(calls[i], SA_RESTART);
    }
    if (!strcmp(what, "alarm")) return run_alarm();
    if (!strcmp(what, "itimer")) return run_itimer();
    if (!strcmp(what, "sigtimedwait")) return run_sigtimedwait();
    if (!strcmp(what, "unblock")) return run_unblock();
    if (!strcmp(what, "blocked_pending")) return run_blocked_pending();
    if (!strcmp(what, "tgkill")) return run_tgkill();
    if (!strcmp(what, "sigint")) return run_sigint();
    if (!strcmp(what, "cancel")) return run_cancel();
    if (!strcmp(what, "posix_timer")) return run_posix_timer();
    if (!strcmp(what, "ignored")) return run_ignored();
    if (!strcmp(what, "cpu_timer")) return run_cpu_timer();
    if (!strcmp(what, "fork_kill")) return run_fork_kill();
    if (!strcmp(what, "stdin")) return run_stdin();
    if (!strcmp(what, "pingpong")) return run_pingpong();
    if (!strcmp(what, "pingpong_read")) return run_pingpong_read();
    if (!strcmp(what, "sigwait_thread")) return run_sigwait_thread();
    if (!strcmp(what, "spin_tgkill")) return run_spin_tgkill();
    fprintf(stderr, "unknown test %s\n", what);
    return 2;
}
