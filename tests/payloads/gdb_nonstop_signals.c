/* gdb non-stop mode and signals: while a spinner counts, the signaller raises SIGUSR1 five times (gdb passes it
 * without stopping) and then SIGUSR2 (gdb stops that thread alone), and both handlers must have run once gdb lets
 * it go. main waits for gdb to set `done`. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

volatile long ticks;
volatile int done;
volatile int usr1, usr2;

static void on_usr1(int signo) { usr1++; (void)signo; }
static void on_usr2(int signo) { usr2++; (void)signo; }

__attribute__((noinline)) void after_usr2(void) {
    __asm__ volatile("" ::: "memory");      /* @after_usr2 */
}

void *spinner(void *arg) {
    while (!done)
        ticks++;
    return arg;
}

void *signaller(void *arg) {
    for (int i = 0; i < 5; i++)
        raise(SIGUSR1);
    raise(SIGUSR2);
    after_usr2();
    while (!done)
        ;
    return arg;
}

int main(void) {
    pthread_t a, b;
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    pthread_create(&a, NULL, spinner, NULL);
    pthread_create(&b, NULL, signaller, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("usr1 %d usr2 %d ticks %s\n", usr1, usr2, ticks > 0 ? "counted" : "zero");
    return 0;
}
