/* Snapshots itself (km_snapshot_take through a raw syscall) with x87, SSE and AVX values live in registers across
 * the call, then reports whether they came back; argv[1] == "live" keeps the payload running. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <km/snapshot.h>

static volatile int counter = 41;

int main(int argc, char **argv)
{
    uint64_t ymm_in[4] = {0x1111222233334444ull, 0x5555666677778888ull, 0x99990000aaaabbbbull, 0xccccddddeeeeffffull};
    uint64_t ymm_out[4];
    double d_in = 3.25, d_out;
    long double x87_in = 1.5L, x87_out;
    int live = argc > 1 && strcmp(argv[1], "live") == 0;
    printf("before %d\n", counter);
    fflush(stdout);
    __asm__ volatile("vmovdqu %[y], %%ymm7\n\tmovsd %[d], %%xmm9\n\tfldt %[x]"
                     : : [y] "m"(ymm_in), [d] "m"(d_in), [x] "m"(x87_in) : "xmm7", "xmm9");
    /* no C code between loading the registers and reading them back: only the call */
    register long rax __asm__("rax") = KM_SYSCALL_SNAPSHOT;
    register long rdi __asm__("rdi") = (long)"fp";
    register long rsi __asm__("rsi") = (long)"registers live across the call";
    register long rdx __asm__("rdx") = live;
    __asm__ volatile("syscall" : "+r"(rax) : "r"(rdi), "r"(rsi), "r"(rdx) : "rcx", "r11", "memory");
    int r = (int)rax;   /* @snapshot-point: where gdb shows the snapshot (the instruction after the call) */
    __asm__ volatile("vmovdqu %%ymm7, %[y]\n\tmovsd %%xmm9, %[d]\n\tfstpt %[x]"
                     : [y] "=m"(ymm_out), [d] "=m"(d_out), [x] "=m"(x87_out));
    counter++;
    printf("%s %d ymm %s xmm %g x87 %Lg\n", r == KM_SNAPSHOT_RESUMED ? "resumed" : r == KM_SNAPSHOT_TAKEN ? "taken" : "failed",
           counter, memcmp(ymm_in, ymm_out, sizeof ymm_in) ? "differ" : "same", d_out, x87_out);
    return r < 0;
}
