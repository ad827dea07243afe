//! dtle-proto: wire formats. Will own the Nomad plugin protos (go-plugin, base, drivers, hclspec, structs)
//! written for this project, and our src→dest wire format (`dtle/v1`). Must not import any engine crate.
//!
//! The standalone engine (`dtle run`) passes typed values in process and needs no wire format yet; the NATS
//! transport issue and the Nomad plugin issue fill this crate.

/// Version of the src→dest wire format; a dest refuses a src that speaks another major version.
pub const WIRE_FORMAT_VERSION: u32 = 1;
