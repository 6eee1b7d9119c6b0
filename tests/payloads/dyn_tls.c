/* dyn_tls.c - thread-local storage in a dynamic program: its own __thread variable and libc's errno, with
 * different values in two threads (gdb's `p errno` and `p tl_counter` go through qGetTLSAddr). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

__thread int tl_counter = 7;

static void *worker(void *arg) {
    tl_counter = 99;
    errno = 11;
    return arg; /* @worker_return */
}

int main(void) {
    pthread_t thread;
    errno = 5;
    tl_counter = 42;
    pthread_create(&thread, NULL, worker, NULL);
    pthread_join(thread, NULL);
    printf("main's tl_counter=%d\n", tl_counter);
    return 0;
}
