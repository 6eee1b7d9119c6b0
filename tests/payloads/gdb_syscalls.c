/* gdb's syscall catchpoints: getppid() twice, a write, then exit 3. The output is compared too. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    pid_t a = getppid();
    pid_t b = getppid();
    printf("same parent %d\n", a == b);
    fflush(stdout);
    return 3;
}
