//! Background workers. Each is a plain async function over [`crate::App`] and one event; the
//! Lambda crates and the local runner only deliver events to them.

pub mod import;
pub mod keepalive;
pub mod resize;
