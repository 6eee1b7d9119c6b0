/* run_compute.c - compute-bound work with no syscalls in the loop (bench/ and the native-speed test).
 * usage: run_compute [ITERATIONS=200000000]   prints a checksum so both runs can be compared */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    unsigned long n = argc > 1 ? strtoul(argv[1], 0, 0) : 200000000UL;
    unsigned long x = 88172645463325252UL, sum = 0;
    for (unsigned long i = 0; i < n; i++) {      /* xorshift64: registers only, no memory traffic */
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        sum += x >> 60;
    }
    printf("checksum %lu\n", sum);
    return 0;
}
