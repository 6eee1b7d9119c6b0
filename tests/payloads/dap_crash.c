/* DAP bridge payload for post-mortem: a NULL dereference two frames below main. */
#include <stdio.h>

struct node {
    int value;
    struct node *next;
};

static int deref(struct node *n) {
    return n->value; /* @crash */
}

static int walk(struct node *head) {
    return deref(head->next); /* @walk */
}

int main(void) {
    struct node tail = {2, NULL};
    puts("about to crash");
    fflush(stdout);
    return walk(&tail);
}
