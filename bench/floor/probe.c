/* probe.c - the platform floor of one exec-loop iteration under a monitor of km's design (issue 10), with no km
 * and no Python: per iteration the parent forks; the child builds a fresh VM over the inherited (copy-on-write)
 * guest memory, registers the memslots km's forked child registers, runs a CPL3 guest that makes the exits, the
 * cpuid instructions and the first touches of pages that km's real iteration makes, and exits; the parent waits,
 * then runs its own guest for the shell's side of the iteration (clone/wait4/sigreturn exits, re-touching its
 * pages after the fork write-protected them). Each part can be switched off (argument key=value, below).
 *
 * Written by hand for bench/floor/floor.py, which compiles it with gcc at run time. Output: one JSON line.
 * Arguments (key=value; defaults in brackets, the dynamic /bin/true iteration's counts):
 *   iterations=N [30]   vm=0|1 [1]: the child builds a VM and vCPU   slots=0|1 [1]: it registers km's 3 memslots
 *   exits=E [32]: the child guest's exits, its 3 phase marks included (3 at least when the guest runs at all)
 *   cpuid=C [43]   anon=P [93]: fresh anonymous pages the child's guest writes   image=I [0]: pages of the
 *   inherited image it reads   file=F [46]: pages of a file (libc) it reads through a file window
 *   stride=B [32768]: distance between touched pages (one per kvm-pvm prefetch group of 8 PTEs, so that each
 *   touch is one shadow fault)   parent_exits=K [5]: exits of the parent's guest after the wait (0: the parent
 *   has no VM)   parent_pages=W [8]: pages it writes again   libc=PATH [/lib/x86_64-linux-gnu/libc.so.6]
 *   cow=N [0]: NOT part of the floor: host pages of the monitor's own heap (not guest memory) the child writes
 *   after making its VM, each a copy-on-write fault and a KVM MMU-notifier call, as CPython's reference counts
 *   cause in km's forked child (the "cow" part)
 * Guest layout (one 16 MiB chunk at GPA 0; km's first chunk was 12 MiB in the traced run): GDT 0x1000, IDT 0x2000, exception stubs 0x3000
 * (vector v: [push $0]; out %al,$v; add $8,%rsp; iretq), TSS with an I/O bitmap 0x4000, ring-0 stack 0x8000,
 * page tables 0x100000, guest code 0x200000, the shell's image 0x400000 (8 MiB, written by the parent before
 * the first fork; the parent's own re-written pages in its second half), fresh memory 0xc00000-0x1000000. File
 * window: GPA 0x200000000000, 18 MiB reserved PROT_NONE, the file mapped at its start in the child. A 24 KiB
 * read-only slot at GPA 0x10000000 stands for km's [vvar].
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KBASE 0xffffffff80000000ULL
#define CHUNK (16ULL << 20)
#define GDT_GPA 0x1000ULL
#define IDT_GPA 0x2000ULL
#define STUB_GPA 0x3000ULL
#define TSS_GPA 0x4000ULL
#define TSS_LIMIT (0x68 + 8192)
#define RSP0_GPA 0x8000ULL
#define PT_GPA 0x100000ULL
#define CODE_GPA 0x200000ULL
#define IMAGE_GPA 0x400000ULL
#define IMAGE_SIZE (8ULL << 20)
#define ANON_GPA 0xc00000ULL
#define ANON_SIZE (4ULL << 20)
#define WINDOW_GPA 0x200000000000ULL
#define WINDOW_SIZE (18ULL << 20)
#define VVAR_GPA 0x10000000ULL
#define VVAR_SIZE (24ULL << 10)
#define CODE_VA 0x400000ULL
#define IMAGE_VA 0x10000000ULL
#define ANON_VA 0x20000000ULL
#define PARENT_VA (IMAGE_VA + IMAGE_SIZE / 2)   /* the pages the shell writes again after each fork */
#define FILE_VA 0x7f0000000000ULL
#define P 1ULL
#define W 2ULL
#define U 4ULL
#define A 0x20ULL
#define D 0x40ULL
#define NX (1ULL << 63)
#define PORT_EXIT 0x80      /* a syscall km serves: its stub's exit */
#define PORT_MARK 0x81      /* 0x81, 0x82, 0x83: the ends of the exit, cpuid and page phases */

#define die(...) do { fprintf(stderr, "probe: " __VA_ARGS__); fprintf(stderr, " (%s)\n", strerror(errno)); \
                      _exit(2); } while (0)
#define CHK(x) do { if ((long)(x) < 0) die("%s", #x); } while (0)

/* The guest, CPL3, position independent: r8 syscalls, then mark; r9 cpuid, then mark; r10 writes from rdi, r15
 * reads from rbp (the inherited image) and r12 reads from r13, r14 apart, then the last mark. A syscall takes km's
 * path: kvm-pvm enters LSTAR at CPL3 (docs/KVM.md 2.1), a user stub there exits with `out`, the monitor answers
 * rax and returns to rcx with rflags = r11 through sync regs. (Hardware KVM enters LSTAR at CPL0: the stub's `out`
 * works there too, and the loop then goes on at CPL0, which changes no exit count.) */
extern const uint8_t guest_start[], guest_end[], sysstub[];
__asm__(".pushsection .rodata\n.globl guest_start\nguest_start:\n"
        "1: test %r8,%r8; jz 2f; syscall; dec %r8; jmp 1b\n"
        "2: out %al,$0x81\n"
        "   xor %esi,%esi\n"
        "3: test %r9,%r9; jz 4f\n"
        "   lea leaves(%rip),%rdx; mov %esi,%eax; and $7,%eax; mov (%rdx,%rax,4),%eax; xor %ecx,%ecx; cpuid\n"
        "   inc %esi; dec %r9; jmp 3b\n"
        "4: out %al,$0x82\n"
        "5: test %r10,%r10; jz 55f; movb $1,(%rdi); add %r14,%rdi; dec %r10; jmp 5b\n"
        "55: test %r15,%r15; jz 6f; movb (%rbp),%al; add %r14,%rbp; dec %r15; jmp 55b\n"
        "6: test %r12,%r12; jz 7f; movb (%r13),%al; add %r14,%r13; dec %r12; jmp 6b\n"
        "7: out %al,$0x83; jmp 7b\n"
        "sysstub: out %al,$0x80; ud2\n"
        ".balign 4\nleaves: .long 0, 1, 7, 0xd, 0x80000000, 0x80000001, 0x80000008, 4\n"
        ".globl guest_end\nguest_end:\n.popsection\n");

struct opts { long iterations, vm, slots, exits, cpuid, anon, image, file, stride, parent_exits, parent_pages, cow; const char *libc; };
static struct opts o = {30, 1, 1, 32, 43, 93, 0, 46, 32768, 5, 8, 0, "/lib/x86_64-linux-gnu/libc.so.6"};

enum { T_FORK, T_CHILD, T_VM, T_COW, T_SLOTS, T_EXITS, T_CPUID, T_PAGES, T_EXIT, T_WAITED, NT };   /* NT..NT+2: the parent's marks */
#define NPARTS 9
static const char *part_names[NPARTS] = {"fork", "vm", "cow", "memslots", "exits", "cpuid", "pages", "teardown", "parent"};
static volatile double *stamps;        /* shared with the child: NT timestamps of the current iteration */

static uint8_t *chunk, *vvar, *host_heap;
#define HOST_HEAP (16ULL << 20)
static int kvm_fd, run_size;
static struct kvm_cpuid2 *cpuid_table;
static uint64_t pt_next = PT_GPA, xcr0;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
static double median(double *v, long n) { qsort(v, n, sizeof *v, cmpd); return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2; }
static uint64_t *at(uint64_t gpa) { return (uint64_t *)(chunk + gpa); }

static void pt_map(uint64_t va, uint64_t pa, uint64_t len, uint64_t flags) {
    for (uint64_t off = 0; off < len; off += 0x1000) {
        uint64_t v = va + off, t = PT_GPA;
        for (int lvl = 3; lvl > 0; lvl--) {
            uint64_t *e = at(t + 8 * ((v >> (12 + 9 * lvl)) & 511));
            if (!(*e & P)) {
                pt_next += 0x1000;
                if (pt_next >= CODE_GPA) die("page-table pool full");
                *e = pt_next | P | W | U | A;
            }
            t = *e & 0x000ffffffffff000ULL;
        }
        *at(t + 8 * ((v >> 12) & 511)) = (pa + off) | P | A | D | flags;   /* A/D set, as km writes them */
    }
}

/* The guest's memory and page tables, built once in the parent: the children inherit them copy-on-write. */
static void build_guest(void) {
    chunk = mmap(0, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    vvar = mmap(0, VVAR_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED || vvar == MAP_FAILED) die("mmap");
    madvise(chunk, CHUNK, MADV_NOHUGEPAGE);        /* 4K host pages: the cheapest first touch of a fresh page */
    memset(vvar, 0, VVAR_SIZE);
    pt_map(KBASE, 0, 0x200000, W);                              /* GDT, IDT, stubs, TSS, ring-0 stack: supervisor */
    pt_map(CODE_VA, CODE_GPA, 0x1000, U);
    pt_map(IMAGE_VA, IMAGE_GPA, IMAGE_SIZE, U | W | NX);
    for (uint64_t off = 0; off < ANON_SIZE; off += o.stride) pt_map(ANON_VA + off, ANON_GPA + off, 0x1000, U | W | NX);
    for (uint64_t off = 0; off < WINDOW_SIZE; off += o.stride) pt_map(FILE_VA + off, WINDOW_GPA + off, 0x1000, U | NX);
    memcpy(chunk + CODE_GPA, guest_start, guest_end - guest_start);
    uint64_t *gdt = at(GDT_GPA);
    gdt[2] = 0x00AF9B000000FFFFULL; gdt[3] = 0x00CF93000000FFFFULL; gdt[4] = 0x00CFFB000000FFFFULL;
    gdt[5] = 0x00CFF3000000FFFFULL; gdt[6] = 0x00AFFB000000FFFFULL;
    uint64_t tb = KBASE + TSS_GPA, tl = TSS_LIMIT;
    gdt[8] = (tl & 0xffff) | ((tb & 0xffffff) << 16) | (0x89ULL << 40) | (((tl >> 16) & 0xf) << 48) | (((tb >> 24) & 0xff) << 56);
    gdt[9] = tb >> 32;
    uint8_t *tss = chunk + TSS_GPA;
    uint64_t rsp0 = KBASE + RSP0_GPA + 0x1000;
    memcpy(tss + 4, &rsp0, 8);
    *(uint16_t *)(tss + 102) = 0x68;
    memset(tss + 0x68, 0xff, 8192 + 1);
    tss[0x68 + PORT_EXIT / 8] = 0xf0;               /* ports 0x80-0x83 allowed at CPL3 */
    for (int v = 0; v < 256; v++) {
        uint8_t *s = chunk + STUB_GPA + 16 * v; int n = 0;
        int err = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
        if (!err) { s[n++] = 0x6a; s[n++] = 0; }
        s[n++] = 0xe6; s[n++] = v; s[n++] = 0x48; s[n++] = 0x83; s[n++] = 0xc4; s[n++] = 8; s[n++] = 0x48; s[n++] = 0xcf;
        uint64_t h = KBASE + STUB_GPA + 16 * v, *g = at(IDT_GPA + 16 * v);
        g[0] = (h & 0xffff) | (0x10ULL << 16) | ((0x8EULL | ((v == 3) ? 0x60 : 0)) << 40) | (((h >> 16) & 0xffff) << 48);
        g[1] = h >> 32;
    }
    for (uint64_t off = 0; off < IMAGE_SIZE; off += 0x1000) chunk[IMAGE_GPA + off] = 1;   /* the shell's pages */
}

static void add_slot(int vm, int slot, uint64_t gpa, uint64_t size, void *host, int readonly) {
    struct kvm_userspace_memory_region r = {.slot = slot, .flags = readonly ? KVM_MEM_READONLY : 0,
        .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uint64_t)host};
    CHK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r));
}

/* A vCPU as km's forked child makes one: the same ioctls in the same order (strace of km's child). */
static int make_vcpu(int vm, struct kvm_run **run) {
    int fd = ioctl(vm, KVM_CREATE_VCPU, 0); CHK(fd);
    *run = mmap(0, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (*run == MAP_FAILED) die("mmap kvm_run");
    struct kvm_sregs s;
    CHK(ioctl(fd, KVM_GET_SREGS, &s));
    CHK(ioctl(fd, KVM_SET_CPUID2, cpuid_table));
    struct kvm_segment cs = {.limit = 0xffffffff, .selector = 0x33, .type = 11, .present = 1, .dpl = 3, .s = 1, .l = 1, .g = 1};
    struct kvm_segment ds = {.limit = 0xffffffff, .selector = 0x2b, .type = 3, .present = 1, .dpl = 3, .db = 1, .s = 1, .g = 1};
    s.cs = cs; s.ds = s.es = s.fs = s.gs = s.ss = ds;
    s.tr = (struct kvm_segment){.base = KBASE + TSS_GPA, .limit = TSS_LIMIT, .selector = 0x40, .type = 11, .present = 1};
    s.ldt = (struct kvm_segment){.unusable = 1};
    s.gdt.base = KBASE + GDT_GPA; s.gdt.limit = 0x4f;
    s.idt.base = KBASE + IDT_GPA; s.idt.limit = 256 * 16 - 1;
    s.cr0 = 0x80010033; s.cr3 = PT_GPA; s.cr4 = 0x620; s.efer = 0xd01;
    CHK(ioctl(fd, KVM_SET_SREGS, &s));
    struct kvm_xcrs x = {.nr_xcrs = 1, .xcrs = {{.xcr = 0, .value = xcr0}}};
    ioctl(fd, KVM_SET_XCRS, &x);                  /* as km; refused by some KVMs, which changes nothing here */
    struct { struct kvm_msrs h; struct kvm_msr_entry e[4]; } m = {{.nmsrs = 4}, {
        {.index = 0xC0000081, .data = (0x23ULL << 48) | (0x10ULL << 32)}, {.index = 0xC0000082, .data = CODE_VA + (sysstub - guest_start)},
        {.index = 0xC0000084, .data = 0x47700}, {.index = 0xC0000102, .data = 0}}};
    if (ioctl(fd, KVM_SET_MSRS, &m) != 4) die("KVM_SET_MSRS");
    CHK(ioctl(fd, KVM_GET_SREGS, &s));            /* km's child then sets the forking thread's FS/GS bases */
    CHK(ioctl(fd, KVM_SET_SREGS, &s));
    struct kvm_xsave xs; memset(&xs, 0, sizeof xs);
    xs.region[0] = 0x37f; xs.region[6] = 0x1f80;  /* FCW, MXCSR: the forking thread's FPU state */
    CHK(ioctl(fd, KVM_SET_XSAVE, &xs));
    (*run)->kvm_valid_regs = KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS;
    return fd;
}

/* Run the guest from its start: `plain` exits, then the phases; stamps[first..first+2] at the three marks. */
static long run_guest(int fd, struct kvm_run *run, long plain, long ncpuid, long anon, uint64_t anon_va, long image,
                      long file, int first) {
    struct kvm_regs *r = &run->s.regs.regs;
    memset(r, 0, sizeof *r);
    r->rip = CODE_VA; r->rflags = 2; r->rsp = IMAGE_VA + IMAGE_SIZE - 8;
    r->r8 = plain; r->r9 = ncpuid; r->r10 = anon; r->rdi = anon_va; r->r12 = file; r->r13 = FILE_VA; r->r14 = o.stride;
    r->r15 = image; r->rbp = IMAGE_VA;
    run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
    long exits = 0;
    for (;;) {
        if (ioctl(fd, KVM_RUN, 0) < 0) { if (errno == EINTR) continue; die("KVM_RUN"); }
        exits++;
        if (run->exit_reason != KVM_EXIT_IO || run->io.port < PORT_EXIT || run->io.port > PORT_MARK + 2) {
            uint64_t *frame = at(RSP0_GPA + 0x1000 - 48);     /* err, rip, cs, rflags, rsp, ss of an exception */
            fprintf(stderr, "probe: unexpected exit %u port %#x rip %#llx (exception frame: error %#lx rip %#lx cs %#lx, "
                    "cr2 %#llx)\n", run->exit_reason, run->exit_reason == KVM_EXIT_IO ? run->io.port : 0,
                    run->s.regs.regs.rip, frame[0], frame[1], frame[2], run->s.regs.sregs.cr2);
            _exit(3);
        }
        if (run->io.port == PORT_EXIT) {          /* a syscall's answer goes back through sync regs, as km's */
            struct kvm_regs *g = &run->s.regs.regs;
            g->rax = 0; g->rip = g->rcx; g->rflags = g->r11;
            run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
            continue;
        }
        stamps[first + run->io.port - PORT_MARK] = now();
        if (run->io.port == PORT_MARK + 2) return exits;
    }
}

static void child(void) {
    stamps[T_CHILD] = now();
    if (o.vm) {
        int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0); CHK(vm);
        struct kvm_run *run;
        int fd = make_vcpu(vm, &run);
        stamps[T_VM] = now();
        for (long i = 0; i < o.cow; i++) host_heap[i * 4096] = 2;   /* not the design's: km's own heap */
        stamps[T_COW] = now();
        if (o.slots) {
            add_slot(vm, 0, 0, CHUNK, chunk, 0);
            uint8_t *window = mmap(0, WINDOW_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (window == MAP_FAILED) die("mmap window");
            add_slot(vm, 1, WINDOW_GPA, WINDOW_SIZE, window, 0);
            add_slot(vm, 2, VVAR_GPA, VVAR_SIZE, vvar, 1);
            if (o.file) {                         /* the exec maps libc into the window */
                int lib = open(o.libc, O_RDONLY | O_CLOEXEC); CHK(lib);
                struct stat st; CHK(fstat(lib, &st));
                if ((uint64_t)o.file * o.stride > (uint64_t)st.st_size) { errno = EINVAL; die("file=%ld: %s is too small", o.file, o.libc); }
                if (mmap(window, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, lib, 0) == MAP_FAILED) die("mmap libc");
                close(lib);
            }
        }
        stamps[T_SLOTS] = now();
        if (o.slots && (o.exits || o.cpuid || o.anon || o.image || o.file))
            run_guest(fd, run, o.exits > 3 ? o.exits - 3 : 0, o.cpuid, o.anon, ANON_VA, o.image, o.file, T_EXITS);
    }
    stamps[T_EXIT] = now();
    _exit(0);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) { fprintf(stderr, "probe: %s: expected key=value\n", argv[i]); return 2; }
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        long *slot = !strcmp(k, "iterations") ? &o.iterations : !strcmp(k, "vm") ? &o.vm : !strcmp(k, "slots") ? &o.slots
            : !strcmp(k, "exits") ? &o.exits : !strcmp(k, "cpuid") ? &o.cpuid : !strcmp(k, "anon") ? &o.anon
            : !strcmp(k, "image") ? &o.image : !strcmp(k, "file") ? &o.file : !strcmp(k, "stride") ? &o.stride : !strcmp(k, "parent_exits") ? &o.parent_exits
            : !strcmp(k, "parent_pages") ? &o.parent_pages : !strcmp(k, "cow") ? &o.cow : NULL;
        if (!strcmp(k, "libc")) { o.libc = v; continue; }
        if (!slot) { fprintf(stderr, "probe: %s: unknown argument\n", k); return 2; }
        *slot = strtol(v, NULL, 0);
    }
    if (o.iterations < 1 || o.stride < 4096 || o.stride % 4096 || (uint64_t)o.anon * o.stride > ANON_SIZE
        || (uint64_t)o.file * o.stride > WINDOW_SIZE || (uint64_t)o.image * o.stride > IMAGE_SIZE / 2 || (uint64_t)o.parent_pages * o.stride > IMAGE_SIZE / 2 || o.cow < 0 || (uint64_t)o.cow * 4096 > HOST_HEAP) {
        fprintf(stderr, "probe: arguments out of range (stride a multiple of 4096; anon*stride <= 4 MiB; image*stride, parent_pages*stride <= 4 MiB)\n");
        return 2;
    }
    stamps = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHK(kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC));
    CHK(run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0));
    cpuid_table = calloc(1, sizeof *cpuid_table + 256 * sizeof(struct kvm_cpuid_entry2));
    cpuid_table->nent = 256;
    CHK(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid_table));
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = ((uint64_t)hi << 32 | lo) & 7;
    build_guest();
    if (o.cow) {                                 /* only then: a bigger process forks and ends slower */
        host_heap = mmap(0, o.cow * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (host_heap == MAP_FAILED) die("mmap heap");
        madvise(host_heap, o.cow * 4096, MADV_NOHUGEPAGE);
        for (long i = 0; i < o.cow; i++) host_heap[i * 4096] = 1;
    }
    int pvm = -1, pfd = -1; struct kvm_run *prun = NULL;
    if (o.parent_exits) {                        /* the shell's own VM, its image's translations in place */
        CHK(pvm = ioctl(kvm_fd, KVM_CREATE_VM, 0));
        pfd = make_vcpu(pvm, &prun);
        add_slot(pvm, 0, 0, CHUNK, chunk, 0);
        run_guest(pfd, prun, 0, 0, o.parent_pages, PARENT_VA, 0, 0, NT);
    }
    double *parts[NPARTS], *total = calloc(o.iterations, sizeof(double));
    for (int p = 0; p < NPARTS; p++) parts[p] = calloc(o.iterations, sizeof(double));
    struct rusage r0, r1, c0, c1;
    getrusage(RUSAGE_SELF, &r0); getrusage(RUSAGE_CHILDREN, &c0);
    double start = now();
    for (long it = 0; it < o.iterations; it++) {
        for (int t = 0; t < NT; t++) stamps[t] = 0;
        stamps[T_FORK] = now();
        pid_t pid = fork(); CHK(pid);
        if (pid == 0) child();
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "probe: child failed (status %#x)\n", status); return 1;
        }
        stamps[T_WAITED] = now();
        double end = stamps[T_WAITED];
        if (o.parent_exits) {                    /* clone, wait4, sigreturn, wait4: 3 of them are the marks */
            run_guest(pfd, prun, o.parent_exits > 3 ? o.parent_exits - 3 : 0, 0, o.parent_pages, PARENT_VA, 0, 0, NT);
            end = now();
        }
        volatile double *s = stamps;
        double vm_end = o.vm ? s[T_VM] : s[T_CHILD], cow_end = o.vm ? s[T_COW] : vm_end, slots_end = o.vm ? s[T_SLOTS] : cow_end;
        double e = s[T_EXITS] ? s[T_EXITS] : slots_end, c = s[T_CPUID] ? s[T_CPUID] : e, pg = s[T_PAGES] ? s[T_PAGES] : c;
        double v[NPARTS] = {s[T_CHILD] - s[T_FORK], vm_end - s[T_CHILD], cow_end - vm_end, slots_end - cow_end, e - slots_end, c - e, pg - c,
                       s[T_WAITED] - pg, end - s[T_WAITED]};
        for (int p = 0; p < NPARTS; p++) parts[p][it] = v[p] * 1e3;
        total[it] = (end - s[T_FORK]) * 1e3;
    }
    double elapsed = now() - start;
    getrusage(RUSAGE_SELF, &r1); getrusage(RUSAGE_CHILDREN, &c1);
#define SEC(t) ((t).tv_sec + (t).tv_usec * 1e-6)
    double cpu = SEC(r1.ru_utime) + SEC(r1.ru_stime) - SEC(r0.ru_utime) - SEC(r0.ru_stime)
               + SEC(c1.ru_utime) + SEC(c1.ru_stime) - SEC(c0.ru_utime) - SEC(c0.ru_stime);
    printf("{\"iterations\": %ld, \"wall_ms\": %.4f, \"median_ms\": %.4f, \"cpu_ms\": %.4f, \"parts_ms\": {",
           o.iterations, elapsed * 1e3 / o.iterations, median(total, o.iterations), cpu * 1e3 / o.iterations);
    for (int p = 0; p < NPARTS; p++) printf("%s\"%s\": %.4f", p ? ", " : "", part_names[p], median(parts[p], o.iterations));
    printf("}, \"counts\": {\"exits\": %ld, \"cpuid\": %ld, \"anon\": %ld, \"image\": %ld, \"file\": %ld, \"parent_exits\": %ld, "
           "\"parent_pages\": %ld}}\n", o.vm && o.slots && (o.exits || o.cpuid || o.anon || o.image || o.file) ? (o.exits > 3 ? o.exits : 3) : 0,
           o.vm && o.slots ? o.cpuid : 0, o.vm && o.slots ? o.anon : 0, o.vm && o.slots ? o.image : 0, o.vm && o.slots ? o.file : 0,
           o.parent_exits ? (o.parent_exits > 3 ? o.parent_exits : 3) : 0, o.parent_pages);
    return 0;
}
