/* sys_fuzz.c - calls each syscall number given on the command line with hostile arguments (bad pointers, huge
 * sizes, negative fds) and prints the result: under km every call must come back with a number, never a km
 * failure. NOT for native runs (it would call kill, umask... on the real system with these arguments). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    const long args[][6] = {
        {0x10, 0x10, 0x10, 0x10, 0x10, 0x10},                              /* the NULL page */
        {0xdead0000L, 0xdead0000L, 8, 0xdead0000L, 8, 8},                  /* unmapped */
        {-1, -1, -1, -1, -1, -1},                                          /* all ones: fd -1, size max */
        {(long)0xffff800000000000UL, 1L << 46, 0, (long)0x8000000000000000UL, 0, 0},   /* kernel half, huge */
    };
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 1; i < argc; i++) {
        long nr = atol(argv[i]);
        for (unsigned k = 0; k < sizeof args / sizeof *args; k++) {
            const long *a = args[k];
            long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            printf("%ld/%u %ld\n", nr, k, r);
        }
    }
    printf("fuzz done\n");
    return 0;
}
