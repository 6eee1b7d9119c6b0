/* gdb stub tests: three threads alive at once, each parked in its own function when the breakpoint hits. */
#include <pthread.h>
#include <stdio.h>

static pthread_barrier_t all_started;
volatile int results[2];

void worker_work(int id) {
    results[id] = id + 10;      /* @worker_work */
}

void *worker(void *arg) {
    int id = (int)(long)arg;
    pthread_barrier_wait(&all_started);
    worker_work(id);
    return NULL;
}

int main(void) {
    pthread_t threads[2];
    pthread_barrier_init(&all_started, NULL, 3);
    for (long i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    pthread_barrier_wait(&all_started);
    while (!results[0] || !results[1])      /* main stays in its own frame (not in a libc syscall, which musl */
        ;                                   /* cannot unwind past) while the workers sit at the breakpoint */
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    printf("results %d %d\n", results[0], results[1]);  /* @joined */
    return 0;
}
