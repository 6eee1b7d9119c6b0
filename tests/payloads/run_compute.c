/* run_compute.c - compute-bound work with no syscalls in the loop (bench/ and the native-speed test).
 * usage: run_compute [ITERATIONS=200000000] [--time]   prints a checksum so both runs can be compared, and with
 * --time the loop's own duration (two clock_gettime calls: the monitor's start-up is not in it) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    unsigned long n = argc > 1 ? strtoul(argv[1], 0, 0) : 200000000UL;
    unsigned long x = 88172645463325252UL, sum = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (unsigned long i = 0; i < n; i++) {      /* xorshift64: registers only, no memory traffic */
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        sum += x >> 60;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("checksum %lu\n", sum);
    if (argc > 2 && !strcmp(argv[2], "--time"))
        printf("seconds %.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
