/* orig_rax and rax of threads gdb did not stop itself (test_gdb_orig_rax.py): `blocked` starts a thread that
   blocks in read() on an empty pipe, then main stops at stopped_all() with the thread inside its call, and
   writes the byte it waits for (`pause` and `sigwait`: the thread waits in pause() or sigwaitinfo() for the
   SIGUSR1 main then sends); `fork` forks a child that prints and exits 7, the parent stops at forked()
   before it waits. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds[2];
static volatile int ready;
static const char *mode = "blocked";

__attribute__((noinline)) void stopped_all(void) { }
__attribute__((noinline)) void forked(pid_t child) { (void)child; }

static void *reader(void *arg)
{
    char byte;
    (void)arg;
    ready = 1;
    if (!strcmp(mode, "pause")) {
        pause();
        printf("pause returned\n");
        return 0;
    }
    if (!strcmp(mode, "sigwait")) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        printf("sigwait got %d\n", sigwaitinfo(&set, 0));
        return 0;
    }
    long got = read(fds[0], &byte, 1);
    printf("reader got %ld\n", got);
    return 0;
}

static void on_usr1(int signo) { (void)signo; }

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "blocked";
    if (!strcmp(mode, "fork")) {
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            printf("child\n");
            return 7;
        }
        forked(child);
        int status;
        waitpid(child, &status, 0);
        printf("child exit %d\n", WEXITSTATUS(status));
        return 0;
    }
    pthread_t thread;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    if (!strcmp(mode, "sigwait"))
        pthread_sigmask(SIG_BLOCK, &usr1, 0);       /* the thread inherits it */
    signal(SIGUSR1, on_usr1);
    pipe(fds);
    pthread_create(&thread, 0, reader, 0);
    while (!ready)
        usleep(1000);
    usleep(20000);                      /* the reader is inside read() */
    stopped_all();
    if (strcmp(mode, "blocked"))
        pthread_kill(thread, SIGUSR1);
    else
        write(fds[1], "x", 1);
    pthread_join(thread, 0);
    return 0;
}
