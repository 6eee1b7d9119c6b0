/* Signal state across a snapshot the payload takes of itself: a handler on an alternate stack, SIGUSR1 blocked and
 * pending when the snapshot is taken; the resumed copy unblocks it and reports where the handler ran. */
#include <signal.h>
#include <stdio.h>
#include <km/snapshot.h>

static volatile int hits;
static char altstack[65536];
static char *volatile ran_at;

static void handler(int signo)
{
    char here;
    (void)signo;
    hits++;
    ran_at = &here;
}

int main(void)
{
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    struct sigaction sa = {.sa_handler = handler, .sa_flags = SA_ONSTACK};
    sigset_t usr1;
    sigaltstack(&ss, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    raise(SIGUSR1);
    int r = km_snapshot_take("signals", "", 0);
    printf("%s, %d handled while blocked\n", r == KM_SNAPSHOT_RESUMED ? "resumed" : "not resumed", hits);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    printf("%d handled once unblocked, on the alternate stack: %s\n", hits,
           ran_at >= altstack && ran_at < altstack + sizeof altstack ? "yes" : "no");
    return 0;
}
