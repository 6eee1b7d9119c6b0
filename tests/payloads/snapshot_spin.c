/* A loop gdb's ignore count runs through while km-cli takes snapshots (test_snapshot_mgmt.py): `stage`, in
 * memory, says where the loop is (2i+1 from before hit(i) is called until it returned, 2i+2 in spin()), so a
 * snapshot's registers can be checked against its memory. */
#include <stdio.h>

volatile long stage;
volatile long sink;

__attribute__((noinline)) void hit(long i) { sink += i; }

__attribute__((noinline)) void spin(void)
{
    for (long k = 0; k < 3500000; k++)
        sink += k;
}

int main(void)
{
    for (long i = 0; i < 400; i++) {
        stage = 2 * i + 1;
        hit(i);
        stage = 2 * i + 2;
        spin();
    }
    printf("done\n");
    return 0;
}
