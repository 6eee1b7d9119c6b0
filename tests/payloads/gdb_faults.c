/* Faults around the debugger: `gdb_faults N` starts N workers (each counts its rounds in rounds[id], odd ones
 * call worker_mark each time round) that sleep 1 ms at a time until main is done; main runs a long loop on one line (a `next` over it is a long range step), then waits
 * until 1.5 s have passed since it started, and exits 9 after printing the loop's total. `gdb_faults N hold`: main
 * spins before the loop until a debugger sets `hold` to 2 (gdb attaching to a running payload finds it there;
 * the compare-and-swap leaves no window if gdb comes first). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

volatile int keep_going = 1;
volatile int hold;                                  /* 1: held (a second argument); 2: released by a debugger */
volatile unsigned long spins[64];
volatile unsigned long rounds[64];                  /* moves while the workers run: a debugger's witness */
static pthread_barrier_t all_started;               /* every thread exists before any works */

__attribute__((noinline)) void worker_mark(long id) {
    spins[id]++;                                   /* @worker_mark */
}

static void *worker(void *arg) {
    long id = (long)arg;
    struct timespec nap = {0, 1000 * 1000};
    pthread_barrier_wait(&all_started);
    while (keep_going) {
        rounds[id]++;
        if (id % 2)
            worker_mark(id);
        nanosleep(&nap, NULL);
    }
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    pthread_t threads[64];
    double start = now();
    n = n < 64 ? n : 64;
    pthread_barrier_init(&all_started, NULL, n + 1);
    for (long i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    pthread_barrier_wait(&all_started);
    if (argc > 2)
        __sync_bool_compare_and_swap(&hold, 0, 1);
    while (hold == 1)
        ;
    unsigned long total = 0;
    for (unsigned long i = 0; i < 30000000UL; i++) total += i & 7;   /* @long_loop */
    while (now() - start < 1.5)
        ;
    keep_going = 0;
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    printf("total %lu\n", total);                                  /* @done */
    return 9;
}
