/* An exec chain that checks what execve keeps and what it drops, as Linux does (tests/integration/test_exec.py
 * runs it under km and natively and compares the output).
 *   exec_chain start NEXT SCRIPT FINAL: sets a caught SIGUSR1, an ignored SIGUSR2, SIGINT blocked, an alternate
 *     stack, one descriptor close-on-exec and one not, starts a thread blocked in read(), then execs NEXT from a
 *     second thread (that thread takes the pid; the others are gone), with its own environment and its MXCSR and
 *     x87 control word changed (the exec resets them).
 *   exec_chain check PID KEPT GONE SCRIPT FINAL SIGNALFD: prints what it inherited (reading the pending SIGINT
 *     from a signalfd made before the exec), then execs SCRIPT (a #! script), which execs FINAL.
 *   exec_chain final ARGS...: prints its argv, comm and an environment variable, exits 7.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

static char **args;
static int pipefd[2];
static char altstack[65536];

static void on_usr1(int signo) { (void)signo; }

static void *blocked(void *arg) {
    char c;
    (void)arg;
    read(pipefd[0], &c, 1);             /* never returns: nobody writes */
    puts("ghost: the blocked thread ran after the exec");
    return NULL;
}

static void *exec_from_thread(void *arg) {
    int *fds = arg;
    char pid[32], kept[16], gone[16], sfd[16];
    snprintf(pid, sizeof pid, "%d", getpid());
    snprintf(kept, sizeof kept, "%d", fds[0]);
    snprintf(gone, sizeof gone, "%d", fds[1]);
    snprintf(sfd, sizeof sfd, "%d", fds[2]);
    char *argv[] = {"check", "check", pid, kept, gone, args[3], args[4], sfd, NULL};
    char *envp[] = {"CHAIN=passed through", "SECOND=2", NULL};
    printf("start: thread %s the leader, execs %s\n", syscall(SYS_gettid) == getpid() ? "is" : "is not", args[2]);
    fflush(stdout);
    unsigned int csr = 0x7F80;          /* round toward zero; the exec resets it to 0x1F80 */
    unsigned short cw = 0x27F;          /* 53-bit precision; the exec resets it to 0x37F */
    __asm__ volatile("ldmxcsr %0; fldcw %1" : : "m"(csr), "m"(cw));
    execve(args[2], argv, envp);
    perror("execve");
    exit(99);
}

static const char *disposition(int signo) {
    struct sigaction sa;
    sigaction(signo, NULL, &sa);
    return sa.sa_handler == SIG_DFL ? "default" : sa.sa_handler == SIG_IGN ? "ignored" : "caught";
}

static int threads(void) {
    char line[256];
    int n = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8))
            n = atoi(line + 8);
    if (f)
        fclose(f);
    return n;
}

static int start(void) {
    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK | SA_RESTART};
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGUSR2, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGINT);             /* stays pending across the exec (process-directed, blocked) */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    static int fds[3];
    fds[0] = open("/dev/null", O_RDONLY);
    fds[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fds[2] = signalfd(-1, &set, 0);     /* kept: it reads the new program's signals */
    pipe(pipefd);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, blocked, NULL);
    printf("start: SIGUSR1 %s, SIGUSR2 %s, threads %d\n", disposition(SIGUSR1), disposition(SIGUSR2), threads());
    fflush(stdout);
    pthread_create(&t2, NULL, exec_from_thread, fds);
    pthread_join(t1, NULL);
    puts("ghost: the main thread ran after the exec");
    return 98;
}

static int check(void) {
    int kept = atoi(args[3]), gone = atoi(args[4]);
    sigset_t mask;
    sigprocmask(SIG_BLOCK, NULL, &mask);
    stack_t ss;
    sigaltstack(NULL, &ss);
    char comm[16] = "";
    prctl(PR_GET_NAME, comm);
    printf("check: argv[0] %s, same pid %s, tid is pid %s, threads %d\n", args[0],
           atoi(args[2]) == getpid() ? "yes" : "no", syscall(SYS_gettid) == getpid() ? "yes" : "no", threads());
    sigset_t pending;
    sigpending(&pending);
    printf("check: SIGUSR1 %s, SIGUSR2 %s, SIGINT %s and %s, altstack %s\n", disposition(SIGUSR1),
           disposition(SIGUSR2), sigismember(&mask, SIGINT) ? "blocked" : "unblocked",
           sigismember(&pending, SIGINT) ? "pending" : "not pending", ss.ss_flags & SS_DISABLE ? "disabled" : "kept");
    printf("check: plain fd %s, close-on-exec fd %s\n", fcntl(kept, F_GETFD) >= 0 ? "open" : "closed",
           fcntl(gone, F_GETFD) >= 0 ? "open" : "closed");
    unsigned int csr;
    unsigned short cw;
    __asm__ volatile("stmxcsr %0; fnstcw %1" : "=m"(csr), "=m"(cw));
    printf("check: mxcsr %#x, x87 control word %#x\n", csr, cw);
    printf("check: CHAIN=%s, HOME %s, comm %s\n", getenv("CHAIN"), getenv("HOME") ? "set" : "unset", comm);
    struct signalfd_siginfo si;
    int got = read(atoi(args[7]), &si, sizeof si) == sizeof si ? (int)si.ssi_signo : -1;
    sigpending(&pending);
    printf("check: the signalfd kept reads signal %d, now %s\n", got,
           sigismember(&pending, SIGINT) ? "pending" : "not pending");
    raise(SIGUSR2);                     /* ignored: nothing happens */
    fflush(stdout);
    char *argv[] = {args[5], "final", "from script", args[6], NULL};
    execv(args[5], argv);
    perror("execv");
    return 97;
}

static int final(int argc) {
    char comm[16] = "";
    prctl(PR_GET_NAME, comm);
    printf("final: argc %d:", argc);
    for (int i = 1; i < argc; i++)
        printf(" [%s]", args[i]);
    printf("\nfinal: comm %s, CHAIN=%s, SIGUSR2 %s\n", comm, getenv("CHAIN"), disposition(SIGUSR2));
    return 7;                           /* stdio flushed at exit: the output is not lost */
}

int main(int argc, char **argv) {
    args = argv;
    if (argc >= 5 && !strcmp(argv[1], "start"))
        return start();
    if (argc >= 8 && !strcmp(argv[1], "check"))
        return check();
    if (argc >= 2 && !strcmp(argv[1], "final"))
        return final(argc);
    fprintf(stderr, "usage: exec_chain start NEXT SCRIPT FINAL\n");
    return 2;
}
