//! Frame decoding: link layer → IP → TCP, through checked zero-copy views.
//!
//! `decode_frame` is the only entry point the pipeline uses. It never panics on any input: every
//! frame either becomes a [`PacketRecord`] or a [`DecodeError`] that the caller counts.

mod error;
mod record;

pub use error::DecodeError;
pub use record::{flags, opt, Addr, PacketRecord, NO_WSCALE};
