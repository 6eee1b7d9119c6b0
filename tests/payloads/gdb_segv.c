/* gdb stub tests: a SIGSEGV gdb must show as "Program received signal SIGSEGV" with $_siginfo. */
#include <stdio.h>

int *volatile nowhere = (int *)0x10;

int main(void) {
    printf("about to fault\n");
    fflush(stdout);
    *nowhere = 1;               /* @fault */
    return 0;
}
