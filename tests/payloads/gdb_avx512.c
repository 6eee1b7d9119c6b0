/* AVX-512 registers under gdb: zmm1, zmm17 and k1 hold known patterns at `checkpoint`; gdb may change zmm2 and
 * k2 there, and the program prints what it then holds; `gdb_avx512 crash` dies of SIGSEGV there instead (a core
 * with the same registers). Run only where the CPU has AVX-512. */
#include <stdio.h>
#include <string.h>

static int crash;

__attribute__((noinline)) void checkpoint(void) {
    __asm__ volatile("nop");                                 /* @checkpoint */
    if (crash)
        *(volatile int *)0 = 1;
}

__attribute__((target("avx512f"))) int main(int argc, char **argv) {
    crash = argc > 1;
    static unsigned long long a[8] __attribute__((aligned(64))), b[8] __attribute__((aligned(64)));
    unsigned long long out[8] __attribute__((aligned(64)));
    unsigned long long k2 = 0;
    for (int i = 0; i < 8; i++) {
        a[i] = 0x1111111111111111ULL * (i + 1);
        b[i] = 0x0101010101010101ULL * (i + 0x10);
    }
    __asm__ volatile(
        "vmovdqu64 %[a], %%zmm1\n\t"
        "vmovdqu64 %[b], %%zmm17\n\t"
        "vpxorq %%zmm2, %%zmm2, %%zmm2\n\t"
        "movl $0xa5a5, %%eax\n\t"
        "kmovw %%eax, %%k1\n\t"
        "kxorw %%k2, %%k2, %%k2\n\t"
        "call checkpoint\n\t"
        "vmovdqu64 %%zmm2, %[out]\n\t"
        "kmovw %%k2, %%eax\n\t"
        "movq %%rax, %[k2]\n\t"
        : [out] "=m"(out), [k2] "=r"(k2)
        : [a] "m"(a), [b] "m"(b)
        : "rax", "xmm1", "xmm2", "xmm17", "memory");
    printf("zmm2 %llx %llx k2 %llx\n", out[0], out[7], k2);
    return 0;
}
