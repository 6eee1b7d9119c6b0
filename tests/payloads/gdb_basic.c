/* gdb stub tests: globals to print and change, a struct, a call chain to break in, step through and finish. */
#include <stdio.h>
#include <string.h>

struct point {
    int x;
    int y;
    const char *label;
};

int counter = 41;
long big_value = 0x1122334455667788L;
char message[32] = "hello from km";
struct point origin = {3, 4, "origin"};
volatile int watched;

int add(int a, int b) {
    int sum = a + b;           /* @add_body */
    return sum;                /* @add_return */
}

int scale(struct point *p, int k) {
    p->x *= k;                 /* @scale_body */
    p->y *= k;
    return p->x + p->y;
}

int main(void) {
    int local = 5;             /* @main_start */
    counter = add(counter, 1); /* @call_add */
    watched = counter;         /* @write_watched */
    local += scale(&origin, 2);/* @call_scale */
    printf("counter=%d local=%d x=%d message=%s\n", counter, local, origin.x, message); /* @print */
    return counter - 42 + 3;   /* @return */
}
