/* A loop on one source line: gdb's `next` over it is thousands of single steps (range stepping). */
#include <stdio.h>

int main(void) {
    int total = 0;
    for (int i = 0; i < 300; i++) total += i * i;   /* @loop */
    printf("total %d\n", total);                   /* @after_loop */
    return 0;
}
