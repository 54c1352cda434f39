/*
 * The C example of the FastNet brief, as written (plus <stdio.h>). It connects
 * to a server on 127.0.0.1:7778, sends 4 bytes and prints the events that are
 * already there. Trust comes from the environment: set
 * FASTNET_TRUST_PIN_SHA256 to the server's fingerprint (or FASTNET_TRUST_CA_FILE
 * to its certificate), for example with examples/c/echo_server --dev-cert
 * --tcp-port 7778.
 *
 * The printf formats are the brief's (%d for 64-bit and size_t values), so
 * compile it without -Wformat: gcc -std=c99 -Wall -Wextra -Wno-format.
 */
#include <stdio.h>
#include "fastnet.h"
int main() {
    FastNetClient client = fastnet_client_connect("127.0.0.1", 7778);
    if (!client) { printf("Failed to connect\n"); return 1; }
    uint8_t data[] = {1, 2, 3, 4};
    fastnet_client_send(client, 0, data, sizeof(data));
    FastNetEvent event;
    while (fastnet_client_poll(client, &event)) {
        switch (event.type) {
            case FASTNET_EVENT_CONNECTED: printf("Connected as peer %d\n", event.peer_id); break;
            case FASTNET_EVENT_DATA: printf("Received %d bytes\n", event.data_len); break;
            case FASTNET_EVENT_DISCONNECTED: printf("Disconnected\n"); break;
        }
    }
    fastnet_client_disconnect(client);
    return 0;
}
