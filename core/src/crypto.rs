//! Per-packet protection (PROTOCOL.md §2 and §2.1): this module owns the
//! directional [`Secret`]s and their HKDF derivations (packet key, IV and the
//! secret of the next key phase), and the ChaCha20-Poly1305 sealing and opening of
//! one packet in place in the datagram buffer, without copying or allocating. It
//! knows nothing about key phases (see `keys`) or about the header layout: the
//! caller passes the header bytes to authenticate and the full packet number.

use ring::{aead, hkdf};
use zeroize::Zeroize;

/// Size of a directional secret and of a ChaCha20-Poly1305 key, in bytes (256-bit
/// keys, PROTOCOL.md §2).
pub const KEY_BYTES: usize = 32;

/// Size of the per-direction IV and of the AEAD nonce, in bytes (the 96-bit
/// ChaCha20-Poly1305 nonce of RFC 8439).
pub const IV_BYTES: usize = 12;

/// Size of the authentication tag appended to every packet, in bytes (the 128-bit
/// Poly1305 tag).
pub const TAG_BYTES: usize = 16;

/// Bytes of the nonce that the packet number is XORed into: the last 8 of the 12
/// (a 64-bit big-endian packet number, left-padded with zeros, PROTOCOL.md §2).
const PACKET_NUMBER_BYTES: usize = 8;

/// Bytes of the nonce before the packet number's: the IV's, as they are.
const IV_HEAD_BYTES: usize = IV_BYTES - PACKET_NUMBER_BYTES;

/// HKDF-Expand label of the packet key (PROTOCOL.md §2.1), used as the raw `info`.
const LABEL_KEY: &[u8] = b"fastnet v1 key";
/// HKDF-Expand label of the per-direction IV (PROTOCOL.md §2.1).
const LABEL_IV: &[u8] = b"fastnet v1 iv";
/// HKDF-Expand label of the next key phase's secret (PROTOCOL.md §2.1).
const LABEL_KEY_UPDATE: &[u8] = b"fastnet v1 ku";

/// Why a packet could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The tag did not verify: wrong key, wrong packet number, or a modified
    /// header, ciphertext or tag.
    #[error("packet authentication failed")]
    AuthenticationFailed,
    /// The buffer is shorter than the authentication tag.
    #[error("packet shorter than the authentication tag")]
    TooShort,
}

/// A 32-byte directional secret (the `S` of PROTOCOL.md §2.1).
///
/// The bytes are erased when the value is dropped and never appear in its
/// `Debug` output.
#[derive(Clone)]
pub struct Secret([u8; KEY_BYTES]);

impl Secret {
    /// Wraps the secret produced by the handshake (or a test).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Secret {
        Secret(bytes)
    }

    /// The secret of the next key phase: `HKDF-Expand(S, "fastnet v1 ku", 32)`.
    pub fn next(&self) -> Secret {
        let mut out = [0u8; KEY_BYTES];
        self.expand(LABEL_KEY_UPDATE, &mut out);
        Secret(out)
    }

    /// `HKDF-Expand(S, label, out.len())` with HKDF-SHA256, `S` used directly as
    /// the pseudorandom key.
    fn expand(&self, label: &[u8], out: &mut [u8]) {
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &self.0);
        let info = [label];
        // HKDF-Expand only fails for outputs longer than 255 hash blocks (8160
        // bytes); ours are 12 or 32 bytes.
        prk.expand(&info, OutputLen(out.len()))
            .and_then(|okm| okm.fill(out))
            .expect("HKDF-Expand output of at most 32 bytes");
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The raw bytes of one packet key, `HKDF-Expand(S, "fastnet v1 key", 32)`.
///
/// The key phases keep keys they use only now and then (the previous and the
/// next receive key) as these 32 bytes rather than as an expanded [`PacketKey`]
/// (560 bytes with ring): making a `PacketKey` from them is a copy for
/// ChaCha20-Poly1305, no key derivation. Erased on drop; never in `Debug`
/// output.
#[derive(Clone)]
pub(crate) struct PacketKeyBytes([u8; KEY_BYTES]);

impl PacketKeyBytes {
    /// The packet key of `secret`.
    pub(crate) fn derive(secret: &Secret) -> PacketKeyBytes {
        let mut key = [0u8; KEY_BYTES];
        secret.expand(LABEL_KEY, &mut key);
        PacketKeyBytes(key)
    }
}

impl Drop for PacketKeyBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for PacketKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PacketKeyBytes(<redacted>)")
    }
}

/// Output length for ring's HKDF-Expand.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// The per-direction IV: `HKDF-Expand(S, "fastnet v1 iv", 12)` of the *first*
/// secret of the direction. It is kept across key updates (PROTOCOL.md §2.1).
pub fn derive_iv(initial: &Secret) -> [u8; IV_BYTES] {
    let mut iv = [0u8; IV_BYTES];
    initial.expand(LABEL_IV, &mut iv);
    iv
}

/// Which ChaCha20-Poly1305 implementation seals and opens packets. Both produce
/// identical bytes; ring is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AeadBackend {
    /// ring's `LessSafeKey` with `CHACHA20_POLY1305`.
    #[default]
    Ring,
    /// RustCrypto's `chacha20poly1305::ChaCha20Poly1305`.
    #[cfg(feature = "rustcrypto")]
    RustCrypto,
}

/// The expanded AEAD key of one backend.
// ring's key (544 bytes: room for any of its algorithms) is the default and
// is used on every packet; boxing it would add an indirection there to save
// memory only in the optional backend's keys.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum AeadKey {
    Ring(aead::LessSafeKey),
    #[cfg(feature = "rustcrypto")]
    RustCrypto(chacha20poly1305::ChaCha20Poly1305),
}

/// The packet protection of one direction and one key generation: the AEAD key
/// and the direction's IV.
#[derive(Clone)]
pub struct PacketKey {
    key: AeadKey,
    /// The IV, split where the packet number goes (see [`PacketKey::nonce`]):
    /// its first bytes, and its last 8 as a big-endian integer, so a nonce
    /// takes one 64-bit XOR.
    iv_head: [u8; IV_HEAD_BYTES],
    iv_tail: u64,
}

impl std::fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketKey")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl PacketKey {
    /// The key of `secret` (`HKDF-Expand(S, "fastnet v1 key", 32)`) with the
    /// direction's `iv` (from [`derive_iv`] on the direction's first secret).
    pub fn new(secret: &Secret, iv: [u8; IV_BYTES], backend: AeadBackend) -> PacketKey {
        PacketKey::from_bytes(&PacketKeyBytes::derive(secret), iv, backend)
    }

    /// The key of already derived key bytes (see [`PacketKeyBytes`]).
    pub(crate) fn from_bytes(
        key: &PacketKeyBytes,
        iv: [u8; IV_BYTES],
        backend: AeadBackend,
    ) -> PacketKey {
        PacketKey::from_raw(key.0, iv, backend)
    }

    /// A key from raw key and IV bytes (test vectors; the protocol derives keys
    /// with [`PacketKey::new`]).
    pub fn from_raw(key: [u8; KEY_BYTES], iv: [u8; IV_BYTES], backend: AeadBackend) -> PacketKey {
        let mut key = key;
        let aead_key = match backend {
            AeadBackend::Ring => {
                // Only fails for a key of the wrong length; ours is 32 bytes.
                let unbound = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &key)
                    .expect("32-byte ChaCha20-Poly1305 key");
                AeadKey::Ring(aead::LessSafeKey::new(unbound))
            }
            #[cfg(feature = "rustcrypto")]
            AeadBackend::RustCrypto => {
                use chacha20poly1305::KeyInit;
                AeadKey::RustCrypto(chacha20poly1305::ChaCha20Poly1305::new(
                    chacha20poly1305::Key::from_slice(&key),
                ))
            }
        };
        key.zeroize();
        let (iv_head, iv_tail) = iv.split_at(IV_HEAD_BYTES);
        PacketKey {
            key: aead_key,
            iv_head: iv_head.try_into().expect("split at IV_HEAD_BYTES"),
            iv_tail: u64::from_be_bytes(iv_tail.try_into().expect("8 bytes after the head")),
        }
    }

    /// The implementation this key uses.
    pub fn backend(&self) -> AeadBackend {
        match self.key {
            AeadKey::Ring(_) => AeadBackend::Ring,
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(_) => AeadBackend::RustCrypto,
        }
    }

    /// The nonce of `packet_number`: the IV XORed with the packet number as 8
    /// big-endian bytes in its last 8 bytes.
    #[inline]
    fn nonce(&self, packet_number: u64) -> [u8; IV_BYTES] {
        let mut nonce = [0u8; IV_BYTES];
        let (head, tail) = nonce.split_at_mut(IV_HEAD_BYTES);
        head.copy_from_slice(&self.iv_head);
        tail.copy_from_slice(&(self.iv_tail ^ packet_number).to_be_bytes());
        nonce
    }

    /// Encrypts `payload` in place, authenticating `header` as associated data,
    /// and returns the tag to append after it.
    ///
    /// The caller guarantees that `packet_number` is never used twice with this
    /// key (packet numbers never repeat within a direction).
    ///
    /// # Panics
    ///
    /// If `payload` is longer than ChaCha20 can encrypt under one nonce (about
    /// 256 GiB), which no datagram comes close to.
    pub fn seal_in_place(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> [u8; TAG_BYTES] {
        let nonce = self.nonce(packet_number);
        let mut out = [0u8; TAG_BYTES];
        match &self.key {
            AeadKey::Ring(key) => {
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(header),
                        payload,
                    )
                    .expect("payload within the ChaCha20 length limit");
                out.copy_from_slice(tag.as_ref());
            }
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(key) => {
                use chacha20poly1305::AeadInPlace;
                let tag = key
                    .encrypt_in_place_detached(
                        chacha20poly1305::Nonce::from_slice(&nonce),
                        header,
                        payload,
                    )
                    .expect("payload within the ChaCha20 length limit");
                out.copy_from_slice(&tag);
            }
        }
        out
    }

    /// Authenticates `header` and the ciphertext followed by its 16-byte tag, and
    /// decrypts the ciphertext in place. Returns the plaintext length
    /// (`payload_and_tag.len() - TAG_BYTES`): the plaintext is
    /// `payload_and_tag[..len]`.
    ///
    /// On failure the content of `payload_and_tag` is unspecified (it may be
    /// partly decrypted) and must be discarded.
    pub fn open_in_place(
        &self,
        packet_number: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, CryptoError> {
        let len = payload_and_tag
            .len()
            .checked_sub(TAG_BYTES)
            .ok_or(CryptoError::TooShort)?;
        let (ciphertext, tag) = payload_and_tag.split_at_mut(len);
        let tag: &[u8; TAG_BYTES] = (&*tag).try_into().expect("split TAG_BYTES from the end");
        let nonce = self.nonce(packet_number);
        match &self.key {
            AeadKey::Ring(key) => {
                key.open_in_place_separate_tag(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(header),
                    aead::Tag::from(*tag),
                    ciphertext,
                    0..,
                )
                .map_err(|_| CryptoError::AuthenticationFailed)?;
            }
            #[cfg(feature = "rustcrypto")]
            AeadKey::RustCrypto(key) => {
                use chacha20poly1305::AeadInPlace;
                key.decrypt_in_place_detached(
                    chacha20poly1305::Nonce::from_slice(&nonce),
                    header,
                    ciphertext,
                    chacha20poly1305::Tag::from_slice(tag),
                )
                .map_err(|_| CryptoError::AuthenticationFailed)?;
            }
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.8.2: key 80..9f.
    fn rfc_key() -> [u8; KEY_BYTES] {
        let mut key = [0u8; KEY_BYTES];
        for (i, b) in key.iter_mut().enumerate() {
            *b = 0x80 + i as u8;
        }
        key
    }

    const RFC_NONCE: [u8; IV_BYTES] = [
        0x07, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
    ];
    const RFC_AAD: [u8; 12] = [
        0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
    ];
    const RFC_PLAINTEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    const RFC_CIPHERTEXT: [u8; 114] = [
        0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb, 0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e,
        0xc2, 0xa4, 0xad, 0xed, 0x51, 0x29, 0x6e, 0x08, 0xfe, 0xa9, 0xe2, 0xb5, 0xa7, 0x36, 0xee,
        0x62, 0xd6, 0x3d, 0xbe, 0xa4, 0x5e, 0x8c, 0xa9, 0x67, 0x12, 0x82, 0xfa, 0xfb, 0x69, 0xda,
        0x92, 0x72, 0x8b, 0x1a, 0x71, 0xde, 0x0a, 0x9e, 0x06, 0x0b, 0x29, 0x05, 0xd6, 0xa5, 0xb6,
        0x7e, 0xcd, 0x3b, 0x36, 0x92, 0xdd, 0xbd, 0x7f, 0x2d, 0x77, 0x8b, 0x8c, 0x98, 0x03, 0xae,
        0xe3, 0x28, 0x09, 0x1b, 0x58, 0xfa, 0xb3, 0x24, 0xe4, 0xfa, 0xd6, 0x75, 0x94, 0x55, 0x85,
        0x80, 0x8b, 0x48, 0x31, 0xd7, 0xbc, 0x3f, 0xf4, 0xde, 0xf0, 0x8e, 0x4b, 0x7a, 0x9d, 0xe5,
        0x76, 0xd2, 0x65, 0x86, 0xce, 0xc6, 0x4b, 0x61, 0x16,
    ];
    const RFC_TAG: [u8; TAG_BYTES] = [
        0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06,
        0x91,
    ];

    fn backends() -> Vec<AeadBackend> {
        vec![
            AeadBackend::Ring,
            #[cfg(feature = "rustcrypto")]
            AeadBackend::RustCrypto,
        ]
    }

    /// Seals the RFC plaintext with `key` at `pn` and returns ciphertext || tag.
    fn seal_rfc(key: &PacketKey, pn: u64) -> Vec<u8> {
        let mut buf = RFC_PLAINTEXT.to_vec();
        let tag = key.seal_in_place(pn, &RFC_AAD, &mut buf);
        buf.extend_from_slice(&tag);
        buf
    }

    fn expected_rfc() -> Vec<u8> {
        let mut v = RFC_CIPHERTEXT.to_vec();
        v.extend_from_slice(&RFC_TAG);
        v
    }

    #[test]
    fn rfc8439_vector_iv_is_nonce() {
        for backend in backends() {
            let key = PacketKey::from_raw(rfc_key(), RFC_NONCE, backend);
            let mut sealed = seal_rfc(&key, 0);
            assert_eq!(sealed, expected_rfc(), "{backend:?}");
            let len = key.open_in_place(0, &RFC_AAD, &mut sealed).unwrap();
            assert_eq!(&sealed[..len], RFC_PLAINTEXT, "{backend:?}");
        }
    }

    #[test]
    fn rfc8439_vector_packet_number_in_last_8_nonce_bytes() {
        // IV 07000000 00000000 00000000 XOR packet number 0x4041424344454647
        // (big-endian, last 8 bytes) is the RFC nonce.
        let mut iv = [0u8; IV_BYTES];
        iv[0] = 0x07;
        for backend in backends() {
            let key = PacketKey::from_raw(rfc_key(), iv, backend);
            assert_eq!(seal_rfc(&key, 0x4041_4243_4445_4647), expected_rfc());
        }
    }

    #[test]
    fn tampering_fails_authentication() {
        for backend in backends() {
            let key = PacketKey::from_raw(rfc_key(), RFC_NONCE, backend);
            let sealed = seal_rfc(&key, 0);
            // Every bit of ciphertext and tag.
            for bit in 0..sealed.len() * 8 {
                let mut buf = sealed.clone();
                buf[bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    key.open_in_place(0, &RFC_AAD, &mut buf),
                    Err(CryptoError::AuthenticationFailed)
                );
            }
            // Every bit of the header.
            for bit in 0..RFC_AAD.len() * 8 {
                let mut header = RFC_AAD;
                header[bit / 8] ^= 1 << (bit % 8);
                let mut buf = sealed.clone();
                assert_eq!(
                    key.open_in_place(0, &header, &mut buf),
                    Err(CryptoError::AuthenticationFailed)
                );
            }
        }
    }

    #[test]
    fn wrong_packet_number_fails() {
        for backend in backends() {
            let key = PacketKey::from_raw(rfc_key(), RFC_NONCE, backend);
            let sealed = seal_rfc(&key, 7);
            for pn in [0, 6, 8, 7 | (1 << 32), u64::MAX] {
                let mut buf = sealed.clone();
                assert_eq!(
                    key.open_in_place(pn, &RFC_AAD, &mut buf),
                    Err(CryptoError::AuthenticationFailed)
                );
            }
            let mut buf = sealed.clone();
            assert!(key.open_in_place(7, &RFC_AAD, &mut buf).is_ok());
        }
    }

    #[test]
    fn too_short_and_empty_payload() {
        for backend in backends() {
            let key = PacketKey::from_raw(rfc_key(), RFC_NONCE, backend);
            let mut short = [0u8; TAG_BYTES - 1];
            assert_eq!(
                key.open_in_place(0, b"h", &mut short),
                Err(CryptoError::TooShort)
            );
            let tag = key.seal_in_place(3, b"h", &mut []);
            let mut buf = tag;
            assert_eq!(key.open_in_place(3, b"h", &mut buf), Ok(0));
        }
    }

    #[test]
    fn secret_next_is_deterministic_and_differs() {
        let s = Secret::from_bytes([0x42; KEY_BYTES]);
        let n1 = s.next();
        let n2 = s.next();
        assert_eq!(n1.0, n2.0);
        assert_ne!(n1.0, s.0);
        assert_ne!(n1.next().0, n1.0);
        assert_ne!(Secret::from_bytes([0x43; KEY_BYTES]).next().0, n1.0);
    }

    /// The labels are used as the raw HKDF `info`: for outputs of at most one
    /// SHA-256 block, HKDF-Expand is `HMAC(S, info || 0x01)` truncated.
    #[test]
    fn derivations_match_hkdf_expand_definition() {
        use ring::hmac;
        let bytes = [0x5a; KEY_BYTES];
        let s = Secret::from_bytes(bytes);
        let expand = |label: &[u8]| {
            let k = hmac::Key::new(hmac::HMAC_SHA256, &bytes);
            let mut ctx = hmac::Context::with_key(&k);
            ctx.update(label);
            ctx.update(&[1]);
            ctx.sign().as_ref().to_vec()
        };
        assert_eq!(s.next().0.to_vec(), expand(b"fastnet v1 ku"));
        assert_eq!(derive_iv(&s).to_vec(), expand(b"fastnet v1 iv")[..IV_BYTES]);
        let mut raw = [0u8; KEY_BYTES];
        raw.copy_from_slice(&expand(b"fastnet v1 key"));
        let iv = derive_iv(&s);
        let derived = PacketKey::new(&s, iv, AeadBackend::Ring);
        let reference = PacketKey::from_raw(raw, iv, AeadBackend::Ring);
        let mut a = *b"payload";
        let mut b = a;
        assert_eq!(
            derived.seal_in_place(9, b"hdr", &mut a),
            reference.seal_in_place(9, b"hdr", &mut b)
        );
        assert_eq!(a, b);
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let s1 = Secret::from_bytes([1; KEY_BYTES]);
        let s2 = Secret::from_bytes([2; KEY_BYTES]);
        let iv = derive_iv(&s1);
        let k1 = PacketKey::new(&s1, iv, AeadBackend::Ring);
        let k2 = PacketKey::new(&s2, iv, AeadBackend::Ring);
        let k1_next = PacketKey::new(&s1.next(), iv, AeadBackend::Ring);
        let mut p1 = [0u8; 32];
        let mut p2 = [0u8; 32];
        let mut p3 = [0u8; 32];
        let t1 = k1.seal_in_place(0, b"", &mut p1);
        let t2 = k2.seal_in_place(0, b"", &mut p2);
        let t3 = k1_next.seal_in_place(0, b"", &mut p3);
        assert_ne!((p1, t1), (p2, t2));
        assert_ne!((p1, t1), (p3, t3));
        assert_ne!(derive_iv(&s1), derive_iv(&s2));
        // And a packet sealed under one does not open under the other.
        let mut buf = p1.to_vec();
        buf.extend_from_slice(&t1);
        assert_eq!(
            k2.open_in_place(0, b"", &mut buf),
            Err(CryptoError::AuthenticationFailed)
        );
    }

    #[test]
    fn debug_does_not_leak_secret() {
        let s = Secret::from_bytes([0xab; KEY_BYTES]);
        let text = format!("{s:?}");
        assert!(!text.contains("171") && !text.to_lowercase().contains("ab,"));
        assert_eq!(text, "Secret(<redacted>)");
        let key = PacketKey::new(&s, derive_iv(&s), AeadBackend::default());
        assert!(format!("{key:?}").starts_with("PacketKey"));
    }

    #[cfg(feature = "rustcrypto")]
    mod cross_backend {
        use super::*;
        use proptest::prelude::*;

        fn seal_both(
            key: [u8; KEY_BYTES],
            iv: [u8; IV_BYTES],
            pn: u64,
            header: &[u8],
            payload: &[u8],
        ) -> (Vec<u8>, Vec<u8>) {
            let ring = PacketKey::from_raw(key, iv, AeadBackend::Ring);
            let rc = PacketKey::from_raw(key, iv, AeadBackend::RustCrypto);
            let mut a = payload.to_vec();
            let ta = ring.seal_in_place(pn, header, &mut a);
            a.extend_from_slice(&ta);
            let mut b = payload.to_vec();
            let tb = rc.seal_in_place(pn, header, &mut b);
            b.extend_from_slice(&tb);
            // Each opens what the other sealed.
            let mut a2 = a.clone();
            let n = rc.open_in_place(pn, header, &mut a2).unwrap();
            assert_eq!(&a2[..n], payload);
            let mut b2 = b.clone();
            let n = ring.open_in_place(pn, header, &mut b2).unwrap();
            assert_eq!(&b2[..n], payload);
            (a, b)
        }

        #[test]
        fn backends_agree_on_rfc_vector() {
            let (a, b) = seal_both(rfc_key(), RFC_NONCE, 0, &RFC_AAD, RFC_PLAINTEXT);
            assert_eq!(a, expected_rfc());
            assert_eq!(b, expected_rfc());
        }

        #[test]
        fn backends_agree_on_failures() {
            let (mut sealed, _) = seal_both(rfc_key(), RFC_NONCE, 0, &RFC_AAD, RFC_PLAINTEXT);
            sealed[5] ^= 0x10;
            for backend in [AeadBackend::Ring, AeadBackend::RustCrypto] {
                let key = PacketKey::from_raw(rfc_key(), RFC_NONCE, backend);
                let mut buf = sealed.clone();
                assert_eq!(
                    key.open_in_place(0, &RFC_AAD, &mut buf),
                    Err(CryptoError::AuthenticationFailed)
                );
            }
        }

        proptest! {
            #[test]
            fn backends_agree_on_random_inputs(
                key in any::<[u8; KEY_BYTES]>(),
                iv in any::<[u8; IV_BYTES]>(),
                pn in any::<u64>(),
                header in proptest::collection::vec(any::<u8>(), 0..=32),
                payload in proptest::collection::vec(any::<u8>(), 0..=1500),
            ) {
                let (a, b) = seal_both(key, iv, pn, &header, &payload);
                prop_assert_eq!(a, b);
            }
        }
    }
}
