//! sse (being written)
