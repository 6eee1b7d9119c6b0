/* The stop lane's edges (tests/integration/test_rsp_lane_check.py): memory laid out so that reads can start, end and
 * cross where the lane's windows do (three pages of one mapping split into two VMAs by mprotect, a hole after them),
 * and a second thread parked inside a blocking read() while main stops in stop_here(). */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

unsigned char *region;
int fds[2];
volatile int other_ready;

static void *other(void *arg)
{
    char c;
    (void)arg;
    other_ready = 1;
    read(fds[0], &c, 1);
    return 0;
}

__attribute__((noinline)) void stop_here(void)
{
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    pthread_t thread;
    pipe(fds);
    region = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 3 * 4096; i++)
        region[i] = (unsigned char)(i * 7 + 1);
    mprotect(region + 4096, 4096, PROT_READ);
    munmap(region + 2 * 4096, 4096);
    pthread_create(&thread, 0, other, 0);
    while (!other_ready)
        ;
    stop_here();
    write(fds[1], "x", 1);
    pthread_join(thread, 0);
    return 0;
}
