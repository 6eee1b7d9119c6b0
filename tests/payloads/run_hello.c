/* run_hello.c - the differential basics: stdout, argv, envp, a file written in the VM, the exit status.
 * usage: run_hello [--write FILE] [--env NAME...] [--exit N] [ARGS...]   (prints every argument it gets) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int status = 0;
    printf("hello from %s\n", strrchr(argv[0], '/') ? "a path" : "a name");
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++) {
        printf("argv[%d]=[%s]\n", i, argv[i]);
        if (!strcmp(argv[i], "--exit") && i + 1 < argc) {
            status = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--env") && i + 1 < argc) {
            const char *v = getenv(argv[i + 1]);
            printf("env %s=%s\n", argv[i + 1], v ? v : "(unset)");
        } else if (!strcmp(argv[i], "--write") && i + 1 < argc) {
            FILE *f = fopen(argv[i + 1], "w");
            if (!f) { perror("fopen"); return 99; }
            fprintf(f, "written inside, %d args\n", argc);
            fclose(f);
        }
    }
    fflush(stdout);
    return status;
}
