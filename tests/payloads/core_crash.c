/* Crashes two frames below the crashing thread's entry (main or a worker) while a second thread is alive.
 * argv[1] picks the death: segv (default), abort, fpe, thread (a SIGSEGV in a thread other than main).
 * Used by the core-file tests: gdb, lldb and readelf read the core of this death. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

int core_global = 0x1234567;                       /* printed by the tests from the core */
const char core_message[] = "core_crash read-only data";
volatile int *volatile core_bad_pointer = (int *)0xdead000;   /* the faulting address of the SIGSEGV */
volatile int core_zero = 0;

static pthread_mutex_t forever = PTHREAD_MUTEX_INITIALIZER;
static volatile int sleeper_ready;
static const char *mode = "segv";

__attribute__((noinline)) static void leaf(int depth)
{
    volatile double scaled = depth * 1.5;          /* leaves something in xmm0 */
    volatile long double extended = depth * 2.5L;  /* and on the x87 stack */
    (void)scaled;
    (void)extended;
    if (strcmp(mode, "abort") == 0)
        abort(); /* @abort */
    if (strcmp(mode, "fpe") == 0)
        core_global = depth / core_zero; /* @fpe */
    *core_bad_pointer = depth; /* @segv */
}

__attribute__((noinline)) static void middle(int depth)
{
    leaf(depth + 1); /* @middle */
    puts("not reached");
}

static void *sleeper(void *arg)
{
    (void)arg;
    __atomic_store_n(&sleeper_ready, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&forever); /* @sleeper */
    return NULL;
}

static void *crasher(void *arg)
{
    (void)arg;
    middle(1); /* @crasher */
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t thread;
    if (argc > 1)
        mode = argv[1];
    pthread_mutex_lock(&forever);
    pthread_create(&thread, NULL, sleeper, NULL);
    while (!__atomic_load_n(&sleeper_ready, __ATOMIC_SEQ_CST))
        sched_yield();
    /* Give the sleeper the few microseconds it needs to be blocked in the mutex (its backtrace is compared). */
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    printf("%s %d\n", core_message, core_global);
    fflush(stdout);
    if (strcmp(mode, "thread") == 0) {
        pthread_t worker;
        pthread_create(&worker, NULL, crasher, NULL);
        pthread_join(worker, NULL); /* @join */
    }
    middle(1); /* @main */
    return 0;
}
