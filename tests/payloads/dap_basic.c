/* DAP bridge payload: locals, a struct, an array, calls to step through, a watched global, a spin loop to pause.
 * Exit status is total (3 + 4 = 7) unless the debugger changes it. `dap_basic.km spin` spins until
 * spin_done is set. */
#include <stdio.h>
#include <string.h>

struct point {
    int x;
    int y;
    const char *label;
};

volatile int counter;
volatile int spin_done;

static int add(int a, int b) {
    int sum = a + b; /* @add_body */
    return sum; /* @add_ret */
}

static void bump(int times) {
    for (int i = 0; i < times; i++) {
        counter += 1; /* @bump_loop */
    }
}

int main(int argc, char **argv) {
    struct point p = {3, 4, "origin"};
    int answer = 42; /* @main_start */
    int numbers[4] = {10, 20, 30, 40};
    int total = add(p.x, p.y); /* @call_add */
    bump(5); /* @after_add */
    printf("answer=%d total=%d counter=%d numbers[1]=%d\n", answer, total, counter, numbers[1]); /* @print */
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "spin") == 0) {
        while (!spin_done) { /* @spin */
            counter++; /* @spin_body */
        }
        printf("spin done\n");
    }
    return total; /* @return */
}
