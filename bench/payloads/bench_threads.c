#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long calls;
static int use_write, devnull;
static pthread_barrier_t go;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *work(void *arg) {
    char buf[64] = {0};
    (void)arg;
    pthread_barrier_wait(&go);
    for (long i = 0; i < calls; i++) {
        if (use_write)
            syscall(SYS_write, devnull, buf, sizeof buf);
        else
            syscall(SYS_getppid);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int nthreads = atoi(argv[1]);
    calls = atol(argv[2]);
    use_write = !strcmp(argv[3], "write");
    devnull = open("/dev/null", O_WRONLY);
    pthread_t t[64];
    if (nthreads == 0) {                   /* the main thread alone, no other thread ever created */
        double t0 = now();
        pthread_barrier_init(&go, NULL, 1);
        work(NULL);
        printf("%.6f\n", now() - t0);
        return 0;
    }
    pthread_barrier_init(&go, NULL, nthreads + 1);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, work, NULL);
    pthread_barrier_wait(&go);
    double t0 = now();
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("%.6f\n", now() - t0);
    return 0;
}
