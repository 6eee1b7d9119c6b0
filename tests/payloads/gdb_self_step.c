/* Programs that single-step themselves or make threads and processes while gdb steps (test_gdb_self_step.py).
 * `trap`: RFLAGS.TF set with popf and a SIGTRAP handler counting the traps (the third clears TF in the saved
 * context) around a raw getppid; gdb catches that call. `fork`: a child that exits 7, reported by the parent;
 * `thread`: a thread that returns 5, joined. gdb steps over the fork's or clone's `syscall`. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static volatile int traps;

static void on_trap(int signo, siginfo_t *info, void *context)
{
    ucontext_t *uc = context;
    (void)signo;
    (void)info;
    if (++traps >= 3)
        uc->uc_mcontext.gregs[REG_EFL] &= ~0x100L;
}

static void *worker(void *arg)
{
    (void)arg;
    return (void *)5L;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "trap";
    if (!strcmp(mode, "fork")) {
        fflush(stdout);
        pid_t child = fork();
        if (child == 0)
            _exit(7);
        int status;
        waitpid(child, &status, 0);
        if (WIFEXITED(status))
            printf("child exit %d\n", WEXITSTATUS(status));
        else
            printf("child killed by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        return 0;
    }
    if (!strcmp(mode, "thread")) {
        pthread_t thread;
        void *result;
        pthread_create(&thread, 0, worker, 0);
        pthread_join(thread, &result);
        printf("thread returned %ld\n", (long)result);
        return 0;
    }
    struct sigaction action = { .sa_sigaction = on_trap, .sa_flags = SA_SIGINFO };
    sigaction(SIGTRAP, &action, 0);
    long ppid;
    __asm__ volatile("movl $110, %%eax\n\tpushfq\n\torq $0x100, (%%rsp)\n\tpopfq\n\t"
                     "syscall\n\tnop\n\tnop\n\tnop\n\tnop\n\tnop"
                     : "=a"(ppid) : : "rcx", "r11", "memory");
    printf("traps %d ppid %s\n", traps, ppid > 0 ? "ok" : "bad");
    return 0;
}
