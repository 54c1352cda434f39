//! Channels: the four delivery kinds of PROTOCOL.md §3.3, each channel with its
//! own message-ID sequence. `send` holds the sending half (queues, fragments,
//! flow window, retransmissions), `recv` the receiving half (reassembly,
//! reordering, duplicate filtering).

mod recv;
mod send;

pub(crate) use recv::{FrameLimits, Inbox, RecvChannels};
pub(crate) use send::{FragmentRef, SendChannel};
