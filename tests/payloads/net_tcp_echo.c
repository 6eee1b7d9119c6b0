/* TCP echo server on 127.0.0.1: listens on port 0, prints the port, accepts one client (the test), echoes until
 * EOF. Run by tests/integration/test_net_sockets.py under km and natively. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK(call) do { if ((call) < 0) { printf("%s failed: %s\n", #call, strerror(errno)); return 1; } } while (0)

int main(int argc, char **argv)
{
    int use_accept4 = argc > 1 && strcmp(argv[1], "accept4") == 0;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(s);
    int one = 1;
    CHECK(setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(s, (struct sockaddr *)&addr, sizeof addr));
    CHECK(listen(s, 4));
    socklen_t len = sizeof addr;
    CHECK(getsockname(s, (struct sockaddr *)&addr, &len));
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    struct sockaddr_in peer;
    socklen_t peer_len = sizeof peer;
    int c = use_accept4 ? accept4(s, (struct sockaddr *)&peer, &peer_len, SOCK_CLOEXEC)   /* @accept */
                        : accept(s, (struct sockaddr *)&peer, &peer_len);
    CHECK(c);
    struct sockaddr_in name;
    socklen_t name_len = sizeof name;
    CHECK(getpeername(c, (struct sockaddr *)&name, &name_len));
    printf("accepted %s len %u, peer port %s\n", inet_ntoa(peer.sin_addr), (unsigned)peer_len,
           name.sin_port == peer.sin_port && name_len == peer_len ? "matches" : "differs");
    fflush(stdout);
    CHECK(setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    int type = 0;
    socklen_t type_len = sizeof type;
    CHECK(getsockopt(c, SOL_SOCKET, SO_TYPE, &type, &type_len));
    printf("SO_TYPE %d len %u\n", type, (unsigned)type_len);

    char buf[100];
    ssize_t n;
    size_t total = 0;
    while ((n = recv(c, buf, sizeof buf, 0)) > 0) {
        CHECK(send(c, buf, n, 0));
        total += n;
    }
    CHECK(n);
    printf("echoed %zu bytes\n", total);
    CHECK(shutdown(c, SHUT_RDWR));
    close(c);
    close(s);
    return 0;
}
