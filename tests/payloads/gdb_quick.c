/* The stub's quick lane (a plain stepi or continue of a one-thread payload, answered by the target at once): a
 * called function to stop in and a raw `syscall` to step over; the test writes memory and registers between the
 * resumes, and the exit status shows whether each write reached the run that followed it. */
#include <unistd.h>

volatile long counter;

__attribute__((noinline)) void tick(long i)
{
    counter += i;
}

int main(void)
{
    long pid;
    for (long i = 1; i <= 4; i++)
        tick(i);
    __asm__ volatile(".globl quick_syscall\nquick_syscall:\n\tmov $39, %%eax\n\tsyscall\n\tnop"
                     : "=a"(pid) : : "rcx", "r11", "memory");
    _exit(pid > 0 ? (int)(counter & 0x7f) : 0x7f);
}
