/* gdb stub tests: three threads spinning until gdb clears `keep_going` (Ctrl-C must stop all of them). */
#include <pthread.h>
#include <stdio.h>

volatile int keep_going = 1;
volatile unsigned long spins[3];
static pthread_barrier_t all_started;

void *spinner(void *arg) {
    long id = (long)arg;
    pthread_barrier_wait(&all_started);     /* every thread exists before anyone spins */
    while (keep_going)
        spins[id]++;            /* @thread_spin */
    return NULL;
}

int main(void) {
    pthread_t threads[2];
    pthread_barrier_init(&all_started, NULL, 3);
    for (long i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, spinner, (void *)(i + 1));
    spinner((void *)0);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    printf("all stopped\n");
    return 0;
}
