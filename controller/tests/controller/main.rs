//! Integration tests of `barrage` (one binary: see the crate's Cargo.toml).
