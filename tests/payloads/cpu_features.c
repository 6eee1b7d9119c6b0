/* What a program learns about usable vector state: OSXSAVE, XCR0 (XGETBV), and the compiler's feature checks. */
#include <cpuid.h>
#include <stdio.h>

int main(void) {
    unsigned a, b, c, d;
    __cpuid(1, a, b, c, d);
    int osxsave = (c >> 27) & 1;
    unsigned xcr0 = 0, hi = 0;
    if (osxsave)
        __asm__ volatile("xgetbv" : "=a"(xcr0), "=d"(hi) : "c"(0));
    __builtin_cpu_init();
    printf("osxsave %d xcr0 %#x avx %d avx2 %d avx512f %d\n", osxsave, xcr0, !!__builtin_cpu_supports("avx"),
           !!__builtin_cpu_supports("avx2"), !!__builtin_cpu_supports("avx512f"));
    return 0;
}
