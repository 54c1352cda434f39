//! `fastnet_client_connect` trusts the public roots, or what the environment
//! names explicitly (a pinned fingerprint or a CA file); nothing disables
//! verification. One test, alone in its binary, because it sets variables of
//! the whole process.

mod common;

use common::*;
use fastnet::FastNetError::*;
use fastnet::FastNetEventType::*;
use fastnet::*;

fn connect(port: u16) -> FastNetClient {
    // SAFETY: static C string.
    unsafe { fastnet_client_connect(c"127.0.0.1".as_ptr(), port) }
}

#[test]
fn environment_trust() {
    let dev = fastnet_core::session::DevCertificate::generate(&["127.0.0.1"]).unwrap();
    let server = TestServer::start_with(|cfg| {
        cfg.dev_certificate = false;
        cfg.cert_pem = dev.cert_pem.as_ptr();
        cfg.cert_pem_len = dev.cert_pem.len();
        cfg.key_pem = dev.key_pem.as_ptr();
        cfg.key_pem_len = dev.key_pem.len();
    });
    let port = server.tcp_port;

    // Nothing set: public roots, which do not know this certificate.
    std::env::remove_var("FASTNET_TRUST_PIN_SHA256");
    std::env::remove_var("FASTNET_TRUST_CA_FILE");
    assert!(connect(port).is_null());
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_UNTRUSTED_SERVER as i32
    );

    // A pinned fingerprint.
    std::env::set_var(
        "FASTNET_TRUST_PIN_SHA256",
        server.fingerprint.to_str().unwrap(),
    );
    let c = connect(port);
    assert!(!c.is_null(), "{}", last_error());
    assert_eq!(poll_client(c).unwrap().kind, FASTNET_EVENT_CONNECTED);
    assert_eq!(fastnet_client_disconnect(c), 0);

    // Another fingerprint.
    std::env::set_var("FASTNET_TRUST_PIN_SHA256", "AB".repeat(32));
    assert!(connect(port).is_null());
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_UNTRUSTED_SERVER as i32
    );

    // A CA file, and both at once (refused).
    let dir = std::env::temp_dir().join(format!("fastnet-capi-env-{}", std::process::id()));
    let files = dev.write_pem(&dir).unwrap();
    std::env::set_var("FASTNET_TRUST_CA_FILE", &files.cert);
    assert!(connect(port).is_null());
    assert_eq!(
        fastnet_last_error_code(),
        FASTNET_ERROR_INVALID_ARGUMENT as i32
    );
    std::env::remove_var("FASTNET_TRUST_PIN_SHA256");
    let c = connect(port);
    assert!(!c.is_null(), "{}", last_error());
    assert_eq!(fastnet_client_disconnect(c), 0);
    std::env::remove_var("FASTNET_TRUST_CA_FILE");
    let _ = std::fs::remove_dir_all(&dir);
}
