// FastNet C++17 bindings: a header-only RAII layer over the C ABI of
// include/fastnet.h (link with libfastnet as for C).
//
//   #include "fastnet.hpp"
//
//   auto client = fastnet::Client::connect(options);   // fastnet::Result<Client>
//   if (!client) { std::cerr << client.status().message() << '\n'; return 1; }
//   client->send(fastnet::channel::reliable_ordered, "hello");
//   fastnet::Event ev;
//   while (client->poll(ev)) { if (ev.type == fastnet::EventType::data) use(ev.data); }
//
// * fastnet::Client and fastnet::Server own a handle: move-only, destroyed
//   (connection closed, handle freed) by their destructor.
// * Events are views: Event::data (a ByteView) and Event::message (a
//   std::string_view) point into memory owned by the handle, valid until the
//   next poll on the same object or its destruction. Copy what you keep.
// * Errors are return values by default: fastnet::Status (code + message) and
//   fastnet::Result<T> (a value or a Status). Define FASTNET_CPP_EXCEPTIONS
//   before including this header to have every failure throw fastnet::Error
//   instead (a Result then always holds a value).
// * Threads: as the C API, every call may come from any thread; calls on one
//   object are serialized by the library.
#ifndef FASTNET_HPP
#define FASTNET_HPP

#include "fastnet.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#ifdef FASTNET_CPP_EXCEPTIONS
#include <stdexcept>
#endif

namespace fastnet {

/// The default channels (the C API's channel table).
namespace channel {
inline constexpr std::uint8_t reliable_ordered = FASTNET_CHANNEL_RELIABLE_ORDERED;
inline constexpr std::uint8_t unreliable = FASTNET_CHANNEL_UNRELIABLE;
inline constexpr std::uint8_t reliable_unordered = FASTNET_CHANNEL_RELIABLE_UNORDERED;
inline constexpr std::uint8_t sequenced = FASTNET_CHANNEL_SEQUENCED;
}  // namespace channel

/// The peer ID a client reports for its server.
inline constexpr std::uint64_t server_peer_id = FASTNET_SERVER_PEER_ID;

/// A FASTNET_ error code and its message; ok() when the code is FASTNET_OK.
class Status {
public:
    Status() = default;
    Status(std::int32_t code, std::string message) : code_(code), message_(std::move(message)) {}

    bool ok() const noexcept { return code_ >= 0; }
    explicit operator bool() const noexcept { return ok(); }
    std::int32_t code() const noexcept { return code_; }
    const std::string &message() const noexcept { return message_; }
    /// "FASTNET_ERROR_INVALID_HANDLE", ...
    const char *name() const noexcept { return fastnet_error_name(code_); }

private:
    std::int32_t code_ = FASTNET_OK;
    std::string message_;
};

#ifdef FASTNET_CPP_EXCEPTIONS
/// What every failure throws when FASTNET_CPP_EXCEPTIONS is defined.
class Error : public std::runtime_error {
public:
    explicit Error(Status status)
        : std::runtime_error(std::string(status.name()) + ": " + status.message()),
          status_(std::move(status)) {}
    std::int32_t code() const noexcept { return status_.code(); }
    const Status &status() const noexcept { return status_; }

private:
    Status status_;
};
#endif

/// The calling thread's last error (fastnet_last_error_code and fastnet_last_error).
inline Status last_error() { return Status(fastnet_last_error_code(), fastnet_last_error()); }

namespace detail {
/// Turns a C return code into a Status, throwing in exception mode.
inline Status check(std::int64_t code) {
    if (code >= 0) return Status();
    Status status(static_cast<std::int32_t>(code), fastnet_last_error());
#ifdef FASTNET_CPP_EXCEPTIONS
    throw Error(std::move(status));
#else
    return status;
#endif
}

/// A failure reported by fastnet_last_error (after a NULL or false return).
inline Status failure() {
    Status status = last_error();
#ifdef FASTNET_CPP_EXCEPTIONS
    throw Error(std::move(status));
#else
    return status;
#endif
}
}  // namespace detail

/// A value, or the Status that says why there is none.
template <class T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
    Result(Status status) : status_(std::move(status)) {}  // NOLINT

    bool ok() const noexcept { return value_.has_value(); }
    explicit operator bool() const noexcept { return ok(); }
    const Status &status() const noexcept { return status_; }
    T &value() & { return *value_; }
    const T &value() const & { return *value_; }
    T &&value() && { return std::move(*value_); }
    T *operator->() { return &*value_; }
    const T *operator->() const { return &*value_; }
    T &operator*() & { return *value_; }
    const T &operator*() const & { return *value_; }

private:
    std::optional<T> value_;
    Status status_;
};

/// A read-only view of bytes owned by someone else (a span of const uint8_t).
class ByteView {
public:
    constexpr ByteView() noexcept = default;
    constexpr ByteView(const std::uint8_t *data, std::size_t size) noexcept
        : data_(data), size_(size) {}

    constexpr const std::uint8_t *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr const std::uint8_t *begin() const noexcept { return data_; }
    constexpr const std::uint8_t *end() const noexcept { return data_ + size_; }
    constexpr std::uint8_t operator[](std::size_t i) const noexcept { return data_[i]; }
    /// The same bytes as characters (for text messages).
    std::string_view as_string_view() const noexcept {
        return std::string_view(reinterpret_cast<const char *>(data_), size_);
    }

private:
    const std::uint8_t *data_ = nullptr;
    std::size_t size_ = 0;
};

enum class EventType : std::uint32_t {
    none = FASTNET_EVENT_NONE,
    connected = FASTNET_EVENT_CONNECTED,
    data = FASTNET_EVENT_DATA,
    disconnected = FASTNET_EVENT_DISCONNECTED,
    error = FASTNET_EVENT_ERROR,
    connect_failed = FASTNET_EVENT_CONNECT_FAILED,
};

/// One event. `data` and `message` are views into the handle's memory: valid
/// until the next poll on the same Client/Server or its destruction.
struct Event {
    EventType type = EventType::none;
    std::uint64_t peer = 0;
    std::uint8_t channel = 0;
    ByteView data;
    std::int32_t error_code = FASTNET_OK;
    std::uint32_t disconnect_reason = FASTNET_DISCONNECT_NONE;
    std::uint32_t disconnect_code = 0;
    std::string_view message;

    static Event from_c(const FastNetEvent &e) noexcept {
        Event out;
        out.type = static_cast<EventType>(e.type);
        out.peer = e.peer_id;
        out.channel = e.channel;
        out.data = ByteView(e.data, e.data_len);
        out.error_code = e.error_code;
        out.disconnect_reason = static_cast<std::uint32_t>(e.disconnect_reason);
        out.disconnect_code = e.disconnect_code;
        out.message = e.message ? std::string_view(e.message) : std::string_view();
        return out;
    }
};

using Stats = FastNetStats;
using LinkConfig = FastNetLinkConfig;

/// How Client::connect connects (FastNetClientConfig with owned strings).
/// Trust: set at most one of ca_pem_path, ca_pem, pinned_sha256 and
/// dangerous_accept_any_certificate; none means the public CAs.
struct ClientOptions {
    std::string host;
    std::uint16_t port = 0;
    std::string server_name;     ///< empty: host
    std::string ca_pem_path;     ///< empty: unused
    std::string ca_pem;          ///< PEM text; empty: unused
    std::string pinned_sha256;   ///< "AB:CD:..." or 64 hex digits; empty: unused
    bool dangerous_accept_any_certificate = false;
    std::uint32_t connect_timeout_ms = 0;  ///< 0: 5000
    std::uint32_t idle_timeout_ms = 0;     ///< 0: 10000
    bool service_thread = false;
    bool nonblocking = false;
    bool low_latency_socket = false;
    LinkConfig link_outgoing{};
    LinkConfig link_incoming{};
};

/// How Server::create runs a server (FastNetServerConfig with owned strings).
/// Credentials: the PEM file pair, the PEM text pair, or dev_certificate.
struct ServerOptions {
    std::string bind_address;  ///< empty: "::" (dual stack), else "0.0.0.0"
    std::uint16_t udp_port = 0;
    std::uint16_t tcp_port = 0;
    std::string cert_pem_path;
    std::string key_pem_path;
    std::string cert_pem;
    std::string key_pem;
    bool dev_certificate = false;
    std::string advertised_udp_address;
    std::uint32_t handshake_timeout_ms = 0;
    std::uint32_t max_pending_handshakes = 0;
    std::uint32_t idle_timeout_ms = 0;
    bool service_thread = false;
    bool low_latency_socket = false;
    LinkConfig link_outgoing{};
    LinkConfig link_incoming{};
};

namespace detail {
inline const char *c_str_or_null(const std::string &s) noexcept {
    return s.empty() ? nullptr : s.c_str();
}

/// Anything with data() and size() over bytes or characters (std::string,
/// std::vector<uint8_t>, std::array, std::string_view...).
template <class C, class = void>
struct is_byte_container : std::false_type {};
template <class C>
struct is_byte_container<C, std::void_t<decltype(std::declval<const C &>().data()),
                                        decltype(std::declval<const C &>().size())>>
    : std::bool_constant<sizeof(*std::declval<const C &>().data()) == 1> {};
}  // namespace detail

/// A connection to a server. Move-only; the destructor closes the connection
/// and frees the handle.
class Client {
public:
    Client() noexcept = default;
    ~Client() { reset(); }
    Client(Client &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Client &operator=(Client &&other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    /// Connects with the defaults (public-CA trust unless FASTNET_TRUST_PIN_SHA256
    /// or FASTNET_TRUST_CA_FILE is set), blocking up to about 5 s.
    static Result<Client> connect(const std::string &host, std::uint16_t port) {
        FastNetClient h = fastnet_client_connect(host.c_str(), port);
        if (!h) return detail::failure();
        return Client(h);
    }

    static Result<Client> connect(const ClientOptions &o) {
        FastNetClientConfig cfg;
        fastnet_client_config_default(&cfg);
        cfg.host = o.host.c_str();
        cfg.port = o.port;
        cfg.server_name = detail::c_str_or_null(o.server_name);
        cfg.ca_pem_path = detail::c_str_or_null(o.ca_pem_path);
        cfg.ca_pem = o.ca_pem.empty() ? nullptr
                                      : reinterpret_cast<const std::uint8_t *>(o.ca_pem.data());
        cfg.ca_pem_len = o.ca_pem.size();
        cfg.pinned_sha256 = detail::c_str_or_null(o.pinned_sha256);
        cfg.dangerous_accept_any_certificate = o.dangerous_accept_any_certificate;
        if (o.connect_timeout_ms) cfg.connect_timeout_ms = o.connect_timeout_ms;
        if (o.idle_timeout_ms) cfg.idle_timeout_ms = o.idle_timeout_ms;
        cfg.service_thread = o.service_thread;
        cfg.nonblocking = o.nonblocking;
        cfg.low_latency_socket = o.low_latency_socket;
        cfg.link_outgoing = o.link_outgoing;
        cfg.link_incoming = o.link_incoming;
        FastNetClient h = fastnet_client_connect_with(&cfg);
        if (!h) return detail::failure();
        return Client(h);
    }

    /// The next event into `out`; false when there is none (or on an error,
    /// which throws in exception mode; see fastnet::last_error otherwise).
    bool poll(Event &out) {
        FastNetEvent e;
        if (fastnet_client_poll(handle_, &e)) {
            out = Event::from_c(e);
            return true;
        }
        if (fastnet_last_error_code() != FASTNET_OK) detail::failure();
        out = Event();
        return false;
    }

    std::optional<Event> poll() {
        Event e;
        if (poll(e)) return e;
        return std::nullopt;
    }

    /// Queues a message (copied); it leaves with the next poll (which sends it
    /// first, even mid-drain) or service, sharing a datagram with the messages
    /// queued since.
    Status send(std::uint8_t channel, const void *data, std::size_t len) {
        return detail::check(fastnet_client_send(handle_, channel, data, len));
    }
    template <class C, class = std::enable_if_t<detail::is_byte_container<C>::value>>
    Status send(std::uint8_t channel, const C &bytes) {
        return send(channel, bytes.data(), bytes.size());
    }
    Status send(std::uint8_t channel, const char *text) {
        return send(channel, std::string_view(text));
    }

    /// Services, waiting up to timeout_ms for traffic (0: never blocks).
    Status service(std::uint32_t timeout_ms = 0) {
        return detail::check(fastnet_client_service(handle_, timeout_ms));
    }

    Result<Stats> stats() const {
        Stats s{};
        Status st = detail::check(fastnet_client_stats(handle_, &s));
        if (!st) return st;
        return s;
    }

    /// Smoothed round-trip time in microseconds, or a Status on error.
    Result<std::int64_t> rtt_us() const {
        std::int64_t rtt = fastnet_client_rtt_us(handle_);
        Status st = detail::check(rtt);
        if (!st) return st;
        return rtt;
    }

    Status enable_service_thread() {
        return detail::check(fastnet_client_enable_service_thread(handle_));
    }

    /// service() spins up to `us` microseconds before sleeping (0: never).
    Status set_busy_wait_us(std::uint32_t us) {
        return detail::check(fastnet_client_set_busy_wait_us(handle_, us));
    }

    /// UDP generic receive offload for bulk downloads (Linux; a no-op
    /// elsewhere): see fastnet_client_enable_gro.
    Status enable_gro() {
        return detail::check(fastnet_client_enable_gro(handle_));
    }

    /// FASTNET_CLIENT_CONNECTING / _CONNECTED / _DISCONNECTED / _FAILED.
    Result<std::int32_t> state() const {
        std::int32_t s = fastnet_client_state(handle_);
        Status st = detail::check(s);
        if (!st) return st;
        return s;
    }

    /// Closes the connection with `code` and frees the handle (the object is
    /// then empty). The destructor does the same with FASTNET_CLOSE_NORMAL.
    Status disconnect(std::uint32_t code = FASTNET_CLOSE_NORMAL) {
        FastNetClient h = std::exchange(handle_, nullptr);
        return detail::check(fastnet_client_disconnect_with_code(h, code));
    }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    FastNetClient native_handle() const noexcept { return handle_; }
    /// Gives up ownership: the caller destroys the handle.
    FastNetClient release() noexcept { return std::exchange(handle_, nullptr); }

private:
    explicit Client(FastNetClient h) noexcept : handle_(h) {}
    void reset() noexcept {
        if (handle_) fastnet_client_destroy(std::exchange(handle_, nullptr));
    }

    FastNetClient handle_ = nullptr;
};

/// A server. Move-only; the destructor closes every connection and the sockets.
class Server {
public:
    Server() noexcept = default;
    ~Server() { reset(); }
    Server(Server &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Server &operator=(Server &&other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Server(const Server &) = delete;
    Server &operator=(const Server &) = delete;

    /// All addresses (dual stack), certificate and key from PEM files.
    static Result<Server> create(std::uint16_t udp_port, std::uint16_t tcp_port,
                                 const std::string &cert_path, const std::string &key_path) {
        FastNetServer h =
            fastnet_server_create(udp_port, tcp_port, cert_path.c_str(), key_path.c_str());
        if (!h) return detail::failure();
        return Server(h);
    }

    static Result<Server> create(const ServerOptions &o) {
        FastNetServerConfig cfg;
        fastnet_server_config_default(&cfg);
        cfg.bind_address = detail::c_str_or_null(o.bind_address);
        cfg.udp_port = o.udp_port;
        cfg.tcp_port = o.tcp_port;
        cfg.cert_pem_path = detail::c_str_or_null(o.cert_pem_path);
        cfg.key_pem_path = detail::c_str_or_null(o.key_pem_path);
        cfg.cert_pem = o.cert_pem.empty()
                           ? nullptr
                           : reinterpret_cast<const std::uint8_t *>(o.cert_pem.data());
        cfg.cert_pem_len = o.cert_pem.size();
        cfg.key_pem = o.key_pem.empty()
                          ? nullptr
                          : reinterpret_cast<const std::uint8_t *>(o.key_pem.data());
        cfg.key_pem_len = o.key_pem.size();
        cfg.dev_certificate = o.dev_certificate;
        cfg.advertised_udp_address = detail::c_str_or_null(o.advertised_udp_address);
        if (o.handshake_timeout_ms) cfg.handshake_timeout_ms = o.handshake_timeout_ms;
        if (o.max_pending_handshakes) cfg.max_pending_handshakes = o.max_pending_handshakes;
        if (o.idle_timeout_ms) cfg.idle_timeout_ms = o.idle_timeout_ms;
        cfg.service_thread = o.service_thread;
        cfg.low_latency_socket = o.low_latency_socket;
        cfg.link_outgoing = o.link_outgoing;
        cfg.link_incoming = o.link_incoming;
        FastNetServer h = fastnet_server_create_with(&cfg);
        if (!h) return detail::failure();
        return Server(h);
    }

    /// The next event into `out`; false when there is none (see Client::poll).
    bool poll(Event &out) {
        FastNetEvent e;
        if (fastnet_server_poll(handle_, &e)) {
            out = Event::from_c(e);
            return true;
        }
        if (fastnet_last_error_code() != FASTNET_OK) detail::failure();
        out = Event();
        return false;
    }

    std::optional<Event> poll() {
        Event e;
        if (poll(e)) return e;
        return std::nullopt;
    }

    /// Queues a message (copied) for a peer; it leaves with the next poll
    /// (which sends it first, even mid-drain) or service.
    Status send(std::uint64_t peer, std::uint8_t channel, const void *data, std::size_t len) {
        return detail::check(fastnet_server_send(handle_, peer, channel, data, len));
    }
    template <class C, class = std::enable_if_t<detail::is_byte_container<C>::value>>
    Status send(std::uint64_t peer, std::uint8_t channel, const C &bytes) {
        return send(peer, channel, bytes.data(), bytes.size());
    }
    /// Echoes a received view back (the bytes are copied before the next poll).
    Status send(std::uint64_t peer, std::uint8_t channel, ByteView bytes) {
        return send(peer, channel, bytes.data(), bytes.size());
    }

    /// Queues a message for every connected peer: how many accepted it.
    Result<int> broadcast(std::uint8_t channel, const void *data, std::size_t len) {
        std::int32_t n = fastnet_server_broadcast(handle_, channel, data, len);
        Status st = detail::check(n);
        if (!st) return st;
        return static_cast<int>(n);
    }

    Status disconnect_peer(std::uint64_t peer, std::uint32_t code = FASTNET_CLOSE_NORMAL) {
        return detail::check(fastnet_server_disconnect_peer(handle_, peer, code));
    }

    Result<int> peer_count() const {
        std::int32_t n = fastnet_server_peer_count(handle_);
        Status st = detail::check(n);
        if (!st) return st;
        return static_cast<int>(n);
    }

    Result<Stats> peer_stats(std::uint64_t peer) const {
        Stats s{};
        Status st = detail::check(fastnet_server_peer_stats(handle_, peer, &s));
        if (!st) return st;
        return s;
    }

    /// The certificate's SHA-256 fingerprint, "AB:CD:...", for clients to pin.
    Result<std::string> certificate_sha256() const {
        char buf[FASTNET_SHA256_FINGERPRINT_BUFFER];
        Status st = detail::check(fastnet_server_certificate_sha256(handle_, buf, sizeof buf));
        if (!st) return st;
        return std::string(buf);
    }

    /// The bound (UDP, TCP) ports.
    Result<std::pair<std::uint16_t, std::uint16_t>> local_ports() const {
        std::uint16_t udp = 0, tcp = 0;
        Status st = detail::check(fastnet_server_local_ports(handle_, &udp, &tcp));
        if (!st) return st;
        return std::make_pair(udp, tcp);
    }

    Status service(std::uint32_t timeout_ms = 0) {
        return detail::check(fastnet_server_service(handle_, timeout_ms));
    }

    Status enable_service_thread() {
        return detail::check(fastnet_server_enable_service_thread(handle_));
    }

    /// service() spins up to `us` microseconds before sleeping (0: never).
    Status set_busy_wait_us(std::uint32_t us) {
        return detail::check(fastnet_server_set_busy_wait_us(handle_, us));
    }

    /// UDP generic receive offload for bulk uploads (Linux; a no-op
    /// elsewhere): see fastnet_server_enable_gro.
    Status enable_gro() {
        return detail::check(fastnet_server_enable_gro(handle_));
    }

    /// Closes everything and frees the handle now (the object is then empty).
    Status destroy() {
        FastNetServer h = std::exchange(handle_, nullptr);
        return detail::check(fastnet_server_destroy(h));
    }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    FastNetServer native_handle() const noexcept { return handle_; }
    FastNetServer release() noexcept { return std::exchange(handle_, nullptr); }

private:
    explicit Server(FastNetServer h) noexcept : handle_(h) {}
    void reset() noexcept {
        if (handle_) fastnet_server_destroy(std::exchange(handle_, nullptr));
    }

    FastNetServer handle_ = nullptr;
};

/// The library's version string and ABI check.
inline std::string_view version() noexcept { return fastnet_version(); }
inline bool abi_matches() noexcept { return fastnet_abi_version() == FASTNET_ABI_VERSION; }

}  // namespace fastnet

#endif  // FASTNET_HPP
