/* DAP and fork: the parent forks a child that calls child_only() and exits 7; the parent waits for it, reports how
 * it ended and exits 3. Each side prints, so the output is compared with a native run. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) int child_only(int x) {
    int doubled = x * 2;                     /* @child_only */
    return doubled;                          /* @child_ret */
}

int main(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        printf("child computes %d\n", child_only(21));     /* @call_child_only */
        fflush(stdout);
        _exit(7);
    }
    int st = 0;
    waitpid(p, &st, 0);
    if (WIFEXITED(st))
        printf("parent saw child exit %d\n", WEXITSTATUS(st));
    else
        printf("parent saw child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    return 3;
}
