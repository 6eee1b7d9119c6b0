/* Not a payload: run natively as pid 1 of a new pid namespace (unshare -fp --mount-proc), an init that never reaps
   orphans (an application run as a container's first process). It runs ARGS..., waits for that process alone, then
   says on stderr how many of its children are km's teardown holders ("holders N", zombies or not) and exits with the
   command's status. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: noreap_init PROGRAM ARGS...\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        _exit(127);
    }
    int status = 0, holders = 0, child;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    FILE *children = fopen("/proc/1/task/1/children", "r");
    while (children && fscanf(children, "%d", &child) == 1) {
        char path[64], stat[128] = { 0 };
        snprintf(path, sizeof path, "/proc/%d/stat", child);
        FILE *f = fopen(path, "r");
        if (f) {
            fread(stat, 1, sizeof stat - 1, f);
            fclose(f);
        }
        holders += strstr(stat, "(km-teardown)") != NULL;
    }
    fprintf(stderr, "holders %d\n", holders);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
