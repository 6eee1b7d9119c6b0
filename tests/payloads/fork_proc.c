/* fork/exec/wait in km: a forked child is a new km process with a copy of the guest's memory. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
int shared = 1;

int child_work(int x) {
    return x * 2;                   /* @child_work */
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "exec")) {
        printf("exec'd with %s\n", argc > 2 ? argv[2] : "?");
        return 7;
    }
    if (argc > 1 && !strcmp(argv[1], "debugchild")) {
        pid_t p = fork();
        if (p == 0)
            return child_work(21);
        int st;
        waitpid(p, &st, 0);
        printf("child returned %d\n", WEXITSTATUS(st));
        return 0;
    }
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        shared = 2;
        printf("child sees %d\n", shared);
        fflush(stdout);
        _exit(5);
    }
    int st;
    waitpid(p, &st, 0);
    printf("parent sees %d, child exit %d\n", shared, WEXITSTATUS(st));
    fflush(stdout);
    p = fork();
    if (p == 0) {
        *(volatile int *)16 = 1;
        _exit(0);
    }
    waitpid(p, &st, 0);
    printf("child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    fflush(stdout);
    p = fork();
    if (p == 0) {
        execl(argv[0], argv[0], "exec", "execl", (char *)0);
        _exit(99);
    }
    waitpid(p, &st, 0);
    printf("exec child exit %d\n", WEXITSTATUS(st));
    fflush(stdout);
    char *args[] = {argv[0], "exec", "posix_spawn", 0};
    int err = posix_spawn(&p, argv[0], 0, 0, args, environ);
    waitpid(p, &st, 0);
    printf("posix_spawn %d, exit %d\n", err, WEXITSTATUS(st));
    fflush(stdout);
    err = execl("/nonexistent", "x", (char *)0);
    printf("exec of a missing file fails: %d\n", err);
    return 0;
}
