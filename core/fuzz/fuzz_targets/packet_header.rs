//! The packet header decoder and packet-number reconstruction: any bytes
//! decode or fail cleanly, and what decodes encodes back to the same 13 bytes.
#![no_main]

use fastnet::packet::{decode_packet_number, peek_destination, Header, HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let peeked = peek_destination(data);
    match Header::decode(data) {
        Ok(header) => {
            assert_eq!(peeked, Some(header.destination));
            let mut out = [0u8; HEADER_BYTES];
            header.encode(&mut out);
            assert_eq!(&out[..], &data[..HEADER_BYTES]);
            let largest =
                (data.len() > 20).then(|| u64::from_le_bytes(data[13..21].try_into().unwrap()));
            let pn = decode_packet_number(largest.map(|l| l >> 2), header.packet_number_low);
            assert!(pn < 1 << 62);
            assert_eq!(pn as u32, header.packet_number_low);
        }
        Err(_) => assert_eq!(peeked, None),
    }
});
