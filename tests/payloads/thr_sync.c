/* Thread tests: a mutex counter, a barrier, join through the child-tid word, exit_group from a non-main thread.
   `thr_sync.km counter|barrier|join|exit_group`; every output line is deterministic (compared with native). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#define NTHREADS 4
#define ROUNDS 100000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *count_up(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static int run_counter(void) {
    pthread_t t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&t[i], NULL, count_up, NULL);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    printf("counter %ld\n", counter);
    return 0;
}

#define NBARRIER 8
#define PHASES 50
static pthread_barrier_t barrier;
static int arrived[PHASES];
static int bad;

static void *barrier_worker(void *arg) {
    (void)arg;
    for (int phase = 0; phase < PHASES; phase++) {
        __atomic_fetch_add(&arrived[phase], 1, __ATOMIC_SEQ_CST);
        pthread_barrier_wait(&barrier);
        if (__atomic_load_n(&arrived[phase], __ATOMIC_SEQ_CST) != NBARRIER)
            __atomic_fetch_add(&bad, 1, __ATOMIC_SEQ_CST);       /* someone got past before all arrived */
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

static int run_barrier(void) {
    pthread_t t[NBARRIER];
    pthread_barrier_init(&barrier, NULL, NBARRIER);
    for (int i = 0; i < NBARRIER; i++)
        pthread_create(&t[i], NULL, barrier_worker, NULL);
    for (int i = 0; i < NBARRIER; i++)
        pthread_join(t[i], NULL);
    printf("barrier phases %d bad %d\n", PHASES, bad);
    return 0;
}

static void *returns_value(void *arg) {
    usleep(20000);                /* the joiner is already waiting on the child-tid word */
    return (void *)((long)arg * 3);
}

static int run_join(void) {
    long total = 0;
    for (int round = 0; round < 20; round++) {
        pthread_t t;
        void *value;
        pthread_create(&t, NULL, returns_value, (void *)(long)round);
        if (round % 2)
            usleep(1000);
        pthread_join(t, &value);
        total += (long)value;
    }
    /* detached threads that exit while main keeps running */
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        pthread_create(&t, NULL, returns_value, NULL);
        pthread_detach(t);
    }
    usleep(100000);
    printf("joined 20 total %ld\n", total);
    return 0;
}

static void *ends_everything(void *arg) {
    (void)arg;
    usleep(50000);
    printf("thread calls exit\n");
    fflush(stdout);
    exit(7);                      /* exit_group from a non-main thread */
}

static void *sleeps_forever(void *arg) {
    (void)arg;
    for (;;)
        pause();
}

static void *reads_forever(void *arg) {
    int fds[2];
    char byte;
    (void)arg;
    pipe(fds);
    for (;;)
        read(fds[0], &byte, 1);   /* never gets data: blocked in the host kernel */
}

static int run_exit_group(void) {
    pthread_t t;
    pthread_create(&t, NULL, sleeps_forever, NULL);
    pthread_create(&t, NULL, reads_forever, NULL);
    pthread_create(&t, NULL, ends_everything, NULL);
    for (;;)
        syscall(SYS_futex, &counter, 0 /* FUTEX_WAIT */, 0, NULL, NULL, 0);   /* main blocks in futex */
}

static pthread_mutex_t robust;

static void *dies_holding_lock(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;                  /* exits with the robust mutex held: the kernel marks it FUTEX_OWNER_DIED */
}

static void *waits_for_lock(void *arg) {
    (void)arg;
    return (void *)(long)pthread_mutex_lock(&robust);
}

static int run_robust(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attr);
    pthread_t t;
    pthread_create(&t, NULL, dies_holding_lock, NULL);
    pthread_join(t, NULL);
    int err = pthread_mutex_lock(&robust);
    printf("robust: lock after owner died: %s\n", err == EOWNERDEAD ? "EOWNERDEAD" : strerror(err));
    pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);
    /* a waiter already blocked when the owner dies is woken */
    void *result;
    pthread_t owner, waiter;
    pthread_create(&owner, NULL, dies_holding_lock, NULL);
    pthread_join(owner, NULL);
    pthread_mutex_lock(&robust);          /* EOWNERDEAD again: keep it, consistent, and let a waiter queue */
    pthread_mutex_consistent(&robust);
    pthread_create(&waiter, NULL, waits_for_lock, NULL);
    usleep(30000);
    pthread_mutex_unlock(&robust);
    pthread_join(waiter, &result);
    printf("robust: waiter got the lock: %s\n", (long)result == 0 ? "0" : strerror((int)(long)result));
    return 0;
}

static void *outlives_main(void *arg) {
    (void)arg;
    usleep(50000);
    printf("main_exit: worker still running after main's pthread_exit\n");
    return NULL;                  /* the last thread: the process ends with status 0 */
}

static int run_main_exit(void) {
    pthread_t t;
    pthread_create(&t, NULL, outlives_main, NULL);
    pthread_exit(NULL);
}

static pthread_mutex_t pi_lock;
static long pi_counter;

static void *count_pi(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&pi_lock);
        pi_counter++;
        pthread_mutex_unlock(&pi_lock);
    }
    return NULL;
}

static void *dies_holding_pi(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pi_lock);
    return NULL;
}

static volatile int pi_signals, pi_holding;
static void on_pi_signal(int signo) { (void)signo; pi_signals++; }

static void *holds_pi(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pi_lock);
    pi_holding = 1;
    usleep(150000);
    pthread_mutex_unlock(&pi_lock);
    return NULL;
}

static void *locks_pi(void *arg) {
    (void)arg;
    return (void *)(long)pthread_mutex_lock(&pi_lock);    /* blocked in FUTEX_LOCK_PI when the signal comes */
}

static int run_pi(void) {
    /* priority-inheritance mutexes: the C library needs FUTEX_LOCK_PI/UNLOCK_PI/TRYLOCK_PI from the kernel */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    int err = pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    err = err ? err : pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    err = err ? err : pthread_mutex_init(&pi_lock, &attr);
    printf("pi: init %s\n", err ? strerror(err) : "0");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, count_pi, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("pi: counter %ld\n", pi_counter);
    pthread_create(&t[0], NULL, dies_holding_pi, NULL);
    pthread_join(t[0], NULL);
    err = pthread_mutex_lock(&pi_lock);
    printf("pi: after the owner died %s\n", err == EOWNERDEAD ? "EOWNERDEAD" : strerror(err));
    pthread_mutex_consistent(&pi_lock);
    err = pthread_mutex_trylock(&pi_lock);
    printf("pi: trylock by the owner %s\n", err == EBUSY ? "EBUSY" : err == EDEADLK ? "EDEADLK" : strerror(err));
    pthread_mutex_unlock(&pi_lock);
    /* a handler without SA_RESTART does not make the lock fail: LOCK_PI is always restarted */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_pi_signal;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t holder, locker;
    void *result;
    pthread_create(&holder, NULL, holds_pi, NULL);
    while (!pi_holding)
        usleep(1000);
    pthread_create(&locker, NULL, locks_pi, NULL);
    usleep(50000);
    pthread_kill(locker, SIGUSR1);
    pthread_join(holder, NULL);
    pthread_join(locker, &result);
    printf("pi: lock across a signal %ld, handler ran %d\n", (long)result, pi_signals);
    return 0;
}

static void *returns_arg(void *arg) { return arg; }

static int run_churn(void) {
    /* a thread-per-request server's life: many short threads, never more than two alive at once */
    long total = 0;
    for (long i = 0; i < 1100; i++) {
        pthread_t t;
        void *value;
        int err = pthread_create(&t, NULL, returns_arg, (void *)i);
        if (err) {
            printf("churn: pthread_create %ld failed: %s\n", i, strerror(err));
            return 1;
        }
        pthread_join(t, &value);
        total += (long)value;
    }
    printf("churn: 1100 threads total %ld\n", total);
    return 0;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "counter";
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(what, "counter")) return run_counter();
    if (!strcmp(what, "barrier")) return run_barrier();
    if (!strcmp(what, "join")) return run_join();
    if (!strcmp(what, "exit_group")) return run_exit_group();
    if (!strcmp(what, "churn")) return run_churn();
    if (!strcmp(what, "robust")) return run_robust();
    if (!strcmp(what, "main_exit")) return run_main_exit();
    if (!strcmp(what, "pi")) return run_pi();
    fprintf(stderr, "unknown test %s\n", what);
    return 2;
}
