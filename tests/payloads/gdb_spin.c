/* gdb stub tests: runs until gdb sets `keep_going = 0` (Ctrl-C and --gdb_listen attach/detach cycles). */
#include <stdio.h>

volatile int keep_going = 1;
volatile unsigned long spins;

int main(void) {
    printf("spinning\n");
    fflush(stdout);
    while (keep_going)
        spins++;                /* @spin */
    printf("stopped spinning\n");
    return 7;
}
