/* bench/gdb.py's payload: main fills a 4 MiB buffer (so every page is real), then calls tick() in a loop.
 * The debugger stops in tick() (breakpoint hits), steps through it (stepi) and dumps `buffer` (memory reads). */
#include <stdio.h>
#include <stdlib.h>

#define BUFFER_SIZE (4 << 20)

char buffer[BUFFER_SIZE];
volatile long total;

__attribute__((noinline)) void tick(long i)
{
    total += i ^ (total >> 3);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    for (long i = 0; i < BUFFER_SIZE; i++)
        buffer[i] = (char)(i * 7);
    for (long i = 0; i < n; i++)
        tick(i);
    printf("total %ld\n", total);
    return 0;
}
