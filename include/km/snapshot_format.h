/* The km notes of a snapshot file, for tools that read one (km itself declares them once in
 * monitor/snapshot/layouts.py, checked against this header by tests/unit/test_snapshot_layouts.py).
 *
 * A snapshot is an x86-64 ELF core file (ET_CORE) as the kernel writes one: NT_PRSTATUS, NT_PRFPREG,
 * NT_X86_XSTATE per thread, NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE, and a PT_LOAD per mapping, so gdb and
 * readelf read it as a core. What a resume needs besides goes into km's own notes, each described below; the
 * owner of each is its name without "NT_" ("KM_THREAD"...), which `readelf -n` shows, and its type a number no
 * reader of cores takes for one of its own (gdb's BFD goes by the type whatever the owner). Variable parts
 * (strings, data) follow the fixed part of a note, in the order given. All little-endian.
 */
#ifndef KM_SNAPSHOT_FORMAT_H
#define KM_SNAPSHOT_FORMAT_H

#include <stdint.h>

#define KM_NOTE_OWNER_PREFIX "KM_"
#define KM_SNAPSHOT_MAGIC "KMSNAP"
#define KM_SNAPSHOT_FORMAT 1

enum km_note_type {
    NT_KM_SNAPSHOT = 0x4b4d0001,     /* struct km_snapshot, then label and description, each NUL-terminated */
    NT_KM_PROCESS = 0x4b4d0002,      /* struct km_process, then argc + envc + 2 NUL-terminated strings: argv, env, exe, cwd */
    NT_KM_THREAD = 0x4b4d0003,       /* struct km_thread, one per thread */
    NT_KM_XSAVE = 0x4b4d0004,        /* struct km_xsave, then the thread's whole KVM XSAVE image (x87, SSE, AVX, AVX-512) */
    NT_KM_SIGACTIONS = 0x4b4d0005,   /* struct km_sigaction[64], signal 1 first */
    NT_KM_SIGPENDING = 0x4b4d0006,   /* struct km_pending[n] */
    NT_KM_VMA = 0x4b4d0007,          /* struct km_vma, then its name and its path, each NUL-terminated; one per VMA */
    NT_KM_FD = 0x4b4d0008,           /* struct km_fd, then path_size + data_size bytes; one per descriptor */
};

enum km_snapshot_flags { KM_SNAPSHOT_LIVE = 1 };

struct km_snapshot {
    char magic[8];              /* KM_SNAPSHOT_MAGIC */
    uint32_t format;            /* KM_SNAPSHOT_FORMAT */
    uint32_t flags;
    char km_version[16];        /* the km that wrote it */
    uint64_t time_ns;           /* CLOCK_REALTIME when taken */
    int32_t pid;                /* the payload's pid; its threads keep their tids */
    int32_t caller_tid;         /* the thread that called km_snapshot_take, 0 when taken from outside */
};

struct km_process {
    uint64_t brk_start, brk;
    uint32_t argc, envc;
    uint32_t umask;
    uint32_t reserved;
};

enum km_thread_flags { KM_THREAD_IN_SYSCALL = 1 };

struct km_thread {
    int32_t tid;
    uint32_t flags;
    uint64_t regs[18];          /* struct kvm_regs order: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags */
    uint64_t fs_base, gs_base;
    uint64_t sigmask;
    uint64_t ss_sp;             /* sigaltstack */
    uint32_t ss_flags, reserved;
    uint64_t ss_size;
    uint64_t clear_child_tid, robust_list;
    char name[16];
};

struct km_xsave {
    int32_t tid;
    uint32_t size;              /* of the image that follows */
};

struct km_sigaction {
    uint64_t handler, flags, restorer, mask;
};

struct km_pending {
    int32_t signo;
    int32_t tid;                /* the thread it was sent to, 0 for the process */
    int32_t chosen_tid;         /* process-directed: the thread woken for it, 0 for none */
    uint32_t reserved;
    uint8_t info[128];          /* siginfo_t */
};

enum km_vma_flags {
    KM_VMA_BACKED = 1,          /* has memory (its contents are the PT_LOADs at its addresses) */
    KM_VMA_FILE = 2,            /* maps `path` from `offset`; without KM_VMA_COPY only pages the payload wrote are PT_LOADs */
    KM_VMA_SHARED = 4,          /* MAP_SHARED: its contents are the file's */
    KM_VMA_HOST = 8,            /* the host's own pages ([vvar]), mapped again from the resuming host */
    KM_VMA_SMALL_PAGES = 16,    /* sparse memory (thread stacks): never backed by huge pages */
    KM_VMA_COPY = 32,           /* KM_VMA_FILE read into memory (a program image): all its pages are PT_LOADs */
};

struct km_vma {
    uint64_t start, end, offset;
    uint32_t prot, flags;
    uint64_t file_size;         /* KM_VMA_FILE: the file as it was, so a changed file is refused at resume */
    int64_t file_mtime_ns;
};

enum km_fd_kind {
    KM_FD_FILE = 1,             /* reopened by path, flags and offset */
    KM_FD_DIRECTORY = 2,
    KM_FD_PIPE = 3,             /* data: the bytes buffered in it (read end only); value: the pipe's inode */
    KM_FD_LISTENER = 4,         /* data: the bound sockaddr; bound again and listening */
    KM_FD_SOCKET = 5,           /* data: the bound sockaddr, path: the peer's; a connected stream comes back reset */
    KM_FD_EVENTFD = 6,          /* value: the counter; type: EFD_SEMAPHORE or 0 */
    KM_FD_EPOLL = 7,            /* data: struct km_epoll_item[] */
    KM_FD_TIMERFD = 8,          /* disarmed; value: the clock */
    KM_FD_GONE = 9,             /* a file that no longer exists: EBADF after resume */
};

struct km_fd {
    int32_t fd;
    uint32_t kind;
    uint32_t flags;             /* F_GETFL */
    uint32_t fd_flags;          /* F_GETFD (FD_CLOEXEC) */
    uint64_t offset;            /* files and directories */
    uint64_t value;             /* eventfd counter, timerfd clock */
    int32_t peer;               /* pipes: the payload's descriptor of the other end, -1 for none */
    int32_t domain, type, protocol;   /* sockets */
    uint32_t connected;         /* sockets: had a peer (comes back reset) */
    uint32_t path_size, data_size;
    uint32_t reserved;
};

struct km_epoll_item {
    int32_t fd;
    uint32_t events;
    uint64_t data;
};

#endif
