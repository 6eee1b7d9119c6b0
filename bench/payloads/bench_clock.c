#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int main(int argc, char **argv) {
    long calls = atol(argv[1]);
    int tod = !strcmp(argv[2], "gettimeofday");
    struct timespec t0, t1, ts;
    struct timeval tv;
    long sink = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < calls; i++) {
        if (tod) {
            gettimeofday(&tv, NULL);
            sink += tv.tv_usec;
        } else {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            sink += ts.tv_nsec;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / calls;
    printf("%.3f %ld\n", ns, sink & 1);
    return 0;
}
