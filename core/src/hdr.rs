//! Sparse decoding of HDR histograms in the V2 (deflate) wire format, for merging.
//!
//! Decoding a snapshot's histogram with `hdrhistogram`'s deserializer allocates and zeroes
//! a whole counts array (tens of KiB for latencies up to seconds) only to add it to another
//! histogram and drop it. The controller merges thousands per second, so it decodes the
//! encoded counts into `(value, count)` pairs instead (proportional to the non-zero
//! buckets) and adds them with `record_n` into the histogram that collects them.
//!
//! V2 layout (big-endian): cookie `0x1c849303` (bits 4–7 carry the word size, ignored), payload length u32, normalizing index
//! offset u32, significant digits u32, lowest discernible value u64, highest trackable
//! value u64, integer-to-double ratio f64, then the counts as ZigZag LEB128 i64s where a
//! negative `n` skips `-n` empty buckets. The deflate form wraps it: cookie `0x1c849304`,
//! compressed length u32, zlib stream.
//!
//! Encoding is sparse too ([`SparseEncoder`]): `hdrhistogram`'s serializer reserves and
//! zeroes nine bytes per bucket up to the largest value before it writes the few it needs,
//! and builds a fresh deflate compressor (some hundred KiB of tables) for every histogram;
//! a worker encodes every trend series of every interval. The bytes are the same V2 payload,
//! deflated, so every V2 reader decodes them.
use crate::sink::SinkError;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

const V2_COOKIE: u32 = 0x1c84_9303;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9304;
const HEADER_LEN: usize = 40;
/// Largest decompressed payload accepted (guards against a zip bomb on the wire).
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

fn err(msg: impl Into<String>) -> SinkError {
    SinkError::Decode(msg.into())
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// A reusable decoder: keeps its inflate state and buffer between calls.
pub struct SparseDecoder {
    inflate: Decompress,
    buf: Vec<u8>,
}

impl Default for SparseDecoder {
    fn default() -> Self {
        SparseDecoder {
            inflate: Decompress::new(true),
            buf: Vec::with_capacity(4096),
        }
    }
}

impl std::fmt::Debug for SparseDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SparseDecoder")
    }
}

impl SparseDecoder {
    /// Decodes V2 or V2-deflate bytes into `(value, count)` pairs, appended to `out`
    /// (cleared first). Values are the lowest equivalent value of each bucket, so
    /// `record_n(value, count)` into a histogram of the same configuration restores it.
    pub fn decode(&mut self, bytes: &[u8], out: &mut Vec<(u64, u64)>) -> Result<(), SinkError> {
        out.clear();
        if bytes.len() < 8 {
            return Err(err("histogram bytes are too short"));
        }
        match be_u32(bytes) & !0xf0 {
            V2_DEFLATE_COOKIE => {
                let len = be_u32(&bytes[4..]) as usize;
                let body = bytes
                    .get(8..8 + len)
                    .ok_or_else(|| err("compressed length exceeds the bytes"))?;
                self.inflate.reset(true);
                self.buf.clear();
                loop {
                    if self.buf.len() == self.buf.capacity() {
                        if self.buf.len() >= MAX_PAYLOAD {
                            return Err(err("histogram payload is too large"));
                        }
                        self.buf.reserve(self.buf.len().max(4096));
                    }
                    let consumed = self.inflate.total_in() as usize;
                    let status = self
                        .inflate
                        .decompress_vec(&body[consumed..], &mut self.buf, FlushDecompress::None)
                        .map_err(|e| err(format!("inflate: {e}")))?;
                    match status {
                        Status::StreamEnd => break,
                        Status::Ok => {}
                        // no progress possible though there is room: the input ended early
                        Status::BufError if self.buf.len() < self.buf.capacity() => {
                            return Err(err("truncated compressed histogram"))
                        }
                        Status::BufError => {}
                    }
                }
                let plain = std::mem::take(&mut self.buf);
                let r = decode_plain(&plain, out);
                self.buf = plain;
                r
            }
            V2_COOKIE => decode_plain(bytes, out),
            c => Err(err(format!("unknown histogram cookie {c:#x}"))),
        }
    }
}

/// A reusable encoder to the V2-deflate format: keeps its deflate state and buffers
/// between calls, and writes the V2 payload from the recorded buckets only.
pub struct SparseEncoder {
    deflate: Compress,
    plain: Vec<u8>,
}

impl Default for SparseEncoder {
    fn default() -> Self {
        SparseEncoder {
            deflate: Compress::new(Compression::default(), true),
            plain: Vec::with_capacity(1024),
        }
    }
}

impl std::fmt::Debug for SparseEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SparseEncoder")
    }
}

impl SparseEncoder {
    /// The V2 (uncompressed) bytes of `h`, as `hdrhistogram`'s `V2Serializer` writes them.
    pub fn encode_plain(&mut self, h: &Histogram<u64>) -> Result<&[u8], SinkError> {
        let layout = Layout::new(u32::from(h.sigfig()), h.low());
        let buf = &mut self.plain;
        buf.clear();
        buf.extend_from_slice(&(V2_COOKIE | 0x10).to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes()); // payload length, filled in below
        buf.extend_from_slice(&0u32.to_be_bytes()); // normalizing index offset
        buf.extend_from_slice(&u32::from(h.sigfig()).to_be_bytes());
        buf.extend_from_slice(&h.low().to_be_bytes());
        buf.extend_from_slice(&h.high().to_be_bytes());
        buf.extend_from_slice(&1.0f64.to_be_bytes()); // integer-to-double ratio
        let mut next: u64 = 0;
        for v in h.iter_recorded() {
            let index = layout.index_from_value(v.value_iterated_to());
            let count = v.count_at_value();
            match index - next {
                0 => {}
                1 => put_zigzag(buf, 0),
                gap => put_zigzag(buf, -(gap as i64)),
            }
            put_zigzag(
                buf,
                i64::try_from(count).map_err(|_| SinkError::Encode("count over i64".into()))?,
            );
            next = index + 1;
        }
        if next == 0 {
            put_zigzag(buf, 0); // an empty histogram: the count at index 0
        }
        let payload = (buf.len() - HEADER_LEN) as u32;
        buf[4..8].copy_from_slice(&payload.to_be_bytes());
        Ok(&self.plain)
    }

    /// The V2-deflate bytes of `h`, appended to `out`.
    pub fn encode(&mut self, h: &Histogram<u64>, out: &mut Vec<u8>) -> Result<(), SinkError> {
        self.encode_plain(h)?;
        let start = out.len();
        out.extend_from_slice(&(V2_DEFLATE_COOKIE | 0x10).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // compressed length, filled in below
        out.reserve(self.plain.len() / 2 + 64);
        self.deflate.reset();
        loop {
            let consumed = self.deflate.total_in() as usize;
            let status = self
                .deflate
                .compress_vec(&self.plain[consumed..], out, FlushCompress::Finish)
                .map_err(|e| SinkError::Encode(format!("deflate: {e}")))?;
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => out.reserve(out.capacity().max(256)),
            }
        }
        let len = (out.len() - start - 8) as u32;
        out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

/// ZigZag LEB128 as HdrHistogram writes it (at most 9 bytes: the 9th carries 8 bits).
fn put_zigzag(buf: &mut Vec<u8>, n: i64) {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    for _ in 0..8 {
        if v < 0x80 {
            buf.push(v as u8);
            return;
        }
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn decode_plain(bytes: &[u8], out: &mut Vec<(u64, u64)>) -> Result<(), SinkError> {
    if bytes.len() < HEADER_LEN || be_u32(bytes) & !0xf0 != V2_COOKIE {
        return Err(err("not a V2 histogram"));
    }
    let payload_len = be_u32(&bytes[4..]) as usize;
    let offset = be_u32(&bytes[8..]);
    let sigfig = be_u32(&bytes[12..]);
    let lowest = be_u64(&bytes[16..]);
    if offset != 0 {
        return Err(err("normalizing index offsets are not supported"));
    }
    if !(1..=5).contains(&sigfig) || lowest == 0 {
        return Err(err(format!(
            "bad histogram header (digits {sigfig}, lowest {lowest})"
        )));
    }
    let payload = bytes
        .get(HEADER_LEN..HEADER_LEN + payload_len)
        .ok_or_else(|| err("payload length exceeds the bytes"))?;
    let layout = Layout::new(sigfig, lowest);
    let mut index: u64 = 0;
    let mut pos = 0;
    while pos < payload.len() {
        let (raw, used) = leb128(&payload[pos..])?;
        pos += used;
        let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
        if v < 0 {
            index = index
                .checked_add(v.unsigned_abs())
                .ok_or_else(|| err("bucket index overflows"))?;
        } else {
            if v > 0 {
                out.push((layout.value_from_index(index)?, v as u64));
            }
            index += 1;
        }
    }
    Ok(())
}

fn leb128(b: &[u8]) -> Result<(u64, usize), SinkError> {
    let mut value = 0u64;
    for (i, byte) in b.iter().enumerate().take(9) {
        if i == 8 {
            // the 9th byte carries 8 full bits
            value |= (*byte as u64) << 56;
            return Ok((value, 9));
        }
        value |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(err("truncated LEB128 count"))
}

/// Bucket geometry of a histogram configuration (as HdrHistogram computes it).
struct Layout {
    unit_magnitude: u32,
    sub_bucket_half_count_magnitude: u32,
    sub_bucket_half_count: u64,
}

impl Layout {
    fn new(sigfig: u32, lowest: u64) -> Self {
        let largest_single = 2 * 10u64.pow(sigfig);
        let sub_bucket_count_magnitude = (largest_single as f64).log2().ceil() as u32;
        let half_mag = sub_bucket_count_magnitude.max(1) - 1;
        Layout {
            unit_magnitude: 63 - lowest.leading_zeros(),
            sub_bucket_half_count_magnitude: half_mag,
            sub_bucket_half_count: 1 << half_mag,
        }
    }

    /// The counts index of `value` (HdrHistogram's `index_for`).
    fn index_from_value(&self, value: u64) -> u64 {
        let sub_bucket_mask = (2 * self.sub_bucket_half_count - 1) << self.unit_magnitude;
        let base = 64 - self.unit_magnitude - self.sub_bucket_half_count_magnitude - 1;
        let bucket = base - (value | sub_bucket_mask).leading_zeros();
        let sub = value >> (bucket + self.unit_magnitude);
        ((u64::from(bucket) + 1) << self.sub_bucket_half_count_magnitude) + sub
            - self.sub_bucket_half_count
    }

    fn value_from_index(&self, index: u64) -> Result<u64, SinkError> {
        let mut bucket = (index >> self.sub_bucket_half_count_magnitude) as i64 - 1;
        let mut sub = (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count;
        if bucket < 0 {
            sub -= self.sub_bucket_half_count;
            bucket = 0;
        }
        let shift = bucket as u32 + self.unit_magnitude;
        if shift >= 64 || sub.leading_zeros() < shift {
            return Err(err("bucket index beyond the value range"));
        }
        Ok(sub << shift)
    }
}

/// Adds decoded pairs into `h` (auto-resizing histograms take any value).
pub fn add_pairs(h: &mut Histogram<u64>, pairs: &[(u64, u64)]) -> Result<(), SinkError> {
    for &(v, n) in pairs {
        h.record_n(v, n)
            .map_err(|e| err(format!("record: {e:?}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{encode_histogram, TrendSink};

    fn random_sink(seed: u64, n: usize, max: u64) -> TrendSink {
        let mut t = TrendSink::default();
        let mut x = seed;
        for _ in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 11) as f64 / (1u64 << 53) as f64;
            t.record((1.0 + (max as f64) * r.powi(4)) as u64);
        }
        t
    }

    #[test]
    fn sparse_merge_equals_library_merge() {
        let mut dec = SparseDecoder::default();
        let mut pairs = Vec::new();
        for (seed, n, max) in [
            (1u64, 50usize, 100_000u64),
            (2, 5000, 60_000_000),
            (3, 1, 7),
            (4, 0, 1),
            (5, 300, u32::MAX as u64),
        ] {
            let part = random_sink(seed, n, max);
            let mut via_lib = random_sink(seed + 100, 40, 1_000_000);
            let mut via_sparse = via_lib.clone();
            via_lib
                .hist
                .add(&TrendSink::decode(&part.encode().unwrap()).unwrap().hist)
                .unwrap();
            dec.decode(&part.encode().unwrap(), &mut pairs).unwrap();
            add_pairs(&mut via_sparse.hist, &pairs).unwrap();
            assert_eq!(via_sparse.count(), via_lib.count(), "seed {seed}");
            let a: Vec<(u64, u64)> = via_lib
                .hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect();
            let b: Vec<(u64, u64)> = via_sparse
                .hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect();
            assert_eq!(a, b, "seed {seed}");
        }
    }

    #[test]
    fn plain_v2_decodes_too() {
        use hdrhistogram::serialization::{Serializer, V2Serializer};
        let t = random_sink(9, 500, 3_000_000);
        let mut plain = Vec::new();
        V2Serializer::new().serialize(&t.hist, &mut plain).unwrap();
        let mut pairs = Vec::new();
        SparseDecoder::default().decode(&plain, &mut pairs).unwrap();
        assert_eq!(pairs.iter().map(|p| p.1).sum::<u64>(), 500);
        let _ = encode_histogram(&t.hist).unwrap();
    }

    /// The sparse encoder writes exactly the library's V2 payload, and its deflated form
    /// decodes with the library's deserializer to the same histogram.
    #[test]
    fn sparse_encoding_is_the_library_encoding() {
        use hdrhistogram::serialization::{Serializer, V2Serializer};
        let mut enc = SparseEncoder::default();
        let mut pairs = Vec::new();
        for (seed, n, max) in [
            (1u64, 50usize, 100_000u64),
            (2, 5000, 60_000_000),
            (3, 1, 7),
            (4, 0, 1),
            (5, 300, u32::MAX as u64),
            (6, 2000, 1 << 62),
            (7, 40, 2047),
        ] {
            let t = random_sink(seed, n, max);
            let mut lib = Vec::new();
            V2Serializer::new().serialize(&t.hist, &mut lib).unwrap();
            assert_eq!(enc.encode_plain(&t.hist).unwrap(), &lib[..], "seed {seed}");
            let mut wire = vec![0xAA]; // appended after what is there
            enc.encode(&t.hist, &mut wire).unwrap();
            let back = TrendSink::decode(&wire[1..]).unwrap();
            assert_eq!(back.hist, t.hist, "seed {seed}");
            SparseDecoder::default()
                .decode(&wire[1..], &mut pairs)
                .unwrap();
            assert_eq!(pairs.iter().map(|p| p.1).sum::<u64>(), n as u64);
        }
        // a histogram of another configuration (not the sinks' 1 / 3 digits)
        let mut h = Histogram::<u64>::new_with_bounds(1000, 1 << 40, 2).unwrap();
        for v in [1000u64, 1001, 5_000, 123_456_789, 1 << 39] {
            h.record_n(v, v % 7 + 1).unwrap();
        }
        let mut lib = Vec::new();
        V2Serializer::new().serialize(&h, &mut lib).unwrap();
        assert_eq!(enc.encode_plain(&h).unwrap(), &lib[..]);
    }

    #[test]
    fn garbage_is_rejected() {
        let mut dec = SparseDecoder::default();
        let mut pairs = Vec::new();
        let good = random_sink(3, 100, 10_000).encode().unwrap();
        for bad in [
            &b""[..],
            &b"abcdefgh"[..],
            &good[..good.len() / 2],
            &[0x1c, 0x84, 0x93, 0x04, 0xff, 0xff, 0xff, 0xff][..],
        ] {
            assert!(dec.decode(bad, &mut pairs).is_err(), "{bad:?}");
        }
        // the decoder still works after errors
        dec.decode(&good, &mut pairs).unwrap();
        assert_eq!(pairs.iter().map(|p| p.1).sum::<u64>(), 100);
    }
}
