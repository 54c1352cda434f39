// Where ENet's shared library is looked for: included by `build.rs`, which
// links the first one that exists, and by `src/lib.rs`, which tells a binary
// built without ENet from one built before ENet was installed.

/// Where `bench/build.rs` looks for ENet's shared library.
pub const ENET_LIBRARIES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/libenet.so",
    "/usr/lib/aarch64-linux-gnu/libenet.so",
    "/usr/lib/libenet.so",
    "/usr/local/lib/libenet.so",
];
