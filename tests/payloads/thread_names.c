/* Thread names as Linux keeps them: one worker names itself with pthread_setname_np, another with
   prctl(PR_SET_NAME), main names a third (the libc writes /proc/self/task/TID/comm) and reads it back; main stays
   named after the program. gdb (info threads) and lldb (thread list) show them at names_set. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/prctl.h>

static pthread_barrier_t named;

__attribute__((noinline)) void names_set(void) {
    __asm__ volatile("" ::: "memory");      /* @names_set */
}

void *by_pthread(void *arg) {
    pthread_setname_np(pthread_self(), "km-worker-one");
    pthread_barrier_wait(&named);
    pthread_barrier_wait(&named);
    return arg;
}

void *by_prctl(void *arg) {
    prctl(PR_SET_NAME, "prctl-named");
    pthread_barrier_wait(&named);
    pthread_barrier_wait(&named);
    return arg;
}

void *by_main(void *arg) {
    pthread_barrier_wait(&named);
    pthread_barrier_wait(&named);
    return arg;
}

int main(void) {
    pthread_t a, b, c;
    char name[16] = "";
    pthread_barrier_init(&named, NULL, 4);
    pthread_create(&a, NULL, by_pthread, NULL);
    pthread_create(&b, NULL, by_prctl, NULL);
    pthread_create(&c, NULL, by_main, NULL);
    int rc = pthread_setname_np(c, "set-by-main");
    pthread_getname_np(c, name, sizeof name);
    pthread_barrier_wait(&named);
    names_set();
    pthread_barrier_wait(&named);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_join(c, NULL);
    printf("named rc=%d %s\n", rc, name);
    return 0;
}
