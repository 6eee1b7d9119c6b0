/* DAP bridge payload with threads: two workers stop at a breakpoint while main waits to join them. */
#include <pthread.h>
#include <stdio.h>

static pthread_barrier_t ready;

static void *worker(void *arg) {
    long id = (long)arg;
    pthread_barrier_wait(&ready);
    printf("worker %ld\n", id); /* @worker */
    return (void *)(id * 10);
}

int main(void) {
    pthread_t threads[2];
    pthread_barrier_init(&ready, NULL, 3);
    for (long i = 0; i < 2; i++) {
        pthread_create(&threads[i], NULL, worker, (void *)(i + 1));
    }
    pthread_barrier_wait(&ready); /* @released */
    long sum = 0;
    for (int i = 0; i < 2; i++) {
        void *result;
        pthread_join(threads[i], &result);
        sum += (long)result;
    }
    printf("sum %ld\n", sum);
    return (int)sum; /* 30 */
}
