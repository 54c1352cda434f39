//! How a client decides to trust a FastNet server ([`ServerTrust`]): the Mozilla
//! roots, its own CA or self-signed certificates, a pinned SHA-256 certificate
//! fingerprint, or (for experiments only) nothing at all. This module owns the
//! certificate verifiers handed to rustls and the fingerprint helpers
//! ([`certificate_sha256`], [`format_sha256`], [`parse_sha256`]).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use ring::digest;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use thiserror::Error;

use super::certs;

/// Bytes in a SHA-256 certificate fingerprint (256 bits).
pub const SHA256_FINGERPRINT_BYTES: usize = 32;
/// Characters of a fingerprint written as plain hex: two per byte (64).
const PLAIN_HEX_CHARS: usize = 2 * SHA256_FINGERPRINT_BYTES;
/// Characters of a fingerprint written as colon-separated hex pairs, `AB:CD:...`:
/// two per byte and a colon between bytes (95).
const COLON_HEX_CHARS: usize = 3 * SHA256_FINGERPRINT_BYTES - 1;

/// How a client decides to trust the server it connects to.
///
/// Whatever the choice, the server must prove during the TLS handshake that it
/// holds the private key of the certificate it presents; the variants differ in
/// which certificates are acceptable.
#[derive(Clone, Debug, Default)]
pub enum ServerTrust {
    /// The Mozilla root programme's CAs (from `webpki-roots`); the certificate
    /// must be valid for the server name the client dialled. The default: what
    /// a game server with a public certificate (for example from Let's Encrypt)
    /// needs.
    #[default]
    WebPkiRoots,
    /// Trust these certificates as roots (a private CA, or a server's own
    /// self-signed certificate); the server name is still verified against the
    /// certificate, as are its validity dates.
    Ca(Vec<CertificateDer<'static>>),
    /// Accept exactly the end-entity certificate whose SHA-256 (of its DER
    /// encoding) is this value, whatever its names, issuer and dates. Convenient
    /// for self-hosted and development servers: print the server's fingerprint
    /// ([`format_sha256`]) and configure the client with it.
    PinnedSha256([u8; SHA256_FINGERPRINT_BYTES]),
    /// Accept any certificate: anyone on the path can impersonate the server and
    /// read everything. Only [`ServerTrust::dangerous_accept_any_certificate`]
    /// builds it, and each handshake using it logs a warning.
    DangerousAcceptAnyCertificate(AcceptAnyCertificate),
}

/// Marker carried by [`ServerTrust::DangerousAcceptAnyCertificate`]; it has no
/// public constructor, so the variant can only come from
/// [`ServerTrust::dangerous_accept_any_certificate`].
#[derive(Clone, Debug)]
pub struct AcceptAnyCertificate {
    _private: (),
}

/// A [`ServerTrust`] that cannot be turned into a certificate verifier.
#[derive(Debug, Error)]
pub enum TrustError {
    /// [`ServerTrust::Ca`] with an empty list: no server could ever be trusted.
    #[error("ServerTrust::Ca holds no certificate, so no server could be trusted")]
    NoCaCertificates,
    /// A certificate of [`ServerTrust::Ca`] could not be parsed into a trust anchor.
    #[error("CA certificate {index} (counting from 0) cannot be used as a trust anchor: {error}")]
    BadCaCertificate {
        /// Its position in the list.
        index: usize,
        /// Why rustls refused it.
        error: rustls::Error,
    },
    /// rustls refused to build the WebPKI verifier.
    #[error("building the certificate verifier failed: {0}")]
    Verifier(#[from] VerifierBuilderError),
}

/// The server presented a certificate other than the pinned one (carried inside
/// [`rustls::CertificateError::Other`] when a [`ServerTrust::PinnedSha256`]
/// handshake fails).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error(
    "the server's certificate has SHA-256 {}, but the pinned fingerprint is {}",
    format_sha256(presented),
    format_sha256(expected)
)]
pub struct PinMismatch {
    /// The pinned fingerprint.
    pub expected: [u8; SHA256_FINGERPRINT_BYTES],
    /// The fingerprint of the certificate the server presented.
    pub presented: [u8; SHA256_FINGERPRINT_BYTES],
}

/// A fingerprint string that [`parse_sha256`] cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FingerprintError {
    /// Neither 64 hex digits nor 32 colon-separated hex pairs (95 characters).
    #[error(
        "a SHA-256 fingerprint is {PLAIN_HEX_CHARS} hex digits or {COLON_HEX_CHARS} characters \
         of colon-separated pairs, got {chars} characters"
    )]
    Length {
        /// Characters found (after trimming surrounding whitespace).
        chars: usize,
    },
    /// A character that is not a hex digit, or a misplaced colon.
    #[error("unexpected character {character:?} at position {position} of the fingerprint")]
    InvalidCharacter {
        /// The character.
        character: char,
        /// Its position, counting characters from 0 after trimming.
        position: usize,
    },
}

impl ServerTrust {
    /// [`ServerTrust::Ca`] with the certificates of a PEM file (one or more
    /// `CERTIFICATE` sections).
    pub fn ca_pem_file(path: impl AsRef<Path>) -> io::Result<Self> {
        certs::load_certs(path).map(Self::Ca)
    }

    /// [`ServerTrust::Ca`] with the certificates of PEM text (one or more
    /// `CERTIFICATE` sections).
    pub fn ca_pem(pem: &[u8]) -> io::Result<Self> {
        certs::certs_from_pem(pem).map(Self::Ca)
    }

    /// [`ServerTrust::PinnedSha256`] from a fingerprint written as
    /// [`parse_sha256`] reads it (`"AB:CD:..."` or plain hex).
    pub fn pinned_sha256_hex(fingerprint: &str) -> Result<Self, FingerprintError> {
        parse_sha256(fingerprint).map(Self::PinnedSha256)
    }

    /// Trust any certificate: the connection is encrypted but **not
    /// authenticated**, so anyone able to intercept the TCP connection can
    /// impersonate the server and read and change all traffic. For local
    /// experiments only; prefer [`ServerTrust::PinnedSha256`] with a
    /// [`DevCertificate`](super::DevCertificate). Each handshake made with it
    /// logs a `tracing` warning.
    pub fn dangerous_accept_any_certificate() -> Self {
        Self::DangerousAcceptAnyCertificate(AcceptAnyCertificate { _private: () })
    }

    /// The rustls verifier implementing this policy with `provider`'s signature
    /// algorithms. `server_name` is only used in the warning of the dangerous mode.
    pub(crate) fn verifier(
        &self,
        provider: &Arc<CryptoProvider>,
        server_name: &str,
    ) -> Result<Arc<dyn ServerCertVerifier>, TrustError> {
        let algorithms = provider.signature_verification_algorithms;
        match self {
            Self::WebPkiRoots => {
                let roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                webpki_verifier(roots, provider)
            }
            Self::Ca(certificates) => {
                if certificates.is_empty() {
                    return Err(TrustError::NoCaCertificates);
                }
                let mut roots = RootCertStore::empty();
                for (index, certificate) in certificates.iter().enumerate() {
                    roots
                        .add(certificate.clone())
                        .map_err(|error| TrustError::BadCaCertificate { index, error })?;
                }
                webpki_verifier(roots, provider)
            }
            Self::PinnedSha256(pin) => Ok(Arc::new(PinnedVerifier {
                pin: *pin,
                algorithms,
            })),
            Self::DangerousAcceptAnyCertificate(_) => {
                tracing::warn!(
                    server = server_name,
                    "ServerTrust::dangerous_accept_any_certificate: the server's certificate is \
                     NOT verified; anyone on the network path can impersonate it"
                );
                Ok(Arc::new(AnyCertificateVerifier { algorithms }))
            }
        }
    }
}

/// A WebPKI verifier (chain to `roots`, name, dates) using `provider`'s algorithms.
fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, TrustError> {
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    Ok(verifier)
}

/// SHA-256 of a certificate's DER encoding: the fingerprint that
/// [`ServerTrust::PinnedSha256`] compares and that `openssl x509 -fingerprint
/// -sha256` prints.
pub fn certificate_sha256(cert: &CertificateDer<'_>) -> [u8; SHA256_FINGERPRINT_BYTES] {
    let mut out = [0u8; SHA256_FINGERPRINT_BYTES];
    out.copy_from_slice(digest::digest(&digest::SHA256, cert.as_ref()).as_ref());
    out
}

/// A fingerprint as upper-case colon-separated hex pairs, `"AB:CD:...:EF"` (95
/// characters), the form OpenSSL prints.
pub fn format_sha256(fingerprint: &[u8; SHA256_FINGERPRINT_BYTES]) -> String {
    let mut out = String::with_capacity(COLON_HEX_CHARS);
    for (i, byte) in fingerprint.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// Reads a fingerprint written as 64 hex digits or as 32 colon-separated hex
/// pairs (`"AB:CD:..."`), in either case; surrounding whitespace is ignored.
pub fn parse_sha256(text: &str) -> Result<[u8; SHA256_FINGERPRINT_BYTES], FingerprintError> {
    let chars: Vec<char> = text.trim().chars().collect();
    let separated = match chars.len() {
        PLAIN_HEX_CHARS => false,
        COLON_HEX_CHARS => true,
        n => return Err(FingerprintError::Length { chars: n }),
    };
    let mut digits = Vec::with_capacity(PLAIN_HEX_CHARS);
    for (position, &character) in chars.iter().enumerate() {
        let wants_colon = separated && position % 3 == 2;
        let invalid = FingerprintError::InvalidCharacter {
            character,
            position,
        };
        if wants_colon {
            if character != ':' {
                return Err(invalid);
            }
        } else {
            // A hex digit's value is at most 15, so it fits a byte.
            digits.push(character.to_digit(16).ok_or(invalid)? as u8);
        }
    }
    let mut out = [0u8; SHA256_FINGERPRINT_BYTES];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Ok(out)
}

/// Verifier of [`ServerTrust::PinnedSha256`]: the end-entity certificate must
/// have the pinned SHA-256; the handshake signature is verified as usual.
struct PinnedVerifier {
    pin: [u8; SHA256_FINGERPRINT_BYTES],
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PinnedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedVerifier")
            .field("pin", &format_sha256(&self.pin))
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = certificate_sha256(end_entity);
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let mismatch = PinMismatch {
                expected: self.pin,
                presented,
            };
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(mismatch)),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Verifier of [`ServerTrust::DangerousAcceptAnyCertificate`]: any certificate
/// is accepted. The handshake signature is still checked against it, which
/// proves nothing about who the server is but keeps the handshake well-formed.
#[derive(Debug)]
struct AnyCertificateVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificateVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format_and_parse_round_trip() {
        let fp: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let text = format_sha256(&fp);
        assert_eq!(text.len(), COLON_HEX_CHARS);
        assert!(text.starts_with("05:2A:4F:"));
        assert_eq!(parse_sha256(&text), Ok(fp));
        assert_eq!(parse_sha256(&text.to_lowercase()), Ok(fp));
        let plain: String = text.split(':').collect();
        assert_eq!(parse_sha256(&format!("  {plain}\n")), Ok(fp));
    }

    #[test]
    fn fingerprint_parse_errors_say_where() {
        assert_eq!(
            parse_sha256("abcd"),
            Err(FingerprintError::Length { chars: 4 })
        );
        let mut plain = "0".repeat(64);
        plain.replace_range(10..11, "g");
        assert_eq!(
            parse_sha256(&plain),
            Err(FingerprintError::InvalidCharacter {
                character: 'g',
                position: 10
            })
        );
        let text = format_sha256(&[0xab; 32]).replacen(':', "-", 1);
        assert_eq!(
            parse_sha256(&text),
            Err(FingerprintError::InvalidCharacter {
                character: '-',
                position: 2
            })
        );
        // A colon where a digit belongs.
        let text = format!(":{}", &format_sha256(&[0xab; 32])[1..]);
        assert!(matches!(
            parse_sha256(&text),
            Err(FingerprintError::InvalidCharacter {
                character: ':',
                position: 0
            })
        ));
    }

    #[test]
    fn certificate_sha256_is_sha256_of_der() {
        // SHA-256 of the empty string (FIPS 180-2 test vector).
        let empty = CertificateDer::from(Vec::new());
        assert_eq!(
            format_sha256(&certificate_sha256(&empty)),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:\
             27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn empty_ca_list_is_refused() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let err = ServerTrust::Ca(Vec::new())
            .verifier(&provider, "localhost")
            .unwrap_err();
        assert!(matches!(err, TrustError::NoCaCertificates));
        let err = ServerTrust::Ca(vec![CertificateDer::from(vec![1, 2, 3])])
            .verifier(&provider, "localhost")
            .unwrap_err();
        assert!(
            matches!(err, TrustError::BadCaCertificate { index: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn default_is_webpki_roots() {
        assert!(matches!(ServerTrust::default(), ServerTrust::WebPkiRoots));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        ServerTrust::default()
            .verifier(&provider, "example.com")
            .unwrap();
    }
}
