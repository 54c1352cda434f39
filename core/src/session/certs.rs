//! Certificates and private keys for the session handshake: loading them from
//! PEM files or text ([`load_certs`], [`load_private_key`], [`certs_from_pem`],
//! [`private_key_from_pem`]), and self-signed development certificates
//! generated on the spot ([`DevCertificate`]) so that a game can be tested
//! without a CA.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use thiserror::Error;

use super::trust::{certificate_sha256, format_sha256, SHA256_FINGERPRINT_BYTES};

/// File name [`DevCertificate::write_pem`] gives the certificate.
pub const DEV_CERT_PEM_FILE: &str = "fastnet-dev-cert.pem";
/// File name [`DevCertificate::write_pem`] gives the private key.
pub const DEV_KEY_PEM_FILE: &str = "fastnet-dev-key.pem";
/// Common name of development certificates.
const DEV_COMMON_NAME: &str = "FastNet development certificate";

/// Every `CERTIFICATE` section of a PEM file, in order (a server's chain: its
/// own certificate first, then the intermediates). A file without any is an
/// error of kind `InvalidData`; every error names the file.
pub fn load_certs(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(&path.display().to_string(), e))?;
    non_empty(certs, &path.display().to_string())
}

/// Every `CERTIFICATE` section of PEM text, in order. Text without any is an
/// error of kind `InvalidData`.
pub fn certs_from_pem(pem_text: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("PEM text", e))?;
    non_empty(certs, "PEM text")
}

/// The first private key of a PEM file: PKCS#8 (`PRIVATE KEY`), PKCS#1
/// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Encrypted keys are not
/// supported. Every error names the file.
pub fn load_private_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| key_error(&path.display().to_string(), e))
}

/// The first private key of PEM text (PKCS#8, PKCS#1 or SEC1, as
/// [`load_private_key`]).
pub fn private_key_from_pem(pem_text: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem_text).map_err(|e| key_error("PEM text", e))
}

/// `certs`, or an `InvalidData` error saying that `source` holds none.
fn non_empty(
    certs: Vec<CertificateDer<'static>>,
    source: &str,
) -> io::Result<Vec<CertificateDer<'static>>> {
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{source}: no CERTIFICATE section found"),
        ));
    }
    Ok(certs)
}

/// A PEM error as an `io::Error` naming `source`; I/O errors keep their kind.
fn pem_error(source: &str, error: pem::Error) -> io::Error {
    match error {
        pem::Error::Io(e) => io::Error::new(e.kind(), format!("{source}: {e}")),
        other => io::Error::new(io::ErrorKind::InvalidData, format!("{source}: {other}")),
    }
}

/// [`pem_error`], saying which sections were looked for when none was found.
fn key_error(source: &str, error: pem::Error) -> io::Error {
    match error {
        pem::Error::NoItemsFound => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{source}: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section found \
                 (encrypted keys are not supported)"
            ),
        ),
        other => pem_error(source, other),
    }
}

/// A self-signed certificate and its key, generated for development and tests:
/// ECDSA P-256, valid from 1975 to 4096 (a test session never fails on a clock),
/// with the given names as subject alternative names (IP literals as IP
/// addresses). Clients trust it with [`ServerTrust::PinnedSha256`] of
/// [`DevCertificate::sha256`] or [`ServerTrust::Ca`] of
/// [`DevCertificate::cert`].
///
/// Never use one in production: its key lives in memory and in the PEM files
/// you write, and it never expires.
///
/// [`ServerTrust::PinnedSha256`]: super::ServerTrust::PinnedSha256
/// [`ServerTrust::Ca`]: super::ServerTrust::Ca
pub struct DevCertificate {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// Its private key (PKCS#8 DER).
    pub key: PrivateKeyDer<'static>,
    /// The certificate as PEM text (`CERTIFICATE`).
    pub cert_pem: String,
    /// The private key as PEM text (`PRIVATE KEY`).
    pub key_pem: String,
    /// SHA-256 of the certificate's DER, for [`ServerTrust::PinnedSha256`](super::ServerTrust::PinnedSha256).
    pub sha256: [u8; SHA256_FINGERPRINT_BYTES],
}

/// Why [`DevCertificate::generate`] failed.
#[derive(Debug, Error)]
pub enum DevCertificateError {
    /// No name was given: the certificate would be valid for no server.
    #[error("a development certificate needs at least one name (such as \"localhost\")")]
    NoNames,
    /// A name is neither an IP address nor a valid DNS name.
    #[error("{name:?} is neither an IP address nor a valid DNS name: {error}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// rcgen's reason.
        error: rcgen::Error,
    },
    /// Generating the key or signing the certificate failed.
    #[error("generating the development certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Where [`DevCertificate::write_pem`] put the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevPemFiles {
    /// The certificate, `<dir>/fastnet-dev-cert.pem`.
    pub cert: PathBuf,
    /// The private key, `<dir>/fastnet-dev-key.pem` (mode 0600 on Unix).
    pub key: PathBuf,
}

impl DevCertificate {
    /// A new key pair and self-signed certificate valid for `names`: host names
    /// (`"localhost"`, `"game.example"`) and IP literals (`"127.0.0.1"`,
    /// `"::1"`, also written `"[::1]"`), which become IP address names.
    pub fn generate(names: &[&str]) -> Result<Self, DevCertificateError> {
        if names.is_empty() {
            return Err(DevCertificateError::NoNames);
        }
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, DEV_COMMON_NAME);
        for name in names {
            let bare = name
                .strip_prefix('[')
                .and_then(|n| n.strip_suffix(']'))
                .unwrap_or(name);
            let san = match bare.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(bare.to_string().try_into().map_err(|error| {
                    DevCertificateError::InvalidName {
                        name: (*name).to_string(),
                        error,
                    }
                })?),
            };
            params.subject_alt_names.push(san);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let certificate = params.self_signed(&key_pair)?;
        let cert = certificate.der().clone();
        Ok(Self {
            sha256: certificate_sha256(&cert),
            cert_pem: certificate.pem(),
            key_pem: key_pair.serialize_pem(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der())),
            cert,
        })
    }

    /// The fingerprint as `"AB:CD:..."`, to print for clients that pin it.
    pub fn sha256_hex(&self) -> String {
        format_sha256(&self.sha256)
    }

    /// Writes the certificate and the key as PEM files into `dir` (created if
    /// missing; existing files are replaced), the key readable by its owner only
    /// on Unix. They load back with [`load_certs`] and [`load_private_key`].
    pub fn write_pem(&self, dir: impl AsRef<Path>) -> io::Result<DevPemFiles> {
        let dir = dir.as_ref();
        fs::create_dir_all(dir)?;
        let files = DevPemFiles {
            cert: dir.join(DEV_CERT_PEM_FILE),
            key: dir.join(DEV_KEY_PEM_FILE),
        };
        fs::write(&files.cert, &self.cert_pem)?;
        write_private_file(&files.key, self.key_pem.as_bytes())?;
        Ok(files)
    }
}

/// Writes `bytes` to `path`, readable and writable by the owner only on Unix.
fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // Owner read and write only: the mode of a private key file.
        const PRIVATE_FILE_MODE: u32 = 0o600;
        options.mode(PRIVATE_FILE_MODE);
        let mut file = options.open(path)?;
        // `mode` only applies to a file that did not exist yet.
        file.set_permissions(fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
        file.write_all(bytes)
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(bytes)
    }
}

impl Clone for DevCertificate {
    fn clone(&self) -> Self {
        Self {
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            sha256: self.sha256,
        }
    }
}

impl fmt::Debug for DevCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCertificate")
            .field("sha256", &self.sha256_hex())
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::test_util::TempDir;

    #[test]
    fn dev_certificate_round_trips_through_pem_files() {
        let dev = DevCertificate::generate(&["localhost", "127.0.0.1", "[::1]"]).unwrap();
        assert_eq!(dev.sha256, certificate_sha256(&dev.cert));
        assert!(dev.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(dev.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let dir = TempDir::new("pem");
        let files = dev.write_pem(dir.0.join("nested")).unwrap();
        assert_eq!(load_certs(&files.cert).unwrap(), vec![dev.cert.clone()]);
        let key = load_private_key(&files.key).unwrap();
        assert_eq!(key.secret_der(), dev.key.secret_der());
        assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Writing again replaces the files.
        let other = DevCertificate::generate(&["localhost"]).unwrap();
        other.write_pem(dir.0.join("nested")).unwrap();
        assert_eq!(load_certs(&files.cert).unwrap(), vec![other.cert.clone()]);
        assert_ne!(other.sha256, dev.sha256);
    }

    #[test]
    fn dev_certificate_names_are_checked() {
        assert!(matches!(
            DevCertificate::generate(&[]),
            Err(DevCertificateError::NoNames)
        ));
        let err = DevCertificate::generate(&["localhost", "not a name\u{7f}é"]).unwrap_err();
        assert!(
            matches!(err, DevCertificateError::InvalidName { .. }),
            "{err}"
        );
    }

    #[test]
    fn private_keys_of_every_pem_kind_load() {
        // The loader does not parse the key itself: any DER body shows the mapping.
        let body = "AAECAwQ="; // bytes 0, 1, 2, 3, 4
        let pem = |label: &str| format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
        let key = private_key_from_pem(pem("PRIVATE KEY").as_bytes()).unwrap();
        assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
        let key = private_key_from_pem(pem("RSA PRIVATE KEY").as_bytes()).unwrap();
        assert!(matches!(key, PrivateKeyDer::Pkcs1(_)));
        let key = private_key_from_pem(pem("EC PRIVATE KEY").as_bytes()).unwrap();
        assert!(matches!(key, PrivateKeyDer::Sec1(_)));
        assert_eq!(key.secret_der(), &[0, 1, 2, 3, 4]);
    }

    #[test]
    fn loader_errors_name_the_problem() {
        let err = private_key_from_pem(b"nothing here").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        let err = certs_from_pem(b"-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let missing = std::env::temp_dir().join("fastnet-surely-missing-dir/cert.pem");
        let err = load_certs(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("fastnet-surely-missing-dir"),
            "{err}"
        );
        let err = load_private_key(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = certs_from_pem(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
