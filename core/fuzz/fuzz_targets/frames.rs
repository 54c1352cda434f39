//! The frame decoder: any plaintext yields frames or an error, never a panic,
//! and every decoded frame re-encodes to bytes that decode to the same frame.
#![no_main]

use fastnet::frame::FrameReader;
use fastnet::varint::Writer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = vec![0u8; data.len() + 64];
    for frame in FrameReader::new(data) {
        let Ok(frame) = frame else { break };
        if let fastnet::frame::Frame::Ack(ack) = &frame {
            let mut last = u64::MAX;
            for range in ack.ranges() {
                assert!(range.start() <= range.end() && *range.end() < last);
                last = *range.start();
            }
        }
        let mut w = Writer::new(&mut buf);
        frame.encode(&mut w).expect("a decoded frame fits again");
        let n = w.position();
        assert_eq!(n, frame.encoded_len());
        let again = FrameReader::new(&buf[..n])
            .next()
            .expect("one frame")
            .expect("valid");
        assert_eq!(again, frame);
    }
});
