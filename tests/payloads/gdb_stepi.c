/* gdb stub tests: `stepi` through a raw `syscall` and onto a faulting store. km single-steps a parked thread on
 * the stub's own thread; both of these end in an exit that the vCPU thread itself must then serve. */
#include <stdio.h>

int *volatile nowhere = (int *)0x10;

int main(void) {
    long pid;
    printf("stepping\n");
    fflush(stdout);
    __asm__ volatile("mov $39, %%eax\n\tsyscall\n\tnop" : "=a"(pid) : : "rcx", "r11", "memory");   /* @getpid */
    *nowhere = (int)pid;        /* @fault */
    return 0;
}
