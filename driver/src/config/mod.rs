//! Job files: placeholder
