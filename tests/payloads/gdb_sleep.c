/* gdb stub tests: a payload blocked in a syscall (nanosleep) when gdb interrupts or attaches. */
#include <stdio.h>
#include <time.h>

volatile int keep_going = 1;

int main(void) {
    struct timespec nap = {0, 20 * 1000 * 1000};
    printf("sleeping\n");
    fflush(stdout);
    while (keep_going)
        nanosleep(&nap, NULL);  /* @nap */
    printf("woke up\n");
    return 4;
}
