/* gdb non-stop mode: one thread stops at a breakpoint while another keeps counting, until gdb says done. */
#include <pthread.h>
#include <stdio.h>

volatile long ticks;
volatile int done;

__attribute__((noinline)) void nonstop_hit(void) {
    __asm__ volatile("" ::: "memory");      /* @nonstop_hit */
}

void *spinner(void *arg) {
    while (!done)
        ticks++;
    return arg;
}

void *stopper(void *arg) {
    nonstop_hit();
    while (!done)
        ;
    return arg;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, spinner, NULL);
    pthread_create(&b, NULL, stopper, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("ticks %s\n", ticks > 0 ? "counted" : "zero");
    return 0;
}
