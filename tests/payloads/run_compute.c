/* run_compute.c - compute-bound work with no syscalls in the loop (bench/ and the native-speed test).
 * usage: run_compute [ITERATIONS=200000000] [--time] [--mem MB]   prints a checksum so both runs can be compared,
 * with --time the loop's own duration (the monitor's start-up is not in it), and with --mem the loop also reads
 * and writes a random word of an MB-sized buffer each iteration (TLB and page-walk bound: shows paging costs) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv) {
    unsigned long n = argc > 1 ? strtoul(argv[1], 0, 0) : 200000000UL;
    unsigned long x = 88172645463325252UL, sum = 0;
    int timed = 0;
    unsigned long words = 0, *buf = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--time")) timed = 1;
        if (!strcmp(argv[i], "--mem") && i + 1 < argc) words = strtoul(argv[i + 1], 0, 0) << 17;   /* MB / 8 */
    }
    if (words) buf = calloc(words, sizeof *buf);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (!buf) {
        for (unsigned long i = 0; i < n; i++) {      /* xorshift64: registers only, no memory traffic */
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            sum += x >> 60;
        }
    } else {
        for (unsigned long i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            unsigned long *w = &buf[x % words];
            sum += *w >> 60;
            *w += x;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("checksum %lu\n", sum);
    if (timed)
        printf("seconds %.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
