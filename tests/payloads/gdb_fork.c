/* gdb and fork/vfork/exec: `gdb_fork fork` forks a child that calls in_child() and exits 7;
 * `vfork` vforks a child that execs this program as `execd`; `exec` execs itself as `execd`;
 * `execd` calls after_exec() and exits 5. Every mode prints what it saw, so output is compared too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

volatile int marker;

__attribute__((noinline)) void in_child(void) {
    marker = 1;                              /* @in_child */
}

__attribute__((noinline)) void in_parent(int status) {
    marker = status;                         /* @in_parent */
}

__attribute__((noinline)) void after_exec(void) {
    marker = 3;                              /* @after_exec */
}

static int report(pid_t p) {
    int st = 0;
    waitpid(p, &st, 0);
    in_parent(st);
    if (WIFEXITED(st))
        printf("child exit %d\n", WEXITSTATUS(st));
    else
        printf("child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "fork";
    fflush(stdout);
    if (!strcmp(mode, "fork")) {
        pid_t p = fork();
        if (p == 0) {
            in_child();
            _exit(7);
        }
        return report(p);
    }
    if (!strcmp(mode, "vfork")) {
        pid_t p = vfork();
        if (p == 0) {
            execl(argv[0], argv[0], "execd", (char *)0);
            _exit(127);
        }
        return report(p);
    }
    if (!strcmp(mode, "exec")) {
        execl(argv[0], argv[0], "execd", (char *)0);
        perror("execl");
        return 1;
    }
    after_exec();
    printf("execd\n");
    return 5;
}
