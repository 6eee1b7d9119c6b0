/* dyn_needs.c - a program linked against a library (dyn_lib.c as libkmneeded.so) that may be missing when it
 * runs: then ld.so itself reports the failure and the status, before main. */
#include <stdio.h>

int km_needed_answer(void);

int main(void) {
    printf("answer %d\n", km_needed_answer());
    return 0;
}
