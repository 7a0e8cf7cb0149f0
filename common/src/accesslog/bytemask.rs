//! Where one byte value occurs in a line, sixteen bytes per step.
//!
//! The `okome` splitter needs the positions of a line's first quotes: they
//! bound the request, referer, user agent and upstream-time fields, which
//! are most of a line's bytes. Comparing sixteen bytes at once and reading
//! the matches off as bits costs a few instructions per chunk; a search
//! per quote costs a call and a restart each. SSE2 on x86_64 and NEON on
//! aarch64 are part of those architectures' baselines, so no run-time
//! detection is needed; elsewhere (armv7 without guaranteed NEON) the same
//! bits come from word-at-a-time arithmetic.

/// Bytes compared per step.
const CHUNK: usize = 16;

/// Where the first `N` bytes equal to `needle` are in `haystack`, in order,
/// and how many there are (at most `N`: the search stops there).
#[inline(always)]
pub(crate) fn first_positions<const N: usize>(
    needle: u8,
    haystack: &[u8],
    out: &mut [u32; N],
) -> usize {
    let mut found = 0;
    let (chunks, tail) = haystack.as_chunks::<CHUNK>();
    let mut base = 0u32;
    for chunk in chunks {
        let mut bits = chunk_bits(chunk, needle);
        while bits != 0 {
            out[found] = base + bits.trailing_zeros();
            found += 1;
            if found == N {
                return N;
            }
            bits &= bits - 1;
        }
        base += CHUNK as u32;
    }
    for (offset, &byte) in tail.iter().enumerate() {
        if byte == needle {
            out[found] = base + offset as u32;
            found += 1;
            if found == N {
                return N;
            }
        }
    }
    found
}

/// How far [`find`] compares chunks itself before handing a long search to
/// `memchr`, whose wider loop wins past a few dozen bytes but costs a call
/// and a set-up that the short fields of a log line never repay.
const INLINE: usize = 4 * CHUNK;

/// The first byte equal to `needle` in `haystack`.
#[inline(always)]
pub(crate) fn find(needle: u8, haystack: &[u8]) -> Option<usize> {
    find_from(needle, haystack, 0)
}

/// The first byte equal to `needle` in `line[from..]`, as a position in
/// `line`. A search near the end of the line still compares sixteen bytes
/// at once: the last chunk of `line`, minus the bytes before `from`.
#[inline(always)]
pub(crate) fn find_from(needle: u8, line: &[u8], from: usize) -> Option<usize> {
    let rest = line.get(from..)?;
    let mut at = 0;
    while let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<CHUNK>) {
        let bits = chunk_bits(chunk, needle);
        if bits != 0 {
            return Some(from + at + bits.trailing_zeros() as usize);
        }
        at += CHUNK;
        if at == INLINE {
            return memchr::memchr(needle, &rest[INLINE..]).map(|found| from + INLINE + found);
        }
    }
    let tail = &rest[at..];
    if tail.is_empty() {
        return None;
    }
    let start = line.len() - tail.len();
    if let Some(last) = line.last_chunk::<CHUNK>() {
        // The last sixteen bytes of the line, less those before `start`.
        let bits = chunk_bits(last, needle) >> (CHUNK - tail.len());
        return (bits != 0).then(|| start + (bits.trailing_zeros()) as usize);
    }
    // A line shorter than a chunk: its first and last eight bytes as words
    // (overlapping when shorter than sixteen), or byte by byte under eight.
    if let (Some(first), Some(last)) = (line.first_chunk::<8>(), line.last_chunk::<8>()) {
        let found = |word: &[u8; 8], skip: usize| {
            let bits = word_bits(u64::from_le_bytes(*word), needle) >> (8 * skip);
            (bits != 0).then(|| skip + (bits.trailing_zeros() / 8) as usize)
        };
        if start < 8
            && let Some(at) = found(first, start)
        {
            return Some(at);
        }
        let last_start = line.len() - 8;
        return found(last, start.max(last_start) - last_start).map(|at| last_start + at);
    }
    tail.iter()
        .position(|&byte| byte == needle)
        .map(|at| start + at)
}

/// The high bit of each byte of `word` equal to `needle`, exactly (no
/// borrow from one byte into the next, unlike the shorter has-zero-byte
/// test).
#[inline(always)]
fn word_bits(word: u64, needle: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(needle) * 0x0101_0101_0101_0101);
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

/// Bytes per word of an [`Index`].
const BLOCK: usize = 64;

/// Where the quotes and newlines are in a buffer: a bit per byte, a word
/// per 64-byte block. Built in one pass over bytes read, so that finding a
/// line's end and its first quotes costs a few bit operations per word
/// rather than a search per line and another per quote.
#[derive(Debug, Default)]
pub(crate) struct Index {
    quotes: Vec<u64>,
    newlines: Vec<u64>,
}

impl Index {
    /// Classify `buf[from..end]`, from the start of the block `from` is in
    /// (bytes at or past `end` count as neither, until classified again).
    pub(crate) fn classify(&mut self, buf: &[u8], from: usize, end: usize) {
        let blocks = end.div_ceil(BLOCK);
        if self.quotes.len() < blocks {
            self.quotes.resize(blocks, 0);
            self.newlines.resize(blocks, 0);
        }
        let first = from / BLOCK;
        let bytes = &buf[first * BLOCK..end];
        let (whole, tail) = bytes.as_chunks::<BLOCK>();
        let words = first..first + whole.len();
        classify_blocks(
            whole,
            &mut self.quotes[words.clone()],
            &mut self.newlines[words],
        );
        if !tail.is_empty() {
            // The block the data ends in: once per read, byte by byte.
            let (mut quotes, mut newlines) = (0, 0);
            for (bit, &byte) in tail.iter().enumerate() {
                quotes |= u64::from(byte == b'"') << bit;
                newlines |= u64::from(byte == b'\n') << bit;
            }
            self.quotes[first + whole.len()] = quotes;
            self.newlines[first + whole.len()] = newlines;
        }
    }

    /// The first newline in `from..end` (classified bytes).
    #[inline(always)]
    pub(crate) fn next_newline(&self, from: usize, end: usize) -> Option<usize> {
        let mut block = from / BLOCK;
        let mut bits = *self.newlines.get(block)? & (u64::MAX << (from % BLOCK));
        loop {
            if bits != 0 {
                let at = block * BLOCK + bits.trailing_zeros() as usize;
                return (at < end).then_some(at);
            }
            block += 1;
            if block * BLOCK >= end {
                return None;
            }
            bits = self.newlines[block];
        }
    }

    /// The quotes in `from..to`, as offsets from `from`.
    #[inline(always)]
    pub(crate) fn quotes(&self, from: usize, to: usize) -> Quotes<'_> {
        if from >= to {
            return Quotes::default();
        }
        let words = &self.quotes[from / BLOCK..=(to - 1) / BLOCK];
        Quotes {
            bits: words[0] & (u64::MAX << (from % BLOCK)),
            words: &words[1..],
            // Offsets count from `from`, part-way into the first word.
            base: 0usize.wrapping_sub(from % BLOCK),
            len: to - from,
        }
    }
}

/// Where a line's quotes are, in order, as offsets into the line: read
/// off an [`Index`] a bit at a time, as far as the caller asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotes<'a> {
    /// The quote bits not yet returned, of the word `base` is the offset of.
    bits: u64,
    /// The line's later words.
    words: &'a [u64],
    base: usize,
    len: usize,
}

impl Quotes<'_> {
    /// The quotes of a line without an index, found sixteen bytes at a
    /// time (at most `N`).
    #[inline(always)]
    pub(crate) fn first_in<const N: usize>(line: &[u8]) -> impl Iterator<Item = usize> {
        let mut positions = [0u32; N];
        let found = first_positions(b'"', line, &mut positions);
        positions.into_iter().take(found).map(|at| at as usize)
    }
}

impl Iterator for Quotes<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            let (&word, rest) = self.words.split_first()?;
            self.bits = word;
            self.words = rest;
            self.base = self.base.wrapping_add(BLOCK);
        }
        let at = self.base.wrapping_add(self.bits.trailing_zeros() as usize);
        self.bits &= self.bits - 1;
        (at < self.len).then_some(at)
    }
}

/// The quote and newline bits of whole blocks, with the widest compare
/// this CPU has: on x86_64, AVX-512BW or AVX2 when present (checked once
/// and cached by std), SSE2 otherwise; NEON on aarch64; words elsewhere.
fn classify_blocks(blocks: &[[u8; BLOCK]], quotes: &mut [u64], newlines: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: this CPU has AVX-512BW, checked just above.
            return unsafe { wide::classify_avx512(blocks, quotes, newlines) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2, checked just above.
            return unsafe { wide::classify_avx2(blocks, quotes, newlines) };
        }
    }
    classify_by_chunks(blocks, quotes, newlines);
}

/// [`classify_blocks`] sixteen bytes per compare.
fn classify_by_chunks(blocks: &[[u8; BLOCK]], quotes: &mut [u64], newlines: &mut [u64]) {
    for ((block, quote_bits), newline_bits) in blocks.iter().zip(quotes).zip(newlines) {
        let (chunks, _) = block.as_chunks::<CHUNK>();
        let (mut quote, mut newline) = (0, 0);
        for (index, chunk) in chunks.iter().enumerate() {
            quote |= chunk_bits(chunk, b'"') << (CHUNK * index);
            newline |= chunk_bits(chunk, b'\n') << (CHUNK * index);
        }
        *quote_bits = quote;
        *newline_bits = newline;
    }
}

/// The x86_64 extensions beyond the SSE2 baseline, used only where the CPU
/// reports them.
#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::{
        __m256i, __m512i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_set1_epi8, _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_set1_epi8,
    };

    use super::BLOCK;

    /// A whole block per compare, its matches straight into a mask.
    #[target_feature(enable = "avx512bw")]
    pub(super) fn classify_avx512(
        blocks: &[[u8; BLOCK]],
        quotes: &mut [u64],
        newlines: &mut [u64],
    ) {
        let (quote, newline) = (_mm512_set1_epi8(b'"' as i8), _mm512_set1_epi8(b'\n' as i8));
        for ((block, quote_bits), newline_bits) in blocks.iter().zip(quotes).zip(newlines) {
            // SAFETY: `block` is 64 readable bytes; the load is unaligned.
            let bytes = unsafe { _mm512_loadu_si512(block.as_ptr().cast::<__m512i>()) };
            *quote_bits = _mm512_cmpeq_epi8_mask(bytes, quote);
            *newline_bits = _mm512_cmpeq_epi8_mask(bytes, newline);
        }
    }

    /// Half a block per compare.
    #[target_feature(enable = "avx2")]
    pub(super) fn classify_avx2(blocks: &[[u8; BLOCK]], quotes: &mut [u64], newlines: &mut [u64]) {
        let (quote, newline) = (_mm256_set1_epi8(b'"' as i8), _mm256_set1_epi8(b'\n' as i8));
        let mask = |equal: __m256i| u64::from(_mm256_movemask_epi8(equal) as u32);
        for ((block, quote_bits), newline_bits) in blocks.iter().zip(quotes).zip(newlines) {
            let (halves, _) = block.as_chunks::<32>();
            // SAFETY: each half is 32 readable bytes; the loads are unaligned.
            let (low, high) = unsafe {
                (
                    _mm256_loadu_si256(halves[0].as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(halves[1].as_ptr().cast::<__m256i>()),
                )
            };
            *quote_bits =
                mask(_mm256_cmpeq_epi8(low, quote)) | mask(_mm256_cmpeq_epi8(high, quote)) << 32;
            *newline_bits = mask(_mm256_cmpeq_epi8(low, newline))
                | mask(_mm256_cmpeq_epi8(high, newline)) << 32;
        }
    }
}

/// One bit per byte of `chunk` that equals `needle`, byte `i` at bit `i`
/// (SSE2's `pmovmskb`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chunk_bits(chunk: &[u8; CHUNK], needle: u8) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is part of the x86_64 baseline, so the target feature
    // these intrinsics require is always there; `chunk` is 16 readable
    // bytes, and an unaligned load has no alignment requirement.
    let mask = unsafe {
        let bytes = _mm_loadu_si128(chunk.as_ptr().cast());
        _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(needle as i8)))
    };
    u64::from(mask as u16)
}

/// [`chunk_bits`] for NEON, which has no `pmovmskb`: each matching byte
/// keeps its bit weight within its half, and each half is summed across.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn chunk_bits(chunk: &[u8; CHUNK], needle: u8) -> u64 {
    use std::arch::aarch64::{
        vaddv_u8, vandq_u8, vceqq_u8, vdupq_n_u8, vget_high_u8, vget_low_u8, vld1q_u8,
    };
    const WEIGHTS: [u8; CHUNK] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: NEON is part of the aarch64 baseline, so the target feature
    // these intrinsics require is always there; `chunk` and `WEIGHTS` are
    // 16 readable bytes.
    let (low, high) = unsafe {
        let equal = vceqq_u8(vld1q_u8(chunk.as_ptr()), vdupq_n_u8(needle));
        let weighted = vandq_u8(equal, vld1q_u8(WEIGHTS.as_ptr()));
        (
            vaddv_u8(vget_low_u8(weighted)),
            vaddv_u8(vget_high_u8(weighted)),
        )
    };
    u64::from(low) | u64::from(high) << 8
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline(always)]
fn chunk_bits(chunk: &[u8; CHUNK], needle: u8) -> u64 {
    swar_chunk_bits(chunk, needle)
}

/// [`chunk_bits`] with plain 64-bit arithmetic: one bit per byte.
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    allow(dead_code, reason = "the fallback, compiled everywhere to be tested")
)]
#[inline(always)]
fn swar_chunk_bits(chunk: &[u8; CHUNK], needle: u8) -> u64 {
    /// Gathers the lowest bit of each byte into the top byte, in order.
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let (words, _) = chunk.as_chunks::<8>();
    let mut bits = 0;
    for (index, word) in words.iter().enumerate() {
        let high = word_bits(u64::from_le_bytes(*word), needle);
        bits |= ((high >> 7).wrapping_mul(GATHER) >> 56) << (8 * index);
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Classifier = dyn Fn(&[[u8; BLOCK]], &mut [u64], &mut [u64]);

    fn naive(needle: u8, haystack: &[u8], limit: usize) -> Vec<u32> {
        haystack
            .iter()
            .enumerate()
            .filter(|&(_, &byte)| byte == needle)
            .map(|(at, _)| at as u32)
            .take(limit)
            .collect()
    }

    proptest! {
        #[test]
        fn finds_what_a_byte_loop_finds(
            haystack in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(0x22 | 0x80), Just(0u8), any::<u8>()],
                0..200,
            ),
        ) {
            let mut out = [0u32; 8];
            let found = first_positions(b'"', &haystack, &mut out);
            prop_assert_eq!(&out[..found], &naive(b'"', &haystack, 8)[..]);
        }

        #[test]
        fn find_is_a_byte_search(
            haystack in proptest::collection::vec(
                prop_oneof![Just(b' '), Just(b'a'), any::<u8>()],
                0..200,
            ),
            needle in prop_oneof![Just(b' '), any::<u8>()],
        ) {
            prop_assert_eq!(find(needle, &haystack), haystack.iter().position(|&b| b == needle));
            for from in 0..=haystack.len() + 1 {
                let expected = haystack
                    .get(from..)
                    .and_then(|rest| rest.iter().position(|&b| b == needle))
                    .map(|at| from + at);
                prop_assert_eq!(find_from(needle, &haystack, from), expected, "from {}", from);
            }
        }

        #[test]
        fn the_index_finds_newlines_and_quotes_as_byte_loops_do(
            buf in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\n'), Just(b'a'), any::<u8>()],
                0..300,
            ),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        ) {
            // Classified in pieces, as a reader fills its buffer.
            let mut ends: Vec<usize> = cuts.iter().map(|cut| cut.index(buf.len() + 1)).collect();
            ends.push(buf.len());
            ends.sort();
            let mut index = Index::default();
            let mut done = 0;
            for end in ends {
                index.classify(&buf, done, end);
                done = end;
            }
            for from in 0..buf.len() {
                let newline = buf[from..].iter().position(|&b| b == b'\n').map(|at| from + at);
                prop_assert_eq!(index.next_newline(from, buf.len()), newline);
                let to = newline.unwrap_or(buf.len());
                let quotes: Vec<u32> = index.quotes(from, to).map(|at| at as u32).collect();
                prop_assert_eq!(quotes, naive(b'"', &buf[from..to], usize::MAX));
            }
        }

        #[test]
        fn every_block_classifier_agrees(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\n'), Just(0xa2u8), Just(0x8au8), any::<u8>()],
                0..8 * BLOCK,
            ),
        ) {
            let (blocks, _) = bytes.as_chunks::<BLOCK>();
            let expected: Vec<(u64, u64)> = blocks
                .iter()
                .map(|block| {
                    let bits = |needle: u8| {
                        block.iter().enumerate().fold(0u64, |bits, (at, &byte)| {
                            bits | u64::from(byte == needle) << at
                        })
                    };
                    (bits(b'"'), bits(b'\n'))
                })
                .collect();
            let run = |classify: &Classifier| {
                let mut quotes = vec![0; blocks.len()];
                let mut newlines = vec![0; blocks.len()];
                classify(blocks, &mut quotes, &mut newlines);
                quotes.into_iter().zip(newlines).collect::<Vec<_>>()
            };
            prop_assert_eq!(&run(&classify_by_chunks), &expected);
            prop_assert_eq!(&run(&classify_blocks), &expected);
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: this CPU has AVX2.
                    prop_assert_eq!(&run(&|b, q, n| unsafe { wide::classify_avx2(b, q, n) }), &expected);
                }
                if std::arch::is_x86_feature_detected!("avx512bw") {
                    // SAFETY: this CPU has AVX-512BW.
                    prop_assert_eq!(&run(&|b, q, n| unsafe { wide::classify_avx512(b, q, n) }), &expected);
                }
            }
        }

        #[test]
        fn the_word_fallback_matches_the_vector_compare(
            chunk in proptest::array::uniform16(
                prop_oneof![Just(b'"'), Just(0xa2u8), Just(0x21u8), Just(0x23u8), any::<u8>()],
            ),
            needle in prop_oneof![Just(b'"'), any::<u8>()],
        ) {
            let expected = naive(needle, &chunk, CHUNK);
            let bits = swar_chunk_bits(&chunk, needle);
            let got: Vec<u32> = (0..CHUNK as u32).filter(|i| bits >> i & 1 == 1).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
