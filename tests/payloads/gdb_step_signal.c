/* A signal met by a stepi: a worker thread's `syscall` instruction (at raise_syscall) sends the thread itself
 * SIGUSR1 (tgkill), which gdb passes without stopping; a debugger steps over it and on into the handler. main
 * waits for the worker and exits with the number of handled signals. */
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

volatile int usr1;

void on_usr1(int signo) {
    usr1++;
    (void)signo;
}

__attribute__((noinline)) void after_raise(void) {
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void *worker(void *arg) {
    long pid = getpid(), tid = syscall(SYS_gettid), ret;
    __asm__ volatile(".globl raise_syscall\nraise_syscall: syscall"
                     : "=a"(ret)
                     : "a"((long)SYS_tgkill), "D"(pid), "S"(tid), "d"((long)SIGUSR1)
                     : "rcx", "r11", "memory");
    after_raise();
    return arg;
}

int main(void) {
    pthread_t t;
    signal(SIGUSR1, on_usr1);
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return usr1;
}
