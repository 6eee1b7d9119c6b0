/* What a program learns about its CPU: usable vector state (OSXSAVE, XCR0 through XGETBV, the compiler's
   feature checks) and the user-mode ISA extensions km takes from the host (monitor/kvm/cpuid.py): their CPUID
   bits, the compiler's and glibc's view of them, and the instructions themselves. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <sched.h>
#include <stdio.h>
#ifdef __GLIBC__
#include <sys/platform/x86.h>
#endif

/* rdtscp's TSC_AUX is what Linux puts there, (node << 12) | cpu: 1 if its CPU number is the one getcpu gives */
static int tsc_aux_is_cpu(void) {
    for (int i = 0; i < 100; i++) {
        int before = sched_getcpu();
        unsigned lo, hi, aux;
        __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
        if (sched_getcpu() == before)
            return (int)(aux & 0xfff) == before;
    }
    return -1;
}

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

    __cpuid(0x80000000, a, b, c, d);
    int abm = 0, sse4a = 0, rdtscp = 0;
    if (a >= 0x80000001) {
        __cpuid(0x80000001, a, b, c, d);
        abm = (c >> 5) & 1, sse4a = (c >> 6) & 1, rdtscp = (d >> 27) & 1;
    }
    printf("cpuid abm %d sse4a %d rdtscp %d\n", abm, sse4a, rdtscp);
    printf("gcc abm %d lzcnt %d sse4a %d x86-64-v2 %d x86-64-v3 %d x86-64-v4 %d\n", !!__builtin_cpu_supports("abm"),
           !!__builtin_cpu_supports("lzcnt"), !!__builtin_cpu_supports("sse4a"),
           !!__builtin_cpu_supports("x86-64-v2"), !!__builtin_cpu_supports("x86-64-v3"),
           !!__builtin_cpu_supports("x86-64-v4"));
#ifdef __GLIBC__
    printf("glibc lzcnt %d sse4a %d rdtscp %d\n", !!CPU_FEATURE_ACTIVE(LZCNT), !!CPU_FEATURE_ACTIVE(SSE4A),
           !!CPU_FEATURE_ACTIVE(RDTSCP));
#endif
    if (abm) {
        unsigned zeros, x = 0x10;
        __asm__("lzcnt %1, %0" : "=r"(zeros) : "r"(x));
        printf("lzcnt(0x10) %u\n", zeros);
    }
    if (rdtscp)
        printf("rdtscp tsc_aux is the cpu %d\n", tsc_aux_is_cpu());
    return 0;
}
