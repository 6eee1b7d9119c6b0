/* The stub's stop lane (kdbg/rsp/cstop.py answers g, p, m and repeated queries of a stopped session in C): two
 * stops in stop_here() with a second thread blocked in read(), so that the test can read, write and switch threads
 * between them; a third stop once that thread has ended (one thread: the stub's quick resume); then a SIGUSR1 that
 * gdb's QPassSignals decides about (passed: the handler runs and the exit status shows it; reported: a stop).
 * For the lane's edges (tests/integration/test_rsp_lane_check.py, tests/fuzz/test_rsp_lane_twin.py) memory is laid
 * out so that reads can start, end and cross where the lane's windows do: `region`, three pages of one mapping split
 * into two VMAs by mprotect, a hole after them; its first page is scratch the tests may write. */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

volatile long counter = 0x1111;
unsigned char *region;
volatile int other_ready;
int fds[2];

static void *other(void *arg)
{
    char c;
    (void)arg;
    other_ready = 1;
    read(fds[0], &c, 1);
    return 0;
}

static void on_usr1(int sig)
{
    (void)sig;
    counter += 0x40;
}

__attribute__((noinline)) void stop_here(long i)
{
    counter += i;
}

int main(void)
{
    pthread_t thread;
    pipe(fds);
    signal(SIGUSR1, on_usr1);
    region = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 3 * 4096; i++)
        region[i] = (unsigned char)(i * 7 + 1);
    mprotect(region + 4096, 4096, PROT_READ);
    munmap(region + 2 * 4096, 4096);
    pthread_create(&thread, 0, other, 0);
    while (!other_ready)
        ;
    stop_here(1);
    stop_here(2);
    write(fds[1], "x", 1);
    pthread_join(thread, 0);
    stop_here(3);
    raise(SIGUSR1);
    _exit((int)(counter & 0x7f));
}
