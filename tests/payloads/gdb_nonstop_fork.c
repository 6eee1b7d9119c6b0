/* gdb non-stop mode and a followed fork child with threads: the child starts a spinner, then one of its threads
 * stops at child_hit while the spinner counts on, until gdb sets `done`; the child exits 7 and the parent says so. */
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

volatile long ticks;
volatile int done;

__attribute__((noinline)) void child_hit(void) {
    __asm__ volatile("" ::: "memory");      /* @child_hit */
}

void *spinner(void *arg) {
    while (!done)
        ticks++;
    return arg;
}

int main(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        pthread_t t;
        pthread_create(&t, NULL, spinner, NULL);
        child_hit();
        pthread_join(t, NULL);
        printf("child ticks %s\n", ticks > 0 ? "counted" : "zero");
        fflush(stdout);
        _exit(7);
    }
    int st = 0;
    waitpid(p, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
