/* execve's argument limits as Linux has them (fs/exec.c): no count limit but the bytes (a quarter of the stack's
 * rlimit, at most 6 MiB, at least 128 KiB, strings and pointers), one string at most MAX_ARG_STRLEN (128 KiB, its
 * NUL included); past either, E2BIG.
 *   exec_args many N    execs itself with N arguments "x": the child prints its argc
 *   exec_args long N    execs itself with one argument of N bytes
 *   exec_args total N   execs itself with N arguments of 1000 bytes
 *   exec_args child ... prints "argc N bytes M" (M: the arguments' bytes)
 *   exec_args none      execs itself with no argument at all (argc 0; Linux >= 5.18 passes "" as argv[0]):
 *                       the child, told by EXEC_ARGS_NONE=1 in its environment, prints "argc N argv0 [S]"
 * The parent prints "execv: <strerror>" when the exec fails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (getenv("EXEC_ARGS_NONE")) {
        printf("argc %d argv0 [%s]\n", argc, argc ? argv[0] : "(none)");
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "none") == 0) {
        char *none[] = { 0 }, *env[] = { "EXEC_ARGS_NONE=1", 0 };
        execve("/proc/self/exe", none, env);
        printf("execve: %s\n", strerror(errno));
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        size_t bytes = 0;
        for (int i = 0; i < argc; i++)
            bytes += strlen(argv[i]);
        printf("argc %d bytes %zu\n", argc, bytes);
        return 0;
    }
    if (argc < 3)
        return 2;
    long n = atol(argv[2]);
    char **av = calloc(n + 3, sizeof *av);
    av[0] = argv[0];
    av[1] = "child";
    if (strcmp(argv[1], "long") == 0) {
        char *s = malloc(n + 1);
        memset(s, 'y', n);
        s[n] = 0;
        av[2] = s;
    } else {
        char *s = malloc(1001);
        memset(s, 'z', 1000);
        s[1000] = 0;
        for (long i = 0; i < n; i++)
            av[2 + i] = strcmp(argv[1], "many") == 0 ? "x" : s;
    }
    execv(argv[0], av);
    printf("execv: %s\n", strerror(errno));
    return 1;
}
