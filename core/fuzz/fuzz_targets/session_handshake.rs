//! The handshake as a server sees it from an unknown TCP client, and the
//! session parameters decoder: arbitrary bytes fail cleanly, and the server
//! never buffers more than its documented bound.
#![no_main]

use std::sync::{Arc, OnceLock};

use fastnet::session::{DevCertificate, ServerCredentials, ServerHandshake, SessionParams};
use fastnet::TransportConfig;
use libfuzzer_sys::fuzz_target;

fn credentials() -> Arc<ServerCredentials> {
    static CREDS: OnceLock<Arc<ServerCredentials>> = OnceLock::new();
    CREDS
        .get_or_init(|| {
            let dev = DevCertificate::generate(&["localhost"]).unwrap();
            Arc::new(ServerCredentials::from_dev_certificate(&dev).unwrap())
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let _ = fastnet::fuzzing::decode_session_params(data, true);
    let _ = fastnet::fuzzing::decode_session_params(data, false);

    let params = SessionParams::from_config(&TransportConfig::default())
        .with_udp_address("127.0.0.1:7777".parse().unwrap());
    let mut server = ServerHandshake::new(credentials(), params).unwrap();
    let mut out = Vec::new();
    for chunk in data.chunks(512) {
        if server.read_tls(chunk).is_err() {
            break;
        }
        server.write_tls(&mut out);
        out.clear();
    }
    assert!(!server.is_done(), "random bytes completed a TLS handshake");
});
