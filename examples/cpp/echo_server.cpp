// FastNet echo server in C++ (bindings/cpp/fastnet.hpp, errors as return
// values): the C echo server's behaviour and options.
//
//   echo_server [--udp-port N] [--tcp-port N] [--bind ADDR]
//               (--cert cert.pem --key key.pem | --dev-cert)
//               [--clients N] [--timeout-s N] [--handshake-timeout-ms N]
//
// Prints "listening udp=<port> tcp=<port>" and, with --dev-cert,
// "fingerprint <AB:CD:...>". With --clients N it exits once N clients have
// come and gone.
#include "fastnet.hpp"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

// The handles are move-only RAII owners.
static_assert(!std::is_copy_constructible_v<fastnet::Server> &&
              !std::is_copy_assignable_v<fastnet::Server> &&
              std::is_nothrow_move_constructible_v<fastnet::Server> &&
              std::is_nothrow_move_assignable_v<fastnet::Server>);
static_assert(!std::is_copy_constructible_v<fastnet::Client> &&
              std::is_nothrow_move_constructible_v<fastnet::Client>);

namespace {

struct Args {
    std::vector<std::string_view> argv;
    const char *value(std::string_view name) const {
        for (std::size_t i = 1; i + 1 < argv.size(); i++) {
            if (argv[i] == name) return argv[i + 1].data();
        }
        return nullptr;
    }
    bool flag(std::string_view name) const {
        for (std::size_t i = 1; i < argv.size(); i++) {
            if (argv[i] == name) return true;
        }
        return false;
    }
    long number(std::string_view name, long fallback) const {
        const char *v = value(name);
        return v ? std::atol(v) : fallback;
    }
};

}  // namespace

int main(int argc, char **argv) {
    Args args{std::vector<std::string_view>(argv, argv + argc)};
    if (!fastnet::abi_matches()) {
        std::cerr << "libfastnet does not match fastnet.h\n";
        return 1;
    }
    fastnet::ServerOptions options;
    options.udp_port = static_cast<std::uint16_t>(args.number("--udp-port", 0));
    options.tcp_port = static_cast<std::uint16_t>(args.number("--tcp-port", 0));
    if (const char *bind = args.value("--bind")) options.bind_address = bind;
    if (const char *cert = args.value("--cert")) options.cert_pem_path = cert;
    if (const char *key = args.value("--key")) options.key_pem_path = key;
    options.dev_certificate = args.flag("--dev-cert");
    options.handshake_timeout_ms =
        static_cast<std::uint32_t>(args.number("--handshake-timeout-ms", 0));
    const long clients_wanted = args.number("--clients", 0);
    const long timeout_s = args.number("--timeout-s", 0);

    auto created = fastnet::Server::create(options);
    if (!created) {
        std::cerr << "cannot start the server: " << created.status().message() << " ("
                  << created.status().name() << ")\n";
        return 1;
    }
    fastnet::Server server = std::move(created).value();
    auto ports = server.local_ports();
    if (!ports) return 1;
    std::cout << "listening udp=" << ports->first << " tcp=" << ports->second << std::endl;
    if (options.dev_certificate) {
        auto fingerprint = server.certificate_sha256();
        if (fingerprint) std::cout << "fingerprint " << *fingerprint << std::endl;
    }

    const auto started = std::chrono::steady_clock::now();
    long served = 0;
    unsigned long long messages = 0;
    int status = 0;
    fastnet::Event event;
    for (;;) {
        if (auto st = server.service(5); !st) std::cerr << "service: " << st.message() << '\n';
        while (server.poll(event)) {
            switch (event.type) {
            case fastnet::EventType::connected:
                std::cout << "peer " << event.peer << " connected" << std::endl;
                break;
            case fastnet::EventType::data:
                messages++;
                // The view is valid until the next poll: send copies it now.
                if (auto st = server.send(event.peer, event.channel, event.data); !st) {
                    std::cerr << "peer " << event.peer << ": echo refused: " << st.message()
                              << '\n';
                }
                break;
            case fastnet::EventType::disconnected:
                std::cout << "peer " << event.peer << " left: " << event.message << std::endl;
                served++;
                break;
            case fastnet::EventType::error:
                std::cerr << "error: " << event.message << '\n';
                break;
            default:
                break;
            }
        }
        if (clients_wanted > 0 && served >= clients_wanted) break;
        const auto elapsed = std::chrono::steady_clock::now() - started;
        if (timeout_s > 0 && elapsed > std::chrono::seconds(timeout_s)) {
            std::cerr << "timed out after " << timeout_s << " s\n";
            status = 2;
            break;
        }
    }
    std::cout << "served " << served << " clients, echoed " << messages << " messages"
              << std::endl;
    if (auto st = server.destroy(); !st) {
        std::cerr << "destroy: " << st.message() << '\n';
        return 1;
    }
    return status;
}
