/* Not a payload: a launcher run natively, a child subreaper (PR_SET_CHILD_SUBREAPER), so that the orphans among
   its descendants, km's teardown holders among them, become its children. It runs ARGS..., reaps every child until
   none is left (each holder ends once the km it held for has ended), then says on stderr how many of them were
   teardown holders ("holders N", by the name they give themselves) and exits with the command's status. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: subreaper PROGRAM ARGS...\n");
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
        perror("subreaper: prctl");
        return 2;
    }
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    int status = 0, holders = 0;
    for (;;) {
        siginfo_t info = { 0 };
        if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT | __WALL) < 0) {
            if (errno == EINTR)
                continue;
            break;                              /* ECHILD: every descendant has ended */
        }
        char path[64], stat[128] = { 0 };       /* a zombie keeps its name: "PID (km-teardown) Z ..." */
        snprintf(path, sizeof path, "/proc/%d/stat", info.si_pid);
        FILE *f = fopen(path, "r");
        if (f) {
            fread(stat, 1, sizeof stat - 1, f);
            fclose(f);
        }
        holders += strstr(stat, "(km-teardown)") != NULL;
        int child_status;
        if (waitpid(info.si_pid, &child_status, __WALL) == pid)
            status = child_status;
    }
    fprintf(stderr, "holders %d\n", holders);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
