/*
 * FastNet echo server in C: sends every message back to its sender on the
 * channel it came on.
 *
 *   echo_server [--udp-port N] [--tcp-port N] [--bind ADDR]
 *               (--cert cert.pem --key key.pem | --dev-cert)
 *               [--clients N] [--timeout-s N] [--service-thread]
 *               [--handshake-timeout-ms N]
 *
 * Ports default to 0 (the OS picks free ones). On start it prints one line
 * "listening udp=<port> tcp=<port>" and, with --dev-cert, one line
 * "fingerprint <AB:CD:...>" for clients to pin. With --clients N it exits (0)
 * once N clients have come and gone; --timeout-s bounds its whole run (exit 2
 * when reached).
 */
#include "fastnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *arg_value(int argc, char **argv, const char *name) {
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    }
    return NULL;
}

static int has_flag(int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (fastnet_abi_version() != FASTNET_ABI_VERSION) {
        fprintf(stderr, "libfastnet ABI %u, header ABI %u\n", fastnet_abi_version(),
                (unsigned)FASTNET_ABI_VERSION);
        return 1;
    }
    const char *udp = arg_value(argc, argv, "--udp-port");
    const char *tcp = arg_value(argc, argv, "--tcp-port");
    const char *clients_arg = arg_value(argc, argv, "--clients");
    const char *timeout_arg = arg_value(argc, argv, "--timeout-s");
    const char *handshake_arg = arg_value(argc, argv, "--handshake-timeout-ms");
    long clients_wanted = clients_arg ? atol(clients_arg) : 0;
    long timeout_s = timeout_arg ? atol(timeout_arg) : 0;

    FastNetServerConfig cfg;
    fastnet_server_config_default(&cfg);
    cfg.udp_port = (uint16_t)(udp ? atoi(udp) : 0);
    cfg.tcp_port = (uint16_t)(tcp ? atoi(tcp) : 0);
    cfg.bind_address = arg_value(argc, argv, "--bind");
    cfg.cert_pem_path = arg_value(argc, argv, "--cert");
    cfg.key_pem_path = arg_value(argc, argv, "--key");
    cfg.dev_certificate = has_flag(argc, argv, "--dev-cert");
    cfg.service_thread = has_flag(argc, argv, "--service-thread");
    if (handshake_arg) cfg.handshake_timeout_ms = (uint32_t)atol(handshake_arg);

    FastNetServer server = fastnet_server_create_with(&cfg);
    if (!server) {
        fprintf(stderr, "cannot start the server: %s (%s)\n", fastnet_last_error(),
                fastnet_error_name(fastnet_last_error_code()));
        return 1;
    }
    uint16_t udp_port = 0, tcp_port = 0;
    fastnet_server_local_ports(server, &udp_port, &tcp_port);
    printf("listening udp=%u tcp=%u\n", (unsigned)udp_port, (unsigned)tcp_port);
    if (cfg.dev_certificate) {
        char fingerprint[FASTNET_SHA256_FINGERPRINT_BUFFER];
        if (fastnet_server_certificate_sha256(server, fingerprint, sizeof fingerprint) == FASTNET_OK) {
            printf("fingerprint %s\n", fingerprint);
        }
    }
    fflush(stdout);

    time_t started = time(NULL);
    long served = 0;
    unsigned long long messages = 0;
    int status = 0;
    for (;;) {
        /* Wait up to 5 ms for traffic, then take every event. */
        int32_t rc = fastnet_server_service(server, 5);
        if (rc != FASTNET_OK) {
            fprintf(stderr, "service: %s\n", fastnet_last_error());
        }
        FastNetEvent event;
        while (fastnet_server_poll(server, &event)) {
            switch (event.type) {
            case FASTNET_EVENT_CONNECTED:
                printf("peer %llu connected\n", (unsigned long long)event.peer_id);
                break;
            case FASTNET_EVENT_DATA:
                messages++;
                rc = fastnet_server_send(server, event.peer_id, event.channel, event.data,
                                         event.data_len);
                if (rc != FASTNET_OK) {
                    fprintf(stderr, "peer %llu: echo refused: %s\n",
                            (unsigned long long)event.peer_id, fastnet_last_error());
                }
                break;
            case FASTNET_EVENT_DISCONNECTED:
                printf("peer %llu left: %s\n", (unsigned long long)event.peer_id, event.message);
                served++;
                break;
            case FASTNET_EVENT_ERROR:
                fprintf(stderr, "error %s: %s\n", fastnet_error_name(event.error_code),
                        event.message);
                break;
            default:
                break;
            }
            fflush(stdout);
        }
        if (clients_wanted > 0 && served >= clients_wanted) break;
        if (timeout_s > 0 && time(NULL) - started > timeout_s) {
            fprintf(stderr, "timed out after %ld s\n", timeout_s);
            status = 2;
            break;
        }
    }
    printf("served %ld clients, echoed %llu messages\n", served, messages);
    if (fastnet_server_destroy(server) != FASTNET_OK) {
        fprintf(stderr, "destroy: %s\n", fastnet_last_error());
        status = 1;
    }
    return status;
}
