//! dtle-proto: wire formats. Owns our src→dest wire format (`dtle.v1`): batches of changes with their table
//! definitions and positions, acknowledgements and control messages. Will also own the Nomad plugin protos.
//! Must not import any engine crate: the driver converts engine types to and from these messages.
//!
//! Messages are declared with `prost` derives (no `protoc` needed at build time); the field numbers are the
//! contract, and `wire/v1.proto` documents them for other implementations.

pub mod v1;

/// Version of the src→dest wire format; a dest refuses a src that speaks another major version.
pub const WIRE_FORMAT_VERSION: u32 = 1;
