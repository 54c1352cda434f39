// FastNet echo client in C++ (bindings/cpp/fastnet.hpp with
// FASTNET_CPP_EXCEPTIONS: every failure throws fastnet::Error).
//
//   echo_client [--host H] --port P (--pin AB:CD:... | --ca cert.pem)
//               [--count N] [--nonblocking] [--timeout-ms N]
//
// Sends N text messages round-robin on the four channels plus one 100 KB
// message, and checks the echoes: every reliable one must come back intact,
// unreliable ones must be intact when they arrive. Exit status 0 on success.
#define FASTNET_CPP_EXCEPTIONS
#include "fastnet.hpp"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

const char *arg(int argc, char **argv, std::string_view name) {
    for (int i = 1; i + 1 < argc; i++) {
        if (name == argv[i]) return argv[i + 1];
    }
    return nullptr;
}

bool flag(int argc, char **argv, std::string_view name) {
    for (int i = 1; i < argc; i++) {
        if (name == argv[i]) return true;
    }
    return false;
}

bool reliable(std::uint8_t channel) {
    return channel == fastnet::channel::reliable_ordered ||
           channel == fastnet::channel::reliable_unordered;
}

}  // namespace

int main(int argc, char **argv) try {
    const char *port = arg(argc, argv, "--port");
    if (!port) {
        std::cerr << "usage: echo_client [--host H] --port P (--pin FP | --ca FILE) [--count N]\n";
        return 1;
    }
    fastnet::ClientOptions options;
    options.host = arg(argc, argv, "--host") ? arg(argc, argv, "--host") : "127.0.0.1";
    options.port = static_cast<std::uint16_t>(std::atoi(port));
    if (const char *pin = arg(argc, argv, "--pin")) options.pinned_sha256 = pin;
    if (const char *ca = arg(argc, argv, "--ca")) options.ca_pem_path = ca;
    options.nonblocking = flag(argc, argv, "--nonblocking");
    const char *timeout_arg = arg(argc, argv, "--timeout-ms");
    const auto timeout = std::chrono::milliseconds(timeout_arg ? std::atol(timeout_arg) : 10000);
    options.connect_timeout_ms = static_cast<std::uint32_t>(timeout.count());
    const int count = arg(argc, argv, "--count") ? std::atoi(arg(argc, argv, "--count")) : 40;

    // In exception mode a failed connect throws; the Result always holds a client.
    fastnet::Client client = fastnet::Client::connect(options).value();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    fastnet::Event event;
    bool connected = false;
    while (!connected && std::chrono::steady_clock::now() < deadline) {
        while (client.poll(event)) {
            if (event.type == fastnet::EventType::connected) connected = true;
            if (event.type == fastnet::EventType::connect_failed) {
                std::cerr << "connect failed: " << event.message << '\n';
                return 1;
            }
        }
        if (!connected) client.service(5);
    }
    if (!connected) {
        std::cerr << "no CONNECTED event\n";
        return 1;
    }
    std::cout << "connected to " << options.host << ':' << options.port << std::endl;

    std::map<std::string, std::uint8_t> pending;  // message -> channel
    int reliable_sent = 0;
    for (int i = 0; i < count; i++) {
        const auto channel = static_cast<std::uint8_t>(i % 4);
        std::string text = "message " + std::to_string(i) + " on channel " +
                           std::to_string(channel);
        client.send(channel, text);
        pending.emplace(std::move(text), channel);
        if (reliable(channel)) reliable_sent++;
    }
    std::string big(100 * 1000, '\0');
    for (std::size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>('a' + i % 26);
    client.send(fastnet::channel::reliable_ordered, big);
    pending.emplace(big, fastnet::channel::reliable_ordered);
    reliable_sent++;

    int reliable_back = 0, unreliable_back = 0, bad = 0;
    while (reliable_back < reliable_sent && std::chrono::steady_clock::now() < deadline) {
        client.service(2);
        while (client.poll(event)) {
            if (event.type == fastnet::EventType::disconnected) {
                std::cerr << "disconnected: " << event.message << '\n';
                return 1;
            }
            if (event.type != fastnet::EventType::data) continue;
            // Copy the view before the next poll.
            auto found = pending.find(std::string(event.data.as_string_view()));
            if (found == pending.end() || found->second != event.channel) {
                std::cerr << "unexpected echo of " << event.data.size() << " bytes\n";
                bad++;
                continue;
            }
            (reliable(event.channel) ? reliable_back : unreliable_back)++;
            pending.erase(found);
        }
    }
    const fastnet::Stats stats = client.stats().value();
    std::cout << "echoed " << reliable_back << '/' << reliable_sent << " reliable, "
              << unreliable_back << " unreliable, " << bad << " bad; rtt "
              << client.rtt_us().value() << " us, " << stats.packets_sent << " packets sent"
              << std::endl;
    client.disconnect();
    if (reliable_back != reliable_sent || bad != 0) {
        std::cerr << "FAILED\n";
        return 1;
    }
    std::cout << "OK" << std::endl;
    return 0;
} catch (const fastnet::Error &e) {
    std::cerr << "fastnet error: " << e.what() << '\n';
    return 1;
}
