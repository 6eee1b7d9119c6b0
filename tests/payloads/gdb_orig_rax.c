/* orig_rax around calls (test_gdb_orig_rax.py): a raw `syscall` to step over, then a nanosleep or a read on an
   empty pipe (argv[1]) that a SIGALRM cuts short, its handler installed without SA_RESTART. gdb calls poke() at
   the signal's stop; the last line says what the call returned, errno, and what ran. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile int alarms, pokes;

static void on_alarm(int signo) { (void)signo; alarms++; }

int poke(void) { return ++pokes; }

static long raw_getppid(void)
{
    long result;
    __asm__ volatile("syscall" : "=a"(result) : "a"(110L) : "rcx", "r11", "memory");   /* @raw */
    return result;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "nanosleep";
    long ppid = raw_getppid();
    struct sigaction action = { .sa_handler = on_alarm };
    sigaction(SIGALRM, &action, 0);
    struct itimerval once = { { 0, 0 }, { 0, 20000 } };
    setitimer(ITIMER_REAL, &once, 0);
    int result;
    if (!strcmp(mode, "read")) {
        int fds[2];
        char byte;
        pipe(fds);
        result = (int)read(fds[0], &byte, 1);
    } else {
        struct timespec nap = { 0, 200000000 }, left;
        result = nanosleep(&nap, &left);
    }
    int error = result < 0 ? errno : 0;
    if (ppid > 0)
        printf("%s %d errno %d pokes %d alarms %d ppid ok\n", mode, result, error, pokes, alarms);
    else
        printf("%s %d errno %d pokes %d alarms %d ppid %ld\n", mode, result, error, pokes, alarms, ppid);
    return 0;
}
