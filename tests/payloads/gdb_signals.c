/* gdb stub tests: a signal gdb stops on and then passes to the payload's handler (C packet, QPassSignals). */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

volatile sig_atomic_t handled;

void on_usr1(int signo) {
    handled = signo;            /* @handler */
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);             /* @raise */
    printf("handled=%d\n", (int)handled);
    return handled == SIGUSR1 ? 0 : 1;
}
