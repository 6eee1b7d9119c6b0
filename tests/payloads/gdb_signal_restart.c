/* A call interrupted by a signal that gdb then discards (handle SIGALRM nopass): with no handler run, Linux restarts
   the call (restart_syscall for nanosleep), which sleeps out the rest and returns 0. */
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static void on_alarm(int signo) { (void)signo; }

int main(void)
{
    struct sigaction action = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &action, 0);
    struct itimerval once = { { 0, 0 }, { 0, 100000 } };
    setitimer(ITIMER_REAL, &once, 0);
    struct timespec nap = { 0, 500000000 }, left;
    int result = nanosleep(&nap, &left);
    printf("nanosleep %d\n", result);
    return 0;
}
