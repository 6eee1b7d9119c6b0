/* What a snapshot cannot restore is refused, the payload going on: an armed alarm, an armed timerfd, a signalfd;
 * once all are gone the snapshot is taken. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <km/snapshot.h>

static void report(const char *what)
{
    int r = km_snapshot_take(what, "", 1);
    printf("%s: %s\n", what, r == KM_SNAPSHOT_TAKEN ? "taken" : r < 0 ? strerror(errno) : "resumed");
}

int main(void)
{
    alarm(100);
    report("alarm");
    alarm(0);
    int t = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec in_100s = {.it_value = {100, 0}};
    timerfd_settime(t, 0, &in_100s, NULL);
    report("timerfd");
    close(t);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    int s = signalfd(-1, &usr1, 0);
    report("signalfd");
    close(s);
    report("neither");
    return 0;
}
