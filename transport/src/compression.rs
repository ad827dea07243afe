//! Per-batch compression, chosen in the job config and recorded in each frame.

use std::io::{Read, Write};

use dtle_proto::v1::Compression;

use crate::TransportError;

/// Compression and its level (zstd 1..=22; gzip 0..=9; ignored for lz4/none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionSpec {
    pub kind: Compression,
    pub level: i32,
}

impl Default for CompressionSpec {
    fn default() -> Self {
        CompressionSpec { kind: Compression::Zstd, level: 1 }
    }
}

impl CompressionSpec {
    /// Parses `none`, `lz4`, `gzip`, `zstd` or `zstd:3` / `gzip:6`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, level) = match text.split_once(':') {
            Some((n, l)) => {
                (n, Some(l.parse::<i32>().map_err(|_| format!("compression level {l:?} is not a number"))?))
            }
            None => (text, None),
        };
        let spec = match name.trim().to_ascii_lowercase().as_str() {
            "none" | "" => CompressionSpec { kind: Compression::None, level: 0 },
            "lz4" => CompressionSpec { kind: Compression::Lz4, level: 0 },
            "zstd" => CompressionSpec { kind: Compression::Zstd, level: level.unwrap_or(1) },
            "gzip" => CompressionSpec { kind: Compression::Gzip, level: level.unwrap_or(1) },
            other => return Err(format!("unknown compression {other:?}: use none, lz4, zstd, zstd:<level> or gzip")),
        };
        let ok = match spec.kind {
            Compression::Zstd => (1..=22).contains(&spec.level),
            Compression::Gzip => (0..=9).contains(&spec.level),
            _ => true,
        };
        if ok {
            Ok(spec)
        } else {
            Err(format!("compression level {} out of range for {name}", spec.level))
        }
    }
}

pub fn compress(spec: CompressionSpec, data: &[u8]) -> Result<Vec<u8>, TransportError> {
    match spec.kind {
        Compression::None => Ok(data.to_vec()),
        Compression::Lz4 => Ok(lz4_flex::compress(data)),
        Compression::Zstd => {
            zstd::bulk::compress(data, spec.level).map_err(|e| TransportError::Codec(format!("zstd: {e}")))
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(spec.level as u32));
            enc.write_all(data).map_err(|e| TransportError::Codec(format!("gzip: {e}")))?;
            enc.finish().map_err(|e| TransportError::Codec(format!("gzip: {e}")))
        }
    }
}

/// Decompresses, refusing to produce more than `expected_len` bytes (a bound from the frame header).
pub fn decompress(kind: Compression, data: &[u8], expected_len: usize) -> Result<Vec<u8>, TransportError> {
    let out = match kind {
        Compression::None => data.to_vec(),
        Compression::Lz4 => {
            lz4_flex::decompress(data, expected_len).map_err(|e| TransportError::Codec(format!("lz4: {e}")))?
        }
        Compression::Zstd => {
            zstd::bulk::decompress(data, expected_len).map_err(|e| TransportError::Codec(format!("zstd: {e}")))?
        }
        Compression::Gzip => {
            let mut out = Vec::with_capacity(expected_len);
            flate2::read::GzDecoder::new(data)
                .take(expected_len as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| TransportError::Codec(format!("gzip: {e}")))?;
            out
        }
    };
    if out.len() != expected_len {
        return Err(TransportError::Codec(format!(
            "batch decompressed to {} bytes, header says {expected_len}",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_checks_length() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for spec in ["none", "lz4", "zstd", "zstd:5", "gzip", "gzip:9"] {
            let spec = CompressionSpec::parse(spec).unwrap();
            let packed = compress(spec, &data).unwrap();
            assert_eq!(decompress(spec.kind, &packed, data.len()).unwrap(), data);
            assert!(decompress(spec.kind, &packed, data.len() - 1).is_err());
            if spec.kind != Compression::None {
                assert!(packed.len() < data.len(), "{spec:?}");
                assert!(decompress(spec.kind, &packed[..packed.len() / 2], data.len()).is_err());
            }
        }
        assert!(CompressionSpec::parse("brotli").is_err());
        assert!(CompressionSpec::parse("zstd:99").is_err());
    }
}
