/* The kernel's share of a copy's floor, for bench/lambda-bench.sh: relays BYTES bytes from one
 * loopback TCP connection to another and does nothing else (no HTTP, no TLS, no hashing). It is
 * C, not Python, because it runs inside the measured cgroup: an interpreter's per-call and
 * start-up cost would be charged to the floor (a Python relay measured ~0.68 CPU-s/GiB where
 * this one measures ~0.45).
 *
 *   socket_relay SRC_PORT SINK_PORT BYTES [READ_SIZE [WRITE_SIZE]]
 *
 * Connects to 127.0.0.1:SRC_PORT and 127.0.0.1:SINK_PORT (bench/socket_floor.py serve, outside
 * the cgroup), recv()s at most READ_SIZE bytes per call from the source until EOF, and send()s
 * what it holds to the sink once WRITE_SIZE bytes have accumulated (and the rest at EOF); then
 * shuts the sink down and checks it relayed exactly BYTES bytes. READ_SIZE and WRITE_SIZE
 * default to 1 MiB. Exits 0 on success, 1 with a message on any error, 2 on bad arguments.
 *
 * C99 and POSIX only:  cc -O2 -o socket_relay socket_relay.c
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#define DEFAULT_CALL_SIZE (1UL << 20)

static const char *prog = "socket_relay";

static void die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: %s SRC_PORT SINK_PORT BYTES [READ_SIZE [WRITE_SIZE]]\n", prog);
    exit(2);
}

/* parse_num: ARG as a decimal number in [MIN, MAX], or exits with usage. */
static unsigned long long parse_num(const char *name, const char *arg, unsigned long long min,
                                    unsigned long long max) {
    char *end;
    unsigned long long v;
    errno = 0;
    if (arg[0] < '0' || arg[0] > '9') {
        fprintf(stderr, "%s: %s must be a number, got '%s'\n", prog, name, arg);
        usage();
    }
    v = strtoull(arg, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "%s: %s must be a number from %llu to %llu, got '%s'\n", prog, name, min,
                max, arg);
        usage();
    }
    return v;
}

/* connect_local: a TCP connection to 127.0.0.1:PORT. */
static int connect_local(unsigned port, const char *what) {
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        die("socket");
    }
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (connect(fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        if (errno != EINTR) {
            fprintf(stderr, "%s: connect to the %s at 127.0.0.1:%u: %s\n", prog, what, port,
                    strerror(errno));
            exit(1);
        }
    }
    return fd;
}

/* send_all: sends LEN bytes of BUF to FD, across partial sends and interruptions. */
static void send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        /* MSG_NOSIGNAL: a sink that went away is an error to report, not a SIGPIPE. */
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("send to the sink");
        }
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    unsigned src_port, sink_port;
    unsigned long long total, moved = 0;
    size_t read_size = DEFAULT_CALL_SIZE, write_size = DEFAULT_CALL_SIZE, have = 0;
    char *buf;
    int src, sink;

    if (argc < 4 || argc > 6) {
        usage();
    }
    src_port = (unsigned)parse_num("SRC_PORT", argv[1], 1, 65535);
    sink_port = (unsigned)parse_num("SINK_PORT", argv[2], 1, 65535);
    total = parse_num("BYTES", argv[3], 0, (unsigned long long)-1);
    if (argc > 4) {
        read_size = (size_t)parse_num("READ_SIZE", argv[4], 1, 1ULL << 30);
    }
    if (argc > 5) {
        write_size = (size_t)parse_num("WRITE_SIZE", argv[5], 1, 1ULL << 30);
    }

    /* Before a send, fewer than WRITE_SIZE bytes are held, so one more read always fits. */
    buf = malloc(read_size + write_size);
    if (buf == NULL) {
        die("malloc");
    }
    src = connect_local(src_port, "source");
    sink = connect_local(sink_port, "sink");

    for (;;) {
        ssize_t n = recv(src, buf + have, read_size, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("recv from the source");
        }
        if (n == 0) {
            break;
        }
        have += (size_t)n;
        moved += (unsigned long long)n;
        if (have >= write_size) {
            send_all(sink, buf, have);
            have = 0;
        }
    }
    send_all(sink, buf, have);

    if (shutdown(sink, SHUT_WR) != 0) {
        die("shutdown of the sink");
    }
    if (close(sink) != 0) {
        die("close of the sink");
    }
    close(src);
    free(buf);
    if (moved != total) {
        fprintf(stderr, "%s: relayed %llu bytes, expected %llu\n", prog, moved, total);
        return 1;
    }
    return 0;
}
