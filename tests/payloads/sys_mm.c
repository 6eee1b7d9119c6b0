/* sys_mm.c - memory syscalls: brk, anonymous mmap (hint, MAP_FIXED, MAP_FIXED_NOREPLACE, PROT_NONE reservations
 * like Go's arena at 0xc000000000), munmap, mprotect return values, madvise(MADV_DONTNEED), mremap.
 * usage: sys_mm            the checks, printed for a differential run
 *        sys_mm segv       write to a page made read-only: must die of SIGSEGV */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#define PAGE 4096UL

static void show(const char *what, long r) {
    printf("%-36s %s\n", what, r == -1 ? (errno == EINVAL ? "EINVAL" : errno == ENOMEM ? "ENOMEM" :
           errno == EEXIST ? "EEXIST" : errno == EFAULT ? "EFAULT" : strerror(errno)) : r == 0 ? "0" : "ok");
}

static long raw_mmap(void *a, size_t len, int prot, int flags) {
    return syscall(SYS_mmap, a, len, prot, flags, -1, 0);
}

static void brk_checks(void) {
    uintptr_t b0 = syscall(SYS_brk, 0);
    printf("brk(0) page aligned or not, nonzero: %d\n", b0 != 0);
    uintptr_t b1 = syscall(SYS_brk, b0 + 3 * PAGE + 100);
    printf("brk grow: %d\n", b1 == b0 + 3 * PAGE + 100);
    memset((void *)b0, 0x5a, 3 * PAGE + 100);
    printf("brk memory writable, reads back: %d\n", ((char *)b0)[3 * PAGE + 99] == 0x5a);
    uintptr_t b2 = syscall(SYS_brk, b0 + PAGE);
    printf("brk shrink: %d\n", b2 == b0 + PAGE);
    uintptr_t b3 = syscall(SYS_brk, b0 + 2 * PAGE);
    printf("brk regrow gives zeroed page: %d %d\n", b3 == b0 + 2 * PAGE, ((char *)b0)[PAGE + 10] == 0);
    printf("brk below start refused: %d\n", (uintptr_t)syscall(SYS_brk, 4096) == b3);
    syscall(SYS_brk, b0);
}

static void mmap_checks(void) {
    char *a = (char *)raw_mmap(0, 5 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    printf("mmap anon aligned: %d, zeroed: %d\n", ((uintptr_t)a & (PAGE - 1)) == 0, a[0] == 0 && a[5 * PAGE - 1] == 0);
    memset(a, 1, 5 * PAGE);
    show("mmap len 0", raw_mmap(0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS));
    show("mmap unaligned fixed", raw_mmap(a + 1, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED));
    show("mmap neither shared nor private", raw_mmap(0, PAGE, PROT_READ, MAP_ANONYMOUS));
    char *uh = (char *)raw_mmap((void *)0x210000123UL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
    printf("unaligned hint rounded down: %d\n", uh == (char *)0x210000000UL);
    syscall(SYS_munmap, uh, PAGE);
    char *f = (char *)raw_mmap(a + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    printf("MAP_FIXED over a page: %d, replaced with zeros: %d, neighbours kept: %d %d\n", f == a + PAGE, f[0] == 0,
           a[0] == 1, a[2 * PAGE] == 1);
    show("MAP_FIXED_NOREPLACE on used", raw_mmap(a, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE));
    show("munmap middle", syscall(SYS_munmap, a + 2 * PAGE, PAGE));
    char *h = (char *)raw_mmap(a + 2 * PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);
    printf("MAP_FIXED_NOREPLACE in the hole: %d zero: %d\n", h == a + 2 * PAGE, h[0] == 0);
    show("munmap unaligned", syscall(SYS_munmap, a + 1, PAGE));
    show("munmap len 0", syscall(SYS_munmap, a, 0));
    show("munmap all", syscall(SYS_munmap, a, 5 * PAGE));
    show("munmap again (nothing there)", syscall(SYS_munmap, a, 5 * PAGE));
    char *hinted = (char *)raw_mmap((void *)0x200000000UL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    printf("hint honoured when free: %d\n", hinted == (char *)0x200000000UL);
    syscall(SYS_munmap, hinted, PAGE);
    char *big = (char *)raw_mmap(0, 64UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    for (size_t i = 0; i < (64UL << 20); i += 1 << 20) big[i] = (char)i;
    printf("64 MiB anon mapping touched: %d\n", big[5 << 20] == 0);
    show("munmap 64 MiB", syscall(SYS_munmap, big, 64UL << 20));
    char *p300 = (char *)raw_mmap(0, 300UL << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    char *g1 = (char *)raw_mmap(0, 1UL << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    printf("300 MiB and 1 GiB mappings: %d %d\n", p300 != MAP_FAILED, g1 != MAP_FAILED);
    if (p300 != MAP_FAILED && g1 != MAP_FAILED) {
        p300[(300UL << 20) - 1] = 3;
        g1[0] = 4;
        g1[(1UL << 30) - 1] = 5;
        printf("their ends are usable: %d\n", p300[(300UL << 20) - 1] + g1[0] + g1[(1UL << 30) - 1] == 12);
        syscall(SYS_munmap, p300, 300UL << 20);
        syscall(SYS_munmap, g1, 1UL << 30);
    }
}

static void reservation_checks(void) {
    /* Go's heap: reserve 64 GiB PROT_NONE at 0xc000000000, then commit pieces with MAP_FIXED */
    char *base = (char *)0xc000000000UL;
    char *r = (char *)raw_mmap(base, 64UL << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    printf("64 GiB PROT_NONE reservation at the hint: %d\n", r == base);
    char *p = (char *)raw_mmap(base, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    memset(p, 7, 4 << 20);
    char *q = (char *)raw_mmap(base + (32UL << 30), 2 << 20, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED);
    q[0] = 9;
    printf("MAP_FIXED pieces usable: %d %d %d\n", p == base && p[(4 << 20) - 1] == 7, q == base + (32UL << 30), q[0] == 9);
    show("mprotect part of reservation RW", syscall(SYS_mprotect, base + (8 << 20), 1 << 20, PROT_READ | PROT_WRITE));
    base[(8 << 20) + 5] = 3;
    printf("mprotect'ed reservation page usable: %d\n", base[(8 << 20) + 5] == 3);
    show("munmap whole reservation", syscall(SYS_munmap, base, 64UL << 30));
}

static void mprotect_madvise_mremap(void) {
    char *a = (char *)raw_mmap(0, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    memset(a, 'x', 4 * PAGE);
    show("mprotect RO", syscall(SYS_mprotect, a, PAGE, PROT_READ));
    printf("read-only page still readable: %d\n", a[10] == 'x');
    show("mprotect unaligned", syscall(SYS_mprotect, a + 1, PAGE, PROT_READ));
    show("mprotect len 0", syscall(SYS_mprotect, a, 0, PROT_READ));
    show("mprotect back RW", syscall(SYS_mprotect, a, PAGE, PROT_READ | PROT_WRITE));
    a[10] = 'y';
    show("mprotect PROT_NONE", syscall(SYS_mprotect, a + PAGE, PAGE, PROT_NONE));
    show("mprotect RW after NONE", syscall(SYS_mprotect, a + PAGE, PAGE, PROT_READ | PROT_WRITE));
    printf("contents kept across PROT_NONE: %d\n", a[PAGE + 1] == 'x');
    syscall(SYS_munmap, a + 3 * PAGE, PAGE);
    show("mprotect over a hole", syscall(SYS_mprotect, a + 2 * PAGE, 2 * PAGE, PROT_READ));
    show("mprotect unmapped", syscall(SYS_mprotect, a + 3 * PAGE, PAGE, PROT_READ));
    show("madvise DONTNEED", syscall(SYS_madvise, a, 2 * PAGE, MADV_DONTNEED));
    printf("DONTNEED zeroed the pages: %d %d\n", a[10] == 0, a[PAGE + 1] == 0);
    show("madvise WILLNEED", syscall(SYS_madvise, a, PAGE, MADV_WILLNEED));
    show("madvise unaligned", syscall(SYS_madvise, a + 1, PAGE, MADV_DONTNEED));
    show("madvise unmapped", syscall(SYS_madvise, a + 3 * PAGE, PAGE, MADV_DONTNEED));
    a[0] = 'm';
    char *m = (char *)syscall(SYS_mremap, a, PAGE, 64 * PAGE, MREMAP_MAYMOVE);
    printf("mremap grow keeps data: %d\n", m != MAP_FAILED && m[0] == 'm');
    m[63 * PAGE] = 1;
    char *s = (char *)syscall(SYS_mremap, m, 64 * PAGE, PAGE, 0);
    printf("mremap shrink in place: %d\n", s == m && s[0] == 'm');
    /* grow where the next pages are taken: the mapping moves with its contents */
    char *blocker = (char *)raw_mmap(s + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);
    memset(s, 'k', PAGE);
    char *moved = (char *)syscall(SYS_mremap, s, PAGE, 16 * PAGE, MREMAP_MAYMOVE);
    printf("mremap moved: %d, contents kept: %d, growth zeroed: %d\n", moved != s && moved != MAP_FAILED,
           moved[0] == 'k' && moved[PAGE - 1] == 'k', moved[PAGE] == 0 && moved[16 * PAGE - 1] == 0);
    *(volatile char *)blocker;
    show("mremap grow in place without MAYMOVE", syscall(SYS_mremap, blocker, PAGE, 2 * PAGE, 0) == (long)blocker ? 0 : -1);
    int p[2];
    pipe(p);
    write(p[1], "0123456789", 10);
    printf("read across the old end and the growth: %ld\n", (long)read(p[0], moved + PAGE - 5, 10));
    printf("bytes landed: %d\n", !memcmp(moved + PAGE - 5, "0123456789", 10));
    close(p[0]);
    close(p[1]);
    char *fixed_to = (char *)0x230000000UL;
    char *f = (char *)syscall(SYS_mremap, moved, 16 * PAGE, 8 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, fixed_to);
    printf("mremap FIXED to an address: %d, contents %d\n", f == fixed_to, f[0] == 'k' && f[PAGE] == '5');
    show("mremap FIXED without MAYMOVE", syscall(SYS_mremap, f, PAGE, PAGE, MREMAP_FIXED, 0x240000000UL));
    show("mremap FIXED overlapping", syscall(SYS_mremap, f, 8 * PAGE, 8 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, f + PAGE));
    show("mremap of unmapped", syscall(SYS_mremap, 0x250000000UL, PAGE, 2 * PAGE, MREMAP_MAYMOVE));
    syscall(SYS_munmap, f, 8 * PAGE);
    syscall(SYS_munmap, blocker, 2 * PAGE);
}

static void split_buffers(void) {
    /* Buffers that span two neighbouring mappings made at different times: in km their backings need not be
     * adjacent on the host, so the monitor must still pass them to read/write/pipes whole. */
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;
    char *a = (char *)raw_mmap((void *)0x300000000UL, 4 * PAGE, PROT_READ | PROT_WRITE, flags);
    char *filler = (char *)raw_mmap((void *)0x340000000UL, 4 * PAGE, PROT_READ | PROT_WRITE, flags);
    filler[0] = 1;
    char *b = (char *)raw_mmap(a + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE, flags);
    printf("neighbour mapping placed: %d\n", b == a + 4 * PAGE);
    for (int i = 0; i < 8 * (int)PAGE; i++) a[i] = (char)(i * 7 + 3);
    int p[2];
    pipe(p);
    long w = syscall(SYS_write, p[1], a + 2 * PAGE, 4 * PAGE);
    char *c = (char *)raw_mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    memset(c, 0, 8 * PAGE);
    long r = syscall(SYS_read, p[0], a + 3 * PAGE + 100, 4 * PAGE);     /* read back over the seam */
    int same = 1;
    for (int i = 0; i < 4 * (int)PAGE; i++) same &= a[3 * PAGE + 100 + i] == (char)((2 * PAGE + i) * 7 + 3);
    printf("write across the seam %ld, read across it %ld, bytes right %d\n", w, r, same);
    printf("bytes before the read kept: %d\n", a[3 * PAGE + 99] == (char)((3 * PAGE + 99) * 7 + 3));
    close(p[0]);
    close(p[1]);
    syscall(SYS_munmap, a, 8 * PAGE);
    syscall(SYS_munmap, filler, 4 * PAGE);
    syscall(SYS_munmap, c, 8 * PAGE);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "segv")) {
        char *a = (char *)raw_mmap(0, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
        a[0] = 1;
        syscall(SYS_mprotect, a, PAGE, PROT_READ);
        printf("writing to a read-only page\n");
        a[1] = 2;               /* @segv */
        printf("write went through: wrong\n");
        return 1;
    }
    brk_checks();
    mmap_checks();
    reservation_checks();
    mprotect_madvise_mremap();
    split_buffers();
    printf("done\n");
    return 0;
}
