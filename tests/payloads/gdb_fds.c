/* Under km -g the payload's descriptors are its own: the first open() gets 3, as in a plain process. */
#include <fcntl.h>
#include <stdio.h>

int main(void) {
    int fd = open("/dev/null", O_RDONLY);
    printf("first fd %d\n", fd);   /* @opened */
    return 0;
}
