//! quinn 0.11 (QUIC datagrams) on tokio current-thread runtimes: the server
//! side of `serve quinn`, and the client's connect and ping-pong. The server
//! presents a self-signed rcgen certificate; the client trusts exactly that
//! certificate (it is its only root), so the server's identity is checked.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::server::{from_hex, ready, to_hex, Mode};
use crate::{fail, BenchResult};

/// `serve quinn <mode>`: accepts connections and echoes their datagrams.
pub fn serve(mode: Mode) -> BenchResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        let der = cert.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let config = quinn::ServerConfig::with_single_cert(vec![der.clone()], key)?;
        let endpoint = quinn::Endpoint::server(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        ready(&[
            ("udp", endpoint.local_addr()?.port().to_string()),
            ("cert", to_hex(&der)),
        ]);
        while let Some(incoming) = endpoint.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok(datagram) = conn.read_datagram().await {
                    if mode == Mode::Echo && conn.send_datagram(datagram).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(())
    })
}

/// A client endpoint that trusts only the server's certificate (hex DER).
pub fn client_endpoint(cert_hex: &str) -> BenchResult<quinn::Endpoint> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(from_hex(cert_hex)?))?;
    let config = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
    let mut endpoint = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// Connects (full TLS 1.3 handshake, certificate verified) and returns the
/// connection with the time it took.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    port: u16,
) -> BenchResult<(quinn::Connection, Duration)> {
    let t = Instant::now();
    let conn = endpoint
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), "localhost")?
        .await?;
    Ok((conn, t.elapsed()))
}

/// One datagram ping-pong; returns the round-trip time.
pub async fn ping(conn: &quinn::Connection, payload: &Bytes) -> BenchResult<Duration> {
    let t = Instant::now();
    conn.send_datagram(payload.clone())?;
    let back = tokio::time::timeout(Duration::from_secs(5), conn.read_datagram())
        .await
        .map_err(|_| fail("quinn: no echo within 5 s"))??;
    let rtt = t.elapsed();
    if back.len() != payload.len() {
        return Err(fail("quinn: echo of the wrong size"));
    }
    Ok(rtt)
}
