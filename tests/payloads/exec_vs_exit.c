/* An execve racing an exit_group: `exec_vs_exit DELAY_US PROG` starts a thread that, DELAY_US microseconds after
 * main says go, calls exit_group(7); main says go and execs PROG at once. Linux ends the process either way, with
 * 7 (the exit_group came first: de_thread gives up) or with PROG's status (the exec won and killed the thread). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int go;
static long delay_ns;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *exiter(void *arg) {
    (void)arg;
    while (!go)
        ;
    long until = now_ns() + delay_ns;
    while (now_ns() < until)
        ;
    syscall(SYS_exit_group, 7);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    delay_ns = atol(argv[1]) * 1000L;
    pthread_t t;
    pthread_create(&t, NULL, exiter, NULL);
    char *args[] = {argv[2], NULL};
    go = 1;
    execv(argv[2], args);
    return 3;
}
