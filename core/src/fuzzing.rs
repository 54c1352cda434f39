//! Entry points for the fuzz targets in `core/fuzz/` (feature `fuzzing`):
//! thin wrappers around decoders that are not public API, so every decoder
//! reachable from the network can be fuzzed without widening the API.

use crate::session::params;

/// Decodes a session parameters message as the client (`from_server`) or the
/// server receives it. Returns whether it decoded.
pub fn decode_session_params(bytes: &[u8], from_server: bool) -> bool {
    matches!(params::decode(bytes, from_server), Ok(Some(_)))
}
