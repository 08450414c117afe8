//! flow (being written)
