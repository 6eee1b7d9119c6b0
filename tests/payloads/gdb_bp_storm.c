/* A breakpoint hit as often as possible: `gdb_bp_storm N` starts N threads that call hit() in a tight loop until a
 * debugger clears keep_going, then prints the number of hits and exits 7. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

volatile int keep_going = 1;
volatile unsigned long hits[8];

__attribute__((noinline)) void hit(long id) {
    hits[id]++;
}

static void *worker(void *arg) {
    long id = (long)arg;
    while (keep_going)
        hit(id);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    pthread_t threads[8];
    unsigned long total = 0;
    n = n < 8 ? n : 8;
    for (long i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < n; i++)
        total += hits[i];
    printf("%s\n", total ? "hit" : "never hit");
    return 7;
}
