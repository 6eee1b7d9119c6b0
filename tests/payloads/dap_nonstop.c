/* DAP non-stop: a worker stops at a breakpoint and is stepped alone while a counter thread keeps counting; a
 * step of the worker's makes the counter reach a breakpoint of its own. Exits 42. */
#include <pthread.h>
#include <stdio.h>

volatile long ticks;
volatile int phase;
volatile int done;

__attribute__((noinline)) static void counter_saw(void) {
    __asm__ volatile("" ::: "memory");      /* @counter_saw */
}

static void *counter(void *arg) {
    while (!done) {
        ticks++;
        if (phase == 1) {
            phase = 2;
            counter_saw();
        }
    }
    return arg;
}

__attribute__((noinline)) static int worker_steps(int x) {
    int y = x + 1;                          /* @step_from */
    y = y * 2;                              /* @step_to */
    phase = 1;                              /* @release */
    return y;                               /* @step_ret */
}

static void *worker(void *arg) {
    return (void *)(long)worker_steps(20);
}

int main(void) {
    pthread_t a, b;
    void *result;
    pthread_create(&a, NULL, counter, NULL);
    pthread_create(&b, NULL, worker, NULL);
    pthread_join(b, &result);
    done = 1;
    pthread_join(a, NULL);
    printf("ticks %s, result %ld\n", ticks > 0 ? "counted" : "zero", (long)result);
    return (int)(long)result;               /* 42 */
}
