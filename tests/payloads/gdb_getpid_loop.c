/* A continue from km -g's entry stop into calls the stub's thread serves itself (getpid, one of
   monitor/vcpu/loop.py's SERVED_HERE), forever: the run deadline must still hand it to the vCPU's thread, so
   that gdb's ^C is read and answered. */
#include <unistd.h>
#include <sys/syscall.h>

int main(void) {
    for (;;)
        syscall(SYS_getpid);
}
