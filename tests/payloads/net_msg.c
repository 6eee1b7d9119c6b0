/* Datagrams and messages: UDP sendto/recvfrom on 127.0.0.1, sendmsg/recvmsg with two iovecs and a msg_name,
 * MSG_TRUNC/MSG_PEEK, SCM_RIGHTS over a unix socketpair, sendmmsg/recvmmsg, SO_RCVTIMEO, SIGPIPE, a unix socket
 * path (in the working directory), IPv6 loopback. Deterministic output, compared between km and a native run by
 * tests/integration/test_net_sockets.py. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r)
{
    if (r < 0)
        printf("%s: -1 errno %d\n", what, errno);
    else
        printf("%s: %ld\n", what, r);
}

static int udp_socket(struct sockaddr_in *addr)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)addr, sizeof *addr);
    socklen_t len = sizeof *addr;
    getsockname(s, (struct sockaddr *)addr, &len);
    return s;
}

static void udp(void)
{
    struct sockaddr_in a_addr, b_addr, from;
    int a = udp_socket(&a_addr), b = udp_socket(&b_addr);
    printf("ports differ and are set: %d\n", a_addr.sin_port != b_addr.sin_port && a_addr.sin_port);
    show("sendto", sendto(b, "dgram-1", 7, 0, (struct sockaddr *)&a_addr, sizeof a_addr));
    char buf[64] = {0};
    socklen_t from_len = sizeof from;
    show("recvfrom", recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len));
    printf("data '%s' from_len %u from b: %d\n", buf, (unsigned)from_len, from.sin_port == b_addr.sin_port);
    show("sendto addrlen 200", sendto(b, "x", 1, 0, (struct sockaddr *)&a_addr, 200));

    /* sendmsg with two iovecs and a msg_name; recvmsg into two iovecs of other sizes */
    struct iovec out[2] = {{"head-", 5}, {"tail!", 5}};
    struct msghdr msg = {.msg_name = &a_addr, .msg_namelen = sizeof a_addr, .msg_iov = out, .msg_iovlen = 2};
    show("sendmsg", sendmsg(b, &msg, 0));
    char p1[3], p2[20] = {0};
    struct iovec in[2] = {{p1, sizeof p1}, {p2, sizeof p2}};
    struct sockaddr_in name;
    struct msghdr rmsg = {.msg_name = &name, .msg_namelen = sizeof name, .msg_iov = in, .msg_iovlen = 2};
    show("recvmsg MSG_PEEK", recvmsg(a, &rmsg, MSG_PEEK));
    rmsg.msg_namelen = 100;
    show("recvmsg", recvmsg(a, &rmsg, 0));
    printf("iov0 '%.3s' iov1 '%s' namelen %u from b: %d flags %#x\n", p1, p2, (unsigned)rmsg.msg_namelen,
           name.sin_port == b_addr.sin_port, rmsg.msg_flags);
    show("send again", sendmsg(b, &msg, 0));
    in[0].iov_len = 2;
    rmsg.msg_iovlen = 1;
    show("recvmsg short", recvmsg(a, &rmsg, 0));
    printf("truncated: %d\n", (rmsg.msg_flags & MSG_TRUNC) != 0);

    /* connected UDP: send/recv */
    show("connect", connect(b, (struct sockaddr *)&a_addr, sizeof a_addr));
    show("send", send(b, "connected", 9, 0));
    memset(buf, 0, sizeof buf);
    show("recv", recv(a, buf, sizeof buf, 0));
    printf("data '%s'\n", buf);

    /* sendmmsg / recvmmsg */
    struct iovec m1 = {"one", 3}, m2 = {"three", 5};
    struct mmsghdr mm[2] = {{.msg_hdr = {.msg_iov = &m1, .msg_iovlen = 1}},
                            {.msg_hdr = {.msg_iov = &m2, .msg_iovlen = 1}}};
    show("sendmmsg", sendmmsg(b, mm, 2, 0));
    printf("msg_len %u %u\n", mm[0].msg_len, mm[1].msg_len);
    char r1[8] = {0}, r2[8] = {0};
    struct iovec i1 = {r1, sizeof r1}, i2 = {r2, sizeof r2};
    struct sockaddr_in n1, n2;
    struct mmsghdr rm[2] = {{.msg_hdr = {.msg_name = &n1, .msg_namelen = sizeof n1, .msg_iov = &i1, .msg_iovlen = 1}},
                            {.msg_hdr = {.msg_name = &n2, .msg_namelen = sizeof n2, .msg_iov = &i2, .msg_iovlen = 1}}};
    show("recvmmsg", recvmmsg(a, rm, 2, 0, NULL));
    printf("got '%s' (%u) '%s' (%u) names from b: %d\n", r1, rm[0].msg_len, r2, rm[1].msg_len,
           n1.sin_port == b_addr.sin_port && n2.sin_port == b_addr.sin_port);

    /* SO_RCVTIMEO: an empty socket answers EAGAIN after the timeout */
    struct timeval tv = {0, 30000};
    show("setsockopt SO_RCVTIMEO", setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct timeval got;
    socklen_t got_len = sizeof got;
    show("getsockopt SO_RCVTIMEO", getsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &got, &got_len));
    printf("timeout %ld.%06ld len %u\n", (long)got.tv_sec, (long)got.tv_usec, (unsigned)got_len);
    show("recv with timeout", recv(a, buf, sizeof buf, 0));
    int type;
    socklen_t type_len = sizeof type;
    getsockopt(a, SOL_SOCKET, SO_TYPE, &type, &type_len);
    printf("SO_TYPE %d\n", type);
    close(a);
    close(b);
}

static void rights(void)
{
    int sv[2], p[2];
    show("socketpair dgram", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    pipe(p);
    union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {"fd", 2};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &p[1], sizeof(int));
    show("sendmsg SCM_RIGHTS", sendmsg(sv[0], &msg, 0));
    close(p[1]);

    char data[8] = {0};
    union { struct cmsghdr align; char buf[64]; } rcontrol;
    struct iovec riov = {data, sizeof data};
    struct msghdr rmsg = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rcontrol.buf,
                          .msg_controllen = sizeof rcontrol.buf};
    show("recvmsg SCM_RIGHTS", recvmsg(sv[1], &rmsg, MSG_CMSG_CLOEXEC));
    struct cmsghdr *rc = CMSG_FIRSTHDR(&rmsg);
    printf("data '%s' controllen %zu level %d type %d len %zu\n", data, (size_t)rmsg.msg_controllen,
           rc ? rc->cmsg_level : -1, rc ? rc->cmsg_type : -1, rc ? (size_t)rc->cmsg_len : 0);
    int passed = -1;
    if (rc)
        memcpy(&passed, CMSG_DATA(rc), sizeof passed);
    show("write through the passed pipe end", write(passed, "via", 3));
    close(passed);
    char back[8] = {0};
    show("read the pipe", read(p[0], back, sizeof back));
    printf("pipe gave '%s'\n", back);

    memcpy(CMSG_DATA(c), &(int){1000}, sizeof(int));        /* km's own descriptors cannot be passed */
    show("sendmsg SCM_RIGHTS fd 1000", sendmsg(sv[0], &msg, 0));
    close(sv[0]);
    close(sv[1]);
    close(p[0]);
}

static void unix_path_and_ipv6(void)
{
    /* a unix stream socket bound to a path relative to the working directory (km's cwd is the payload's) */
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "net_msg.sock"}, got;
    unlink(a.sun_path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind unix path", bind(l, (struct sockaddr *)&a, sizeof a));
    show("listen", listen(l, 1));
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    show("connect unix path", connect(c, (struct sockaddr *)&a, sizeof a));
    socklen_t len = sizeof got;
    int s = accept4(l, (struct sockaddr *)&got, &len, SOCK_CLOEXEC);
    printf("accept4: %s, peer address length %u (unnamed)\n", s >= 0 ? "ok" : "failed", (unsigned)len);
    len = sizeof got;
    getpeername(c, (struct sockaddr *)&got, &len);
    printf("client's peer is '%s'\n", got.sun_path);
    show("send", send(c, "over unix", 9, 0));
    char buf[16] = {0};
    show("recv", recv(s, buf, sizeof buf, 0));
    printf("data '%s'\n", buf);
    close(s);
    close(c);
    close(l);
    show("unlink", unlink(a.sun_path));

    /* IPv6 loopback: whatever the host offers, natively and under km alike */
    int v6 = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 six = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int bound = v6 >= 0 ? bind(v6, (struct sockaddr *)&six, sizeof six) : -1;
    if (bound == 0) {
        len = sizeof six;
        getsockname(v6, (struct sockaddr *)&six, &len);
        show("sendto ::1", sendto(v6, "six", 3, 0, (struct sockaddr *)&six, sizeof six));
        struct sockaddr_in6 from;
        socklen_t from_len = sizeof from;
        memset(buf, 0, sizeof buf);
        show("recvfrom ::1", recvfrom(v6, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len));
        printf("data '%s' from_len %u\n", buf, (unsigned)from_len);
    } else
        printf("no IPv6 loopback here\n");
    close(v6);
}

static volatile int pipes;
static void on_pipe(int signo) { pipes++; }

static void broken_pipe(void)
{
    /* the host answers EPIPE to km without a signal; the payload must get its SIGPIPE as on Linux */
    signal(SIGPIPE, on_pipe);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    close(sv[1]);
    show("send to a closed peer", send(sv[0], "x", 1, 0));
    printf("SIGPIPE handled %d\n", pipes);
    show("send MSG_NOSIGNAL", send(sv[0], "x", 1, MSG_NOSIGNAL));
    struct iovec iov = {"y", 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    show("sendmsg to a closed peer", sendmsg(sv[0], &msg, 0));
    printf("SIGPIPE handled %d\n", pipes);
    signal(SIGPIPE, SIG_IGN);
    show("send with SIGPIPE ignored", send(sv[0], "x", 1, 0));
    printf("SIGPIPE handled %d\n", pipes);
    close(sv[0]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    udp();
    rights();
    broken_pipe();
    unix_path_and_ipv6();
    printf("done\n");
    return 0;
}
