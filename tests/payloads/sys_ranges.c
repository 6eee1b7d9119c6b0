/* sys_ranges.c - guest-chosen address ranges given to every memory syscall that turns one into a host range:
 * madvise, mprotect, munmap, mremap, msync, mlock/mlock2/munlock/mlockall, mincore, process_vm_readv/writev, brk
 * and mmap. Overflowing lengths (-1, -4096), ranges that wrap past 2^64, cross TASK_SIZE, reach the kernel half,
 * or cover holes, PROT_NONE and read-only pages. Each call prints its errno (or 0/ok) and then the state of an
 * 8-page arena at a fixed address, page by page ('.' unmapped, 'n' no access, 'r' read-only, 'w' writable,
 * 'z'/'d' for a writable page reading zero or still holding its data), for a differential run against Linux.
 * Calls whose native effect would reach beyond the arena (unmapping the stack...) are not made, nor ranges just
 * below TASK_SIZE (km's stack ends there; a native one ends lower). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#define P 4096L
#define A ((char *)0x100000000000UL)            /* the arena: 16 TiB, far from everything else */
#define TASK_SIZE 0x7ffffffff000UL
#define KERNEL ((char *)0xffff800000000000UL)
#define BEEF ((char *)0xdeadbeef000UL)
#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

static int probe[2], zero;

static const char *err(long r) {
    static char buf[32];
    if (r != -1)
        return r == 0 ? "0" : "ok";
    switch (errno) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ESRCH: return "ESRCH";
    case EAGAIN: return "EAGAIN";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENOSYS: return "ENOSYS";
    }
    snprintf(buf, sizeof buf, "errno %d", errno);
    return buf;
}

/* The arena: w w . n r w w . (page 7's hole continues upward to the next mapping, far away) */
static void arena(void) {
    syscall(SYS_munmap, A, 64 * P);
    syscall(SYS_mmap, A, 7 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    memset(A, 'x', 7 * P);
    syscall(SYS_munmap, A + 2 * P, P);
    syscall(SYS_mprotect, A + 3 * P, P, PROT_NONE);
    syscall(SYS_mprotect, A + 4 * P, P, PROT_READ);
}

static char page_state(char *page) {
    if (syscall(SYS_madvise, page, P, MADV_NORMAL) != 0)
        return '.';
    if (syscall(SYS_write, probe[1], page, 1) != 1)
        return 'n';
    char c;
    read(probe[0], &c, 1);
    if (syscall(SYS_read, zero, page + P - 1, 1) < 0)
        return 'r';
    /* writable: does it still hold the arena's bytes? (read with the probe pipe, not a load that could fault) */
    return c == 'x' ? 'd' : c == 0 ? 'z' : '?';
}

static void state(const char *what, long r) {
    char s[9], e[32];
    snprintf(e, sizeof e, "%s", err(r));          /* before the probes change errno */
    for (int i = 0; i < 8; i++)
        s[i] = page_state(A + i * P);
    s[8] = 0;
    printf("%-44s %-7s %s\n", what, e, s);
}

struct range { const char *name; char *addr; long len; };

/* Ranges given to the calls whose wrong answer would be harmless natively (no unmapping, no zeroing). */
static const struct range all[] = {
    {"mapped 2 pages", A, 2 * P},
    {"unaligned start", A + 1, P},
    {"len 0", A, 0},
    {"len 1", A, 1},
    {"len -1", A, -1},
    {"len -4096", A, -P},
    {"len -8192", A, -2 * P},
    {"len 2^47", A, 1L << 47},
    {"deadbeef len -1", BEEF, -1},
    {"deadbeef 1 page", BEEF, P},
    {"kernel half", KERNEL, P},
    {"kernel half len -1", KERNEL, -1},
    {"at TASK_SIZE", (char *)TASK_SIZE, P},
    {"top page of 2^64", (char *)-P, P},
    {"NULL", 0, P},
    {"hole", A + 2 * P, P},
    {"mapped then hole", A, 3 * P},
    {"hole then mapped", A + 2 * P, 2 * P},
    {"prot_none page", A + 3 * P, P},
    {"read-only page", A + 4 * P, P},
    {"whole arena", A, 8 * P},
    {"tail then hole", A + 5 * P, 3 * P},
};
#define N (sizeof all / sizeof *all)

/* Whether a range may reach a native mapping outside the arena (the stack, the program): skip destructive calls. */
static int escapes(const struct range *r) {
    uintptr_t a = (uintptr_t)r->addr, len = (uintptr_t)r->len;
    return a >= (uintptr_t)A && a < (uintptr_t)A + 64 * P && len > 64 * P && len < (uintptr_t)-64 * P;
}

static void madvise_checks(void) {
    static const struct { const char *name; int advice; } advices[] = {
        {"NORMAL", MADV_NORMAL}, {"WILLNEED", MADV_WILLNEED}, {"DONTNEED", MADV_DONTNEED}, {"FREE", MADV_FREE},
        {"REMOVE", MADV_REMOVE}, {"DONTFORK", MADV_DONTFORK}, {"advice 77", 77}, {"advice -1", -1},
        {"POPULATE_READ", 22}, {"POPULATE_WRITE", 23},
    };
    char what[96];
    for (unsigned a = 0; a < sizeof advices / sizeof *advices; a++)
        for (unsigned i = 0; i < N; i++) {
            int advice = advices[a].advice;
            if (escapes(&all[i]) && (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE))
                continue;
            arena();
            snprintf(what, sizeof what, "madvise %s %s", advices[a].name, all[i].name);
            state(what, syscall(SYS_madvise, all[i].addr, all[i].len, advice));
        }
}

static void mprotect_checks(void) {
    static const struct { const char *name; long prot; } prots[] = {
        {"R", PROT_READ}, {"RW", PROT_READ | PROT_WRITE}, {"NONE", PROT_NONE}, {"SEM", PROT_READ | 8},
        {"prot 0x10", 0x10}, {"GROWSDOWN", PROT_READ | PROT_GROWSDOWN}, {"GROWSUP|DOWN", PROT_GROWSUP | PROT_GROWSDOWN},
    };
    char what[96];
    for (unsigned p = 0; p < sizeof prots / sizeof *prots; p++)
        for (unsigned i = 0; i < N; i++) {
            arena();
            snprintf(what, sizeof what, "mprotect %s %s", prots[p].name, all[i].name);
            state(what, syscall(SYS_mprotect, all[i].addr, all[i].len, prots[p].prot));
        }
}

static void munmap_checks(void) {
    char what[96];
    for (unsigned i = 0; i < N; i++) {
        if (escapes(&all[i]) && all[i].len != 1L << 47)
            continue;
        arena();
        snprintf(what, sizeof what, "munmap %s", all[i].name);
        state(what, syscall(SYS_munmap, all[i].addr, all[i].len));
    }
}

static void msync_checks(void) {
    static const struct { const char *name; int flags; } flags[] = {
        {"0", 0}, {"ASYNC", MS_ASYNC}, {"SYNC", MS_SYNC}, {"INVALIDATE", MS_INVALIDATE},
        {"ASYNC|SYNC", MS_ASYNC | MS_SYNC}, {"flags 8", 8},
    };
    char what[96];
    arena();
    for (unsigned f = 0; f < sizeof flags / sizeof *flags; f++)
        for (unsigned i = 0; i < N; i++) {
            snprintf(what, sizeof what, "msync %s %s", flags[f].name, all[i].name);
            state(what, syscall(SYS_msync, all[i].addr, all[i].len, flags[f].flags));
        }
}

static void mlock_checks(void) {
    char what[96];
    arena();
    for (unsigned i = 0; i < N; i++) {
        if (escapes(&all[i]))
            continue;                           /* locking the whole address space is slow and changes nothing */
        snprintf(what, sizeof what, "mlock %s", all[i].name);
        state(what, syscall(SYS_mlock, all[i].addr, all[i].len));
        snprintf(what, sizeof what, "munlock %s", all[i].name);
        state(what, syscall(SYS_munlock, all[i].addr, all[i].len));
        snprintf(what, sizeof what, "mlock2 ONFAULT %s", all[i].name);
        state(what, syscall(SYS_mlock2, all[i].addr, all[i].len, 1));
        syscall(SYS_munlock, A, 8 * P);
    }
    state("mlock2 flags 2", syscall(SYS_mlock2, A, P, 2));
    state("mlockall 0", syscall(SYS_mlockall, 0));
    state("mlockall ONFAULT alone", syscall(SYS_mlockall, MCL_ONFAULT));
    state("mlockall 8", syscall(SYS_mlockall, 8));
    state("mlockall FUTURE", syscall(SYS_mlockall, MCL_FUTURE));
    state("munlockall", syscall(SYS_munlockall));
}

static void mincore_checks(void) {
    char what[96];
    unsigned char vec[16];
    arena();
    for (unsigned i = 0; i < N; i++) {
        memset(vec, 0xee, sizeof vec);
        snprintf(what, sizeof what, "mincore %s", all[i].name);
        long r = syscall(SYS_mincore, all[i].addr, all[i].len > 8 * P ? 8 * P : all[i].len, vec);
        printf("%-44s %-7s %d\n", what, err(r), r == 0 && all[i].addr == A ? vec[0] & 1 : -1);
        snprintf(what, sizeof what, "mincore %s (huge len)", all[i].name);
        state(what, syscall(SYS_mincore, all[i].addr, all[i].len, vec));
    }
    state("mincore vec NULL", syscall(SYS_mincore, A, P, NULL));
    state("mincore vec read-only", syscall(SYS_mincore, A, P, A + 4 * P));
    state("mincore vec kernel", syscall(SYS_mincore, A, P, KERNEL));
}

static void process_vm_checks(void) {
    char buf[4 * P], what[96];
    pid_t self = getpid();
    arena();
    for (unsigned i = 0; i < N; i++) {
        long len = all[i].len < 0 || all[i].len > (long)sizeof buf ? (long)sizeof buf : all[i].len;
        struct iovec local = {buf, sizeof buf}, remote = {all[i].addr, len};
        snprintf(what, sizeof what, "process_vm_readv %s", all[i].name);
        long r = syscall(SYS_process_vm_readv, self, &local, 1, &remote, 1, 0);
        printf("%-44s %-7s %ld\n", what, err(r), r);
        memset(buf, 'y', sizeof buf);
        snprintf(what, sizeof what, "process_vm_writev %s", all[i].name);
        r = syscall(SYS_process_vm_writev, self, &local, 1, &remote, 1, 0);
        printf("%-44s %-7s %ld\n", what, err(r), r);
        state(what, 0);
        arena();
        remote.iov_len = all[i].len;
        snprintf(what, sizeof what, "process_vm_readv %s (its len)", all[i].name);
        r = syscall(SYS_process_vm_readv, self, &local, 1, &remote, 1, 0);
        printf("%-44s %-7s %ld\n", what, err(r), r);
    }
    struct iovec local = {buf, P}, remote = {A, P}, bad_local = {BEEF, P}, two[2] = {{A + P, P}, {A + 3 * P, P}};
    printf("%-44s %s\n", "process_vm_readv flags 1", err(syscall(SYS_process_vm_readv, self, &local, 1, &remote, 1, 1)));
    printf("%-44s %s\n", "process_vm_readv pid 0", err(syscall(SYS_process_vm_readv, 0, &local, 1, &remote, 1, 0)));
    printf("%-44s %s\n", "process_vm_readv pid -1", err(syscall(SYS_process_vm_readv, -1, &local, 1, &remote, 1, 0)));
    printf("%-44s %s\n", "process_vm_readv local unmapped",
           err(syscall(SYS_process_vm_readv, self, &bad_local, 1, &remote, 1, 0)));
    printf("%-44s %s\n", "process_vm_readv local iovec unmapped",
           err(syscall(SYS_process_vm_readv, self, BEEF, 1, &remote, 1, 0)));
    printf("%-44s %s\n", "process_vm_readv remote iovec unmapped",
           err(syscall(SYS_process_vm_readv, self, &local, 1, BEEF, 1, 0)));
    printf("%-44s %s\n", "process_vm_readv riovcnt 1025",
           err(syscall(SYS_process_vm_readv, self, &local, 1, &remote, 1025, 0)));
    printf("%-44s %s\n", "process_vm_readv liovcnt 0", err(syscall(SYS_process_vm_readv, self, &local, 0, &remote, 1, 0)));
    long r = syscall(SYS_process_vm_readv, self, &local, 1, two, 2, 0);
    printf("%-44s %s %ld\n", "process_vm_readv then PROT_NONE", err(r), r);
    struct iovec ro = {A + 4 * P, P};
    r = syscall(SYS_process_vm_readv, self, &ro, 1, &remote, 1, 0);
    printf("%-44s %s %ld\n", "process_vm_readv into read-only", err(r), r);
    r = syscall(SYS_process_vm_writev, self, &local, 1, &ro, 1, 0);
    printf("%-44s %s %ld\n", "process_vm_writev to read-only", err(r), r);
}

static void mremap_checks(void) {
    static const struct { const char *name; char *old; long old_len, new_len; int flags; char *new_addr; } cases[] = {
        {"shrink", A, 2 * P, P, 0, 0},
        {"same size", A, 2 * P, 2 * P, 0, 0},
        {"grow into hole", A + 5 * P, 2 * P, 4 * P, 0, 0},
        {"grow blocked", A + 4 * P, P, 2 * P, 0, 0},
        {"grow blocked MAYMOVE", A + 4 * P, P, 2 * P, MREMAP_MAYMOVE, 0},
        {"old spans hole", A, 3 * P, 4 * P, MREMAP_MAYMOVE, 0},
        {"old spans two vmas", A + 3 * P, 2 * P, 3 * P, MREMAP_MAYMOVE, 0},
        {"shrink spanning hole", A, 4 * P, P, 0, 0},
        {"old len 0 private", A, 0, P, MREMAP_MAYMOVE, 0},
        {"new len 0", A, P, 0, 0, 0},
        {"new len -1", A, P, -1, MREMAP_MAYMOVE, 0},
        {"old len -1", A, -1, P, MREMAP_MAYMOVE, 0},
        {"old len 2^47", A, 1L << 47, P, 0, 0},
        {"grow 2^47", A + 5 * P, 2 * P, 1L << 47, MREMAP_MAYMOVE, 0},
        {"grow 1 TiB", A + 5 * P, 2 * P, 1L << 40, MREMAP_MAYMOVE, 0},
        {"unaligned old", A + 1, P, P, 0, 0},
        {"unmapped old", BEEF, P, 2 * P, MREMAP_MAYMOVE, 0},
        {"kernel old", KERNEL, P, 2 * P, MREMAP_MAYMOVE, 0},
        {"bad flags", A, P, P, 8, 0},
        {"FIXED without MAYMOVE", A, P, P, MREMAP_FIXED, A + 16 * P},
        {"FIXED", A, P, P, MREMAP_FIXED | MREMAP_MAYMOVE, A + 16 * P},
        {"FIXED onto itself", A, 2 * P, 2 * P, MREMAP_FIXED | MREMAP_MAYMOVE, A + P},
        {"FIXED unaligned", A, P, P, MREMAP_FIXED | MREMAP_MAYMOVE, A + 16 * P + 1},
        {"FIXED at TASK_SIZE", A, P, P, MREMAP_FIXED | MREMAP_MAYMOVE, (char *)TASK_SIZE},
        {"FIXED across TASK_SIZE", A, 2 * P, 2 * P, MREMAP_FIXED | MREMAP_MAYMOVE, (char *)TASK_SIZE - P},
        {"FIXED kernel", A, P, P, MREMAP_FIXED | MREMAP_MAYMOVE, KERNEL},
        {"FIXED shrink", A, 2 * P, P, MREMAP_FIXED | MREMAP_MAYMOVE, A + 6 * P},
        {"FIXED grow", A, 2 * P, 3 * P, MREMAP_FIXED | MREMAP_MAYMOVE, A + 5 * P},
        {"DONTUNMAP", A, 2 * P, 2 * P, MREMAP_DONTUNMAP | MREMAP_MAYMOVE, 0},
        {"DONTUNMAP FIXED", A, 2 * P, 2 * P, MREMAP_DONTUNMAP | MREMAP_MAYMOVE | MREMAP_FIXED, A + 5 * P},
        {"DONTUNMAP resize", A, 2 * P, 3 * P, MREMAP_DONTUNMAP | MREMAP_MAYMOVE, 0},
        {"DONTUNMAP without MAYMOVE", A, 2 * P, 2 * P, MREMAP_DONTUNMAP, 0},
    };
    char what[96];
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        arena();
        long r = syscall(SYS_mremap, cases[i].old, cases[i].old_len, cases[i].new_len, cases[i].flags,
                         cases[i].new_addr);
        snprintf(what, sizeof what, "mremap %s", cases[i].name);
        if (r != -1 && (r < (long)A || r >= (long)(A + 64 * P)))
            r = 1;                               /* moved elsewhere: the address itself differs between runs */
        else if (r != -1)
            r = r == (long)A ? 0 : (r - (long)A) / P + 1000;
        printf("%-44s %s %ld\n", what, err(r == 1 || r >= 1000 ? 2 : r), r);
        state(what, 0);
    }
}

static void brk_checks(void) {
    uintptr_t b0 = syscall(SYS_brk, 0);
    char *fence = (char *)((b0 + 0xfff) & ~0xfffUL) + 16 * P;
    printf("%-44s %d\n", "brk(-1) unchanged", (uintptr_t)syscall(SYS_brk, -1L) == b0);
    printf("%-44s %d\n", "brk(deadbeef000) unchanged", (uintptr_t)syscall(SYS_brk, BEEF) == b0);
    printf("%-44s %d\n", "brk(kernel half) unchanged", (uintptr_t)syscall(SYS_brk, KERNEL) == b0);
    printf("%-44s %d\n", "brk(TASK_SIZE) unchanged", (uintptr_t)syscall(SYS_brk, TASK_SIZE) == b0);
    printf("%-44s %d\n", "brk(+1 TiB) unchanged", (uintptr_t)syscall(SYS_brk, b0 + (1L << 40)) == b0);
    printf("%-44s %d\n", "brk(1) unchanged", (uintptr_t)syscall(SYS_brk, 1) == b0);
    long f = syscall(SYS_mmap, fence, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("%-44s %s\n", "a page 16 pages above brk", err(f));
    printf("%-44s %d\n", "brk into it unchanged", (uintptr_t)syscall(SYS_brk, fence + 1) == b0);
    printf("%-44s %d\n", "brk up to its guard page unchanged", (uintptr_t)syscall(SYS_brk, fence - P + 1) == b0);
    printf("%-44s %d\n", "brk leaving one page grows", (uintptr_t)syscall(SYS_brk, fence - P) == (uintptr_t)fence - P);
    printf("%-44s %d\n", "brk back to its start shrinks", (uintptr_t)syscall(SYS_brk, b0) == b0);
    printf("%-44s %d\n", "brk(0) after", (uintptr_t)syscall(SYS_brk, 0) == b0);
    syscall(SYS_munmap, fence, P);
}

static void mmap_checks(void) {
    static const struct { const char *name; char *addr; long len; int prot, flags; } cases[] = {
        {"len -1", 0, -1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS},
        {"len -4096", 0, -P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS},
        {"len 2^47", 0, 1L << 47, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS},
        {"len 2^63", 0, 1L << 62 << 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS},
        {"RW 1 TiB (over commit)", 0, 1L << 40, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS},
        {"NONE 1 TiB", 0, 1L << 40, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS},
        {"FIXED at TASK_SIZE", (char *)TASK_SIZE, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED},
        {"FIXED across TASK_SIZE", (char *)TASK_SIZE - P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED},
        {"FIXED kernel", KERNEL, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED},
        {"FIXED top of 2^64", (char *)-P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED},
        {"FIXED_NOREPLACE over arena", A, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE},
        {"hint in the kernel half", KERNEL, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS},
        {"hint -4096", (char *)-P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS},
        {"hint across TASK_SIZE", (char *)TASK_SIZE - P, 2 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS},
    };
    char what[96];
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        arena();
        long r = syscall(SYS_mmap, cases[i].addr, cases[i].len, cases[i].prot, cases[i].flags, -1, 0);
        snprintf(what, sizeof what, "mmap %s", cases[i].name);
        state(what, r == -1 ? r : 1);
        if (r != -1)
            syscall(SYS_munmap, r, cases[i].len);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pipe(probe);
    zero = open("/dev/zero", O_RDONLY);
    const char *only = argc > 1 ? argv[1] : "";
    if (!*only || !strcmp(only, "madvise")) madvise_checks();
    if (!*only || !strcmp(only, "mprotect")) mprotect_checks();
    if (!*only || !strcmp(only, "munmap")) munmap_checks();
    if (!*only || !strcmp(only, "mremap")) mremap_checks();
    if (!*only || !strcmp(only, "msync")) msync_checks();
    if (!*only || !strcmp(only, "mlock")) mlock_checks();
    if (!*only || !strcmp(only, "mincore")) mincore_checks();
    if (!*only || !strcmp(only, "process_vm")) process_vm_checks();
    if (!*only || !strcmp(only, "brk")) brk_checks();
    if (!*only || !strcmp(only, "mmap")) mmap_checks();
    printf("done\n");
    return 0;
}
