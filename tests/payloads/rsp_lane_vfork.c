/* The stop lane and a thread still inside a call while gdb holds the process (tests/integration/
 * test_rsp_lane_check.py): a second thread vforks, its child tells main it runs (so the thread is inside vfork,
 * where km waits for the child without parking) and waits for a byte on stdin; main then stops in stop_here().
 * The byte ends the child, and the vfork returns in the thread while the process is held. */
#include <pthread.h>
#include <unistd.h>

int ready[2];

static void *forker(void *arg)
{
    (void)arg;
    if (vfork() == 0) {
        char c;
        write(ready[1], "r", 1);
        read(0, &c, 1);
        _exit(0);
    }
    return 0;
}

__attribute__((noinline)) void stop_here(void)
{
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    pthread_t thread;
    char c;
    pipe(ready);
    pthread_create(&thread, 0, forker, 0);
    read(ready[0], &c, 1);
    stop_here();
    pthread_join(thread, 0);
    return 0;
}
