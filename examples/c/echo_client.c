/*
 * FastNet echo client in C: sends numbered messages on every channel to an
 * echo server and checks that what comes back is byte for byte what it sent.
 *
 *   echo_client [--host H] --port P (--pin AB:CD:... | --ca cert.pem)
 *               [--count N] [--size BYTES] [--nonblocking] [--service-thread]
 *               [--timeout-ms N]
 *
 * Messages go round-robin on the four default channels; those on the reliable
 * channels (0 and 2) must all come back, those on the unreliable ones may be
 * lost but must be intact when they arrive. The last message is 200 KB, so it
 * is fragmented. Exit status: 0 when everything checks out, 1 otherwise.
 */
#include "fastnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG_MESSAGE_BYTES (200u * 1000u)

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

/* Message i: 4 bytes of its index (little-endian), then a pattern. */
static size_t message_size(unsigned i, unsigned count, size_t size) {
    return i + 1 == count ? BIG_MESSAGE_BYTES : size + i % 7;
}

static uint8_t pattern(unsigned i, size_t j) {
    return (uint8_t)(i * 31u + j * 7u + 1u);
}

static void fill(uint8_t *buf, unsigned i, size_t len) {
    for (size_t j = 0; j < len; j++) buf[j] = pattern(i, j);
    if (len >= 4) {
        buf[0] = (uint8_t)i;
        buf[1] = (uint8_t)(i >> 8);
        buf[2] = (uint8_t)(i >> 16);
        buf[3] = (uint8_t)(i >> 24);
    }
}

static int reliable(uint8_t channel) {
    return channel == FASTNET_CHANNEL_RELIABLE_ORDERED ||
           channel == FASTNET_CHANNEL_RELIABLE_UNORDERED;
}

int main(int argc, char **argv) {
    const char *port_arg = arg_value(argc, argv, "--port");
    const char *count_arg = arg_value(argc, argv, "--count");
    const char *size_arg = arg_value(argc, argv, "--size");
    const char *timeout_arg = arg_value(argc, argv, "--timeout-ms");
    if (!port_arg) {
        fprintf(stderr, "usage: echo_client [--host H] --port P (--pin FP | --ca FILE) "
                        "[--count N] [--size B] [--nonblocking] [--timeout-ms N]\n");
        return 1;
    }
    unsigned count = count_arg ? (unsigned)atoi(count_arg) : 40;
    size_t size = size_arg ? (size_t)atol(size_arg) : 1000;
    if (count < 1) count = 1;
    if (size < 4) size = 4;

    FastNetClientConfig cfg;
    fastnet_client_config_default(&cfg);
    cfg.host = arg_value(argc, argv, "--host");
    if (!cfg.host) cfg.host = "127.0.0.1";
    cfg.port = (uint16_t)atoi(port_arg);
    cfg.pinned_sha256 = arg_value(argc, argv, "--pin");
    cfg.ca_pem_path = arg_value(argc, argv, "--ca");
    cfg.nonblocking = has_flag(argc, argv, "--nonblocking");
    cfg.service_thread = has_flag(argc, argv, "--service-thread");
    if (timeout_arg) cfg.connect_timeout_ms = (uint32_t)atol(timeout_arg);
    uint32_t timeout_ms = timeout_arg ? (uint32_t)atol(timeout_arg) : 10000;

    FastNetClient client = fastnet_client_connect_with(&cfg);
    if (!client) {
        fprintf(stderr, "connect failed: %s (%s)\n", fastnet_last_error(),
                fastnet_error_name(fastnet_last_error_code()));
        return 1;
    }

    /* The first event: CONNECTED (at once after a blocking connect). */
    FastNetEvent event;
    int connected = 0;
    for (uint32_t waited = 0; !connected && waited < timeout_ms; waited += 5) {
        while (fastnet_client_poll(client, &event)) {
            if (event.type == FASTNET_EVENT_CONNECTED) {
                connected = 1;
                printf("connected to %s:%u (peer %llu)\n", cfg.host, (unsigned)cfg.port,
                       (unsigned long long)event.peer_id);
            } else if (event.type == FASTNET_EVENT_CONNECT_FAILED) {
                fprintf(stderr, "connect failed: %s (%s)\n", event.message,
                        fastnet_error_name(event.error_code));
                fastnet_client_destroy(client);
                return 1;
            }
        }
        if (!connected) fastnet_client_service(client, 5);
    }
    if (!connected) {
        fprintf(stderr, "no CONNECTED event\n");
        fastnet_client_destroy(client);
        return 1;
    }

    uint8_t *buf = malloc(BIG_MESSAGE_BYTES);
    unsigned char *seen = calloc(count, 1);
    if (!buf || !seen) return 1;
    unsigned reliable_sent = 0;
    for (unsigned i = 0; i < count; i++) {
        uint8_t channel = (uint8_t)(i % 4);
        size_t len = message_size(i, count, size);
        if (i + 1 == count) channel = FASTNET_CHANNEL_RELIABLE_ORDERED;
        fill(buf, i, len);
        int32_t rc = fastnet_client_send(client, channel, buf, len);
        if (rc != FASTNET_OK) {
            fprintf(stderr, "send %u: %s\n", i, fastnet_last_error());
            return 1;
        }
        if (reliable(channel)) reliable_sent++;
        /* Let the game loop run now and then, as a game would. */
        if (i % 8 == 7) fastnet_client_service(client, 0);
    }

    unsigned reliable_back = 0, unreliable_back = 0, bad = 0;
    for (uint32_t waited = 0; reliable_back < reliable_sent && waited < timeout_ms; waited += 2) {
        fastnet_client_service(client, 2);
        while (fastnet_client_poll(client, &event)) {
            if (event.type == FASTNET_EVENT_DISCONNECTED) {
                fprintf(stderr, "disconnected: %s\n", event.message);
                return 1;
            }
            if (event.type != FASTNET_EVENT_DATA) continue;
            if (event.data_len < 4) { bad++; continue; }
            unsigned i = (unsigned)event.data[0] | (unsigned)event.data[1] << 8 |
                         (unsigned)event.data[2] << 16 | (unsigned)event.data[3] << 24;
            uint8_t channel = (uint8_t)(i % 4);
            if (i + 1 == count) channel = FASTNET_CHANNEL_RELIABLE_ORDERED;
            if (i >= count || seen[i] || event.channel != channel ||
                event.data_len != message_size(i, count, size)) {
                fprintf(stderr, "unexpected message: index %u, channel %u, %zu bytes\n", i,
                        (unsigned)event.channel, event.data_len);
                bad++;
                continue;
            }
            fill(buf, i, event.data_len);
            if (memcmp(buf, event.data, event.data_len) != 0) {
                fprintf(stderr, "message %u: bytes differ\n", i);
                bad++;
                continue;
            }
            seen[i] = 1;
            if (reliable(event.channel)) reliable_back++; else unreliable_back++;
        }
    }

    FastNetStats stats;
    fastnet_client_stats(client, &stats);
    printf("echoed %u/%u reliable, %u unreliable, %u bad; rtt %lld us, %llu packets sent, "
           "%llu received, %llu lost\n",
           reliable_back, reliable_sent, unreliable_back, bad,
           (long long)fastnet_client_rtt_us(client), (unsigned long long)stats.packets_sent,
           (unsigned long long)stats.packets_received, (unsigned long long)stats.packets_lost);
    free(buf);
    free(seen);
    if (fastnet_client_disconnect(client) != FASTNET_OK) {
        fprintf(stderr, "disconnect: %s\n", fastnet_last_error());
        return 1;
    }
    if (reliable_back != reliable_sent || bad != 0) {
        fprintf(stderr, "FAILED\n");
        return 1;
    }
    printf("OK\n");
    return 0;
}
