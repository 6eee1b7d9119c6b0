/* gdb stub tests: one thread stops at a breakpoint (tick) again and again while another sends itself SIGUSR1 in
 * a loop, which gdb passes (handle nostop pass): every signal sent must reach the handler, as under gdbserver. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TICKS 60

static volatile int ticking = 1;
static volatile int handled;
static int sent;

static void on_usr1(int signo) {
    (void)signo;
    handled++;
}

void tick(int i) {
    (void)i;                    /* @tick */
}

static void *sender(void *arg) {
    (void)arg;
    pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);
    while (ticking) {
        syscall(SYS_tgkill, pid, tid, SIGUSR1);     /* to itself: handled before tgkill returns, natively */
        sent++;
    }
    return NULL;
}

int main(void) {
    pthread_t thread;
    signal(SIGUSR1, on_usr1);
    pthread_create(&thread, NULL, sender, NULL);
    while (!sent)
        ;
    for (int i = 0; i < TICKS; i++)
        tick(i);
    ticking = 0;
    pthread_join(thread, NULL);
    printf("sent=%d handled=%d\n", sent, handled);
    return sent == handled ? 0 : 1;
}
