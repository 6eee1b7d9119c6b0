/* sys_enosys.c - syscalls km does not serve must fail with ENOSYS (and be traced), never stop the payload. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long nr = atol(argv[i]);
        long r = syscall(nr, 0, 0, 0, 0, 0, 0);
        printf("syscall %ld = %ld errno %s\n", nr, r, r < 0 && errno == ENOSYS ? "ENOSYS" : "other");
    }
    printf("survived\n");
    return 0;
}
