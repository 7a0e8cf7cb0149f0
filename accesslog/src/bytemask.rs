//! Where quotes, newlines and spaces are, many bytes per step.
//!
//! A log line's end, and the quotes and spaces that bound its fields, are
//! all the `okome` fast path needs to place every field. Comparing sixteen
//! to sixty-four bytes at once and reading the matches off as bits costs a
//! few instructions per block; a search per delimiter costs a call and a
//! restart each. [`Index`] holds those bits for a reader's buffer, built
//! once per read; [`find_from`] and [`first_positions`] search a line
//! without one. SSE2 on x86_64 and NEON on aarch64 are part of those
//! architectures' baselines; AVX2 and AVX-512BW are used where the CPU
//! reports them; elsewhere (armv7 without guaranteed NEON) the same bits
//! come from word-at-a-time arithmetic.
//!
//! The byte helpers every splitter and accessor uses (a search forwards and
//! backwards, a literal at a place, a prefix) live here too, at the bottom
//! of the crate's imports: `format`, `okome` and `record` all use them and
//! none of them uses the others' internals for it.

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

/// How far [`find_byte`] compares chunks itself before handing a long search to
/// `memchr`, whose wider loop wins past a few dozen bytes but costs a call
/// and a set-up that the short fields of a log line never repay.
const INLINE: usize = 4 * CHUNK;

/// The first byte equal to `needle` in `haystack`: `memchr`, with the
/// first bytes compared inline sixteen at a time (most fields are a few
/// bytes long, and a call costs more than the compare).
#[inline(always)]
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
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

/// How far [`rfind_byte`] scans inline before calling `memrchr`.
const INLINE_SCAN: usize = 40;

/// The last byte equal to `needle` in `haystack`: `memrchr`, with the last
/// bytes scanned inline.
#[inline(always)]
pub(crate) fn rfind_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    let tail = haystack.len().saturating_sub(INLINE_SCAN);
    match haystack[tail..].iter().rposition(|&b| b == needle) {
        Some(at) => Some(tail + at),
        None => memchr::memrchr(needle, &haystack[..tail]),
    }
}

/// Whether `literal` occurs in `line` at `at`. A compare of a fixed-size
/// array: a few word compares inline, whatever the optimisation level of
/// the crate this is inlined into (a slice compare is a loop or a call).
#[inline(always)]
pub(crate) fn is_at<const N: usize>(line: &[u8], at: usize, literal: &[u8; N]) -> bool {
    line.get(at..at + N)
        .and_then(|candidate| <&[u8; N]>::try_from(candidate).ok())
        .is_some_and(|candidate| candidate == literal)
}

/// `haystack.starts_with(literal)` for the short literals of a format,
/// inlined: a `memcmp` call per field costs more than the comparison.
#[inline(always)]
pub(crate) fn same_prefix(haystack: &[u8], literal: &[u8]) -> bool {
    haystack.len() >= literal.len() && haystack.iter().zip(literal).all(|(a, b)| a == b)
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

/// A word of an [`Index`]: the bits of a block, byte `i` of the block at
/// bit `i`, stored little-endian. As bytes, so that a window of 64 bits
/// from any byte of the index is one unaligned load
/// ([`Bits::first_from`]), the same on every CPU.
type Word = [u8; 8];

/// The byte values an [`Index`] records: what delimits an access-log line
/// and its fields.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Class {
    Quote = 0,
    Newline = 1,
    Space = 2,
}

/// The bytes of each [`Class`], in its order.
const CLASSES: [u8; 3] = [b'"', b'\n', b' '];

/// Where the quotes, newlines and spaces are in a buffer: a bit per byte, a
/// word per 64-byte block, per class. Built in one pass over the bytes
/// read, so that finding a line's end, its quotes and the spaces between
/// its short fields costs a few bit operations each rather than a search.
/// Only the x86_64 reader builds one (`reader::INDEXED`).
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Each class's words, and one more: a window read from the last
    /// block's bytes has its eight bytes there.
    bits: [Vec<Word>; CLASSES.len()],
}

impl Index {
    /// Classify `buf[from..end]`, from the start of the block `from` is in
    /// (bytes at or past `end` are in no class until classified again).
    pub(crate) fn classify(&mut self, buf: &[u8], from: usize, end: usize) {
        let blocks = end.div_ceil(BLOCK) + 1;
        for bits in &mut self.bits {
            if bits.len() < blocks {
                bits.resize(blocks, Word::default());
            }
        }
        let first = from / BLOCK;
        let (whole, tail) = buf[first * BLOCK..end].as_chunks::<BLOCK>();
        let words = first..first + whole.len();
        let [quotes, newlines, spaces] = &mut self.bits;
        classify_blocks(
            whole,
            [
                &mut quotes[words.clone()],
                &mut newlines[words.clone()],
                &mut spaces[words],
            ],
        );
        if !tail.is_empty() {
            // The block the data ends in: once per read, byte by byte.
            for (class, &needle) in self.bits.iter_mut().zip(&CLASSES) {
                class[first + whole.len()] = tail
                    .iter()
                    .enumerate()
                    .fold(0, |bits, (at, &byte)| {
                        bits | u64::from(byte == needle) << at
                    })
                    .to_le_bytes();
            }
        }
    }

    /// Where the bytes of `class` are in `from..to` (classified bytes).
    #[inline(always)]
    pub(crate) fn bits(&self, class: Class, from: usize, to: usize) -> Bits<'_> {
        // One test for an empty stretch (none for `to - 1` and `to - from`).
        let (words, len) = if from < to {
            // With the word after the stretch's last (see `Bits::words`).
            let words = &self.bits[class as usize][from / BLOCK..(to - 1) / BLOCK + 2];
            (words, to - from)
        } else {
            (&[][..], 0)
        };
        Bits {
            words,
            shift: from % BLOCK,
            len,
        }
    }
}

/// Where one byte value occurs in a stretch of a buffer (a line, or the
/// complete lines read so far), as offsets from its start: a view of a
/// reader's index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bits<'a> {
    /// The index words the stretch lies in, and the word after them (bits
    /// past the stretch's end, as a window read near its end holds too).
    words: &'a [Word],
    /// Where the stretch starts in the first word.
    shift: usize,
    len: usize,
}

impl<'a> Bits<'a> {
    /// The first offset at or after `at`.
    ///
    /// What is near — the next quote or space of a log line nearly always
    /// is — is found in one window read, without a loop whose length
    /// varies line by line (a branch the CPU would mispredict on every
    /// other line).
    #[inline(always)]
    pub(crate) fn first_from(&self, at: usize) -> Option<usize> {
        let bit = self.shift + at;
        let found = match self.window(bit) {
            Some(window) if window != 0 => at + window.trailing_zeros() as usize,
            // Nothing near (or a window past the words): word by word.
            _ => self.first_bit_from(bit)? - self.shift,
        };
        (found < self.len).then_some(found)
    }

    /// The first two offsets at or after `at`: the second, when it is
    /// near, out of the same window as the first ([`Bits::first_from`]
    /// for each would read it twice).
    #[inline(always)]
    pub(crate) fn first_two_from(&self, at: usize) -> Option<(usize, Option<usize>)> {
        let window = self.window(self.shift + at).unwrap_or(0);
        let rest = window & window.wrapping_sub(1);
        if rest == 0 {
            // None in the window, or only one.
            let first = self.first_from(at)?;
            return Some((first, self.first_from(first + 1)));
        }
        let first = at + window.trailing_zeros() as usize;
        let second = at + rest.trailing_zeros() as usize;
        (first < self.len).then_some((first, (second < self.len).then_some(second)))
    }

    /// The bits from `bit` (counted from the first word's) on, as one
    /// unaligned load from the words' bytes: at least 57 of them, as the
    /// shift to `bit` within its byte drops up to 7 (zeros come in at the
    /// top). `None` when the eight bytes run past the words, which only a
    /// `bit` past the stretch makes them do: its last word is followed by
    /// one more ([`Index::bits`]).
    #[inline(always)]
    fn window(&self, bit: usize) -> Option<u64> {
        let (bytes, at) = (self.words.as_flattened(), bit / 8);
        // (One comparison: `at + 8` cannot overflow.)
        if at + 8 > bytes.len() {
            return None;
        }
        let window: [u8; 8] = bytes[at..at + 8].try_into().ok()?;
        Some(u64::from_le_bytes(window) >> (bit % 8))
    }

    /// The first set bit at or after `bit`, word by word.
    fn first_bit_from(&self, bit: usize) -> Option<usize> {
        let mut block = bit / BLOCK;
        let mut word = u64::from_le_bytes(*self.words.get(block)?) & (u64::MAX << (bit % BLOCK));
        while word == 0 {
            block += 1;
            word = u64::from_le_bytes(*self.words.get(block)?);
        }
        Some(block * BLOCK + word.trailing_zeros() as usize)
    }

    /// Every offset, in order.
    #[inline(always)]
    pub(crate) fn iter(&self) -> BitIter<'a> {
        self.offsets()
    }

    /// Every offset, in order, and then those past the stretch's end in
    /// its last word and the next (a later line's): for a caller whose own checks put
    /// each offset it keeps inside the stretch, and so need not pay for a
    /// comparison with its end per offset.
    #[inline(always)]
    pub(crate) fn iter_to_word_end(&self) -> BitIter<'a, false> {
        self.offsets()
    }

    #[inline(always)]
    fn offsets<const WITHIN: bool>(&self) -> BitIter<'a, WITHIN> {
        match self.words.split_first() {
            Some((&first, rest)) => BitIter {
                bits: u64::from_le_bytes(first) & (u64::MAX << self.shift),
                words: rest.iter(),
                base: 0usize.wrapping_sub(self.shift),
                len: self.len,
            },
            None => BitIter::default(),
        }
    }
}

/// The offsets of a [`Bits`], in order, read off a bit at a time as far as
/// the caller asks: those inside its stretch, or with `WITHIN` false
/// (`Bits::iter_to_word_end`) up to the end of its words.
#[derive(Debug, Clone, Default)]
pub(crate) struct BitIter<'a, const WITHIN: bool = true> {
    /// The bits not yet returned, of the word whose first offset is `base`.
    bits: u64,
    /// The later words, as an iterator: a word without a bit (most words
    /// between two newlines) then costs one pointer comparison, where a
    /// slice split off costs a length test and two updates.
    words: std::slice::Iter<'a, Word>,
    base: usize,
    len: usize,
}

impl<const WITHIN: bool> Iterator for BitIter<'_, WITHIN> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.bits = u64::from_le_bytes(*self.words.next()?);
            self.base = self.base.wrapping_add(BLOCK);
        }
        let at = self.base.wrapping_add(self.bits.trailing_zeros() as usize);
        self.bits &= self.bits - 1;
        (!WITHIN || at < self.len).then_some(at)
    }
}

/// Each class's bits for whole blocks, with the widest compare this CPU
/// has: on x86_64, AVX-512BW or AVX2 when present (checked once and cached
/// by std), SSE2 otherwise; NEON on aarch64; words elsewhere.
fn classify_blocks(blocks: &[[u8; BLOCK]], out: [&mut [Word]; CLASSES.len()]) {
    debug_assert!(out.iter().all(|words| words.len() == blocks.len()));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: this CPU has AVX-512BW, checked just above.
            return unsafe { wide::classify_avx512(blocks, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2, checked just above.
            return unsafe { wide::classify_avx2(blocks, out) };
        }
    }
    classify_by_chunks(blocks, out);
}

/// Each block's word of every class, in step: zipped rather than indexed,
/// so that a block costs no bounds check per class.
#[inline(always)]
fn outputs(out: [&mut [Word]; CLASSES.len()]) -> impl Iterator<Item = [&mut Word; CLASSES.len()]> {
    let [quotes, newlines, spaces] = out;
    quotes
        .iter_mut()
        .zip(newlines)
        .zip(spaces)
        .map(|((quote, newline), space)| [quote, newline, space])
}

/// [`classify_blocks`] sixteen bytes per compare.
fn classify_by_chunks(blocks: &[[u8; BLOCK]], out: [&mut [Word]; CLASSES.len()]) {
    for (block, words) in blocks.iter().zip(outputs(out)) {
        let (chunks, _) = block.as_chunks::<CHUNK>();
        let mut bits = [0u64; CLASSES.len()];
        for (index, chunk) in chunks.iter().enumerate() {
            for (class, &needle) in bits.iter_mut().zip(&CLASSES) {
                *class |= chunk_bits(chunk, needle) << (CHUNK * index);
            }
        }
        for (word, bits) in words.into_iter().zip(bits) {
            *word = bits.to_le_bytes();
        }
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

    use super::{BLOCK, CLASSES, Word, outputs};

    /// A whole block per compare, its matches straight into a mask.
    #[target_feature(enable = "avx512bw")]
    pub(super) fn classify_avx512(blocks: &[[u8; BLOCK]], out: [&mut [Word]; CLASSES.len()]) {
        let needles = CLASSES.map(|needle| _mm512_set1_epi8(needle as i8));
        for (block, [quote, newline, space]) in blocks.iter().zip(outputs(out)) {
            // SAFETY: `block` is 64 readable bytes; the load is unaligned.
            let bytes = unsafe { _mm512_loadu_si512(block.as_ptr().cast::<__m512i>()) };
            *quote = _mm512_cmpeq_epi8_mask(bytes, needles[0]).to_le_bytes();
            *newline = _mm512_cmpeq_epi8_mask(bytes, needles[1]).to_le_bytes();
            *space = _mm512_cmpeq_epi8_mask(bytes, needles[2]).to_le_bytes();
        }
    }

    /// Half a block per compare.
    #[target_feature(enable = "avx2")]
    pub(super) fn classify_avx2(blocks: &[[u8; BLOCK]], out: [&mut [Word]; CLASSES.len()]) {
        let needles = CLASSES.map(|needle| _mm256_set1_epi8(needle as i8));
        let mask = |equal: __m256i| _mm256_movemask_epi8(equal).to_le_bytes();
        for (block, [quote, newline, space]) in blocks.iter().zip(outputs(out)) {
            let (halves, _) = block.as_chunks::<32>();
            // SAFETY: each half is 32 readable bytes; the loads are unaligned.
            let (low, high) = unsafe {
                (
                    _mm256_loadu_si256(halves[0].as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(halves[1].as_ptr().cast::<__m256i>()),
                )
            };
            // Each half's mask stored as its half of the word's bytes (no
            // shift and or to join them).
            let bits = |word: &mut Word, needle| {
                let (first, second) = word.split_at_mut(4);
                first.copy_from_slice(&mask(_mm256_cmpeq_epi8(low, needle)));
                second.copy_from_slice(&mask(_mm256_cmpeq_epi8(high, needle)));
            };
            bits(quote, needles[0]);
            bits(newline, needles[1]);
            bits(space, needles[2]);
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

/// [`chunk_bits`] with plain word arithmetic: one bit per byte.
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    allow(dead_code, reason = "the fallback, compiled everywhere to be tested")
)]
#[inline(always)]
fn swar_chunk_bits(chunk: &[u8; CHUNK], needle: u8) -> u64 {
    let (groups, _) = chunk.as_chunks::<8>();
    let halves = [
        eight_bits(&groups[0], needle),
        eight_bits(&groups[1], needle),
    ];
    u64::from(u16::from_le_bytes(halves))
}

/// One bit per byte of `bytes` that equals `needle`, byte `i` at bit `i`,
/// in the CPU's own words: a 32-bit CPU emulates each 64-bit add, shift and
/// multiply with several instructions, so there two words' matches are
/// interleaved and gathered by one 32-bit multiply.
#[inline(always)]
fn eight_bits(bytes: &[u8; 8], needle: u8) -> u8 {
    /// Gathers bit `8 * i` into bit `56 + i` (of a 32-bit word: the top
    /// half, `0x0102_0408`, gathers it into bit `24 + i`).
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let word = u64::from_le_bytes(*bytes);
    #[cfg(target_pointer_width = "64")]
    {
        ((word_bits(word, needle) >> 7).wrapping_mul(GATHER) >> 56) as u8
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        let low = narrow_word_bits(word as u32, needle) >> 7;
        // At bits 8i + 4, the multiply takes these to bits 28 + i, above
        // the low word's, and no two partial products overlap.
        let high = narrow_word_bits((word >> 32) as u32, needle) >> 3;
        ((low | high).wrapping_mul((GATHER >> 32) as u32) >> 24) as u8
    }
}

/// [`word_bits`] for a 32-bit word.
#[cfg(not(target_pointer_width = "64"))]
#[inline(always)]
fn narrow_word_bits(word: u32, needle: u8) -> u32 {
    const LOW7: u32 = 0x7f7f_7f7f;
    let x = word ^ (u32::from(needle) * 0x0101_0101);
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Classifier = dyn Fn(&[[u8; BLOCK]], [&mut [Word]; CLASSES.len()]);

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
            prop_assert_eq!(find_byte(needle, &haystack), haystack.iter().position(|&b| b == needle));
            for from in 0..=haystack.len() + 1 {
                let expected = haystack
                    .get(from..)
                    .and_then(|rest| rest.iter().position(|&b| b == needle))
                    .map(|at| from + at);
                prop_assert_eq!(find_from(needle, &haystack, from), expected, "from {}", from);
            }
        }

        #[test]
        fn the_index_finds_what_byte_loops_find(
            buf in prop_oneof![
                // Dense, and sparse: matches often more than a word apart.
                proptest::collection::vec(
                    prop_oneof![Just(b'"'), Just(b'\n'), Just(b' '), Just(b'a'), any::<u8>()],
                    0..300,
                ),
                proptest::collection::vec(
                    prop_oneof![1 => Just(b'"'), 1 => Just(b'\n'), 1 => Just(b' '), 150 => Just(b'a')],
                    0..400,
                ),
            ],
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
            for from in 0..=buf.len() {
                let to = buf[from..].iter().position(|&b| b == b'\n').map_or(buf.len(), |at| from + at);
                let newlines = index.bits(Class::Newline, from, buf.len());
                prop_assert_eq!(newlines.first_from(0), (to < buf.len()).then_some(to - from));
                for (class, needle) in [(Class::Quote, b'"'), (Class::Space, b' ')] {
                    let line = &buf[from..to];
                    let bits = index.bits(class, from, to);
                    let all: Vec<u32> = bits.iter().map(|at| at as u32).collect();
                    prop_assert_eq!(&all, &naive(needle, line, usize::MAX));
                    for at in 0..=line.len() + 1 {
                        let first_from = |at: usize| line.get(at..)
                            .and_then(|rest| rest.iter().position(|&b| b == needle))
                            .map(|found| at + found);
                        let expected = first_from(at);
                        prop_assert_eq!(bits.first_from(at), expected, "from {} at {}", from, at);
                        let two = expected.map(|first| (first, first_from(first + 1)));
                        prop_assert_eq!(bits.first_two_from(at), two, "from {} at {}", from, at);
                    }
                }
            }
        }

        #[test]
        fn every_block_classifier_agrees(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\n'), Just(b' '), Just(0xa2u8), Just(0x8au8), any::<u8>()],
                0..8 * BLOCK,
            ),
        ) {
            let (blocks, _) = bytes.as_chunks::<BLOCK>();
            let expected: Vec<[u64; 3]> = blocks
                .iter()
                .map(|block| {
                    CLASSES.map(|needle| {
                        block.iter().enumerate().fold(0u64, |bits, (at, &byte)| {
                            bits | u64::from(byte == needle) << at
                        })
                    })
                })
                .collect();
            let run = |classify: &Classifier| {
                let mut out = [(); CLASSES.len()].map(|()| vec![Word::default(); blocks.len()]);
                let [quotes, newlines, spaces] = &mut out;
                classify(blocks, [quotes, newlines, spaces]);
                (0..blocks.len())
                    .map(|k| out.each_ref().map(|words| u64::from_le_bytes(words[k])))
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(&run(&classify_by_chunks), &expected);
            prop_assert_eq!(&run(&classify_blocks), &expected);
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: this CPU has AVX2.
                    prop_assert_eq!(&run(&|b, out| unsafe { wide::classify_avx2(b, out) }), &expected);
                }
                if std::arch::is_x86_feature_detected!("avx512bw") {
                    // SAFETY: this CPU has AVX-512BW.
                    prop_assert_eq!(&run(&|b, out| unsafe { wide::classify_avx512(b, out) }), &expected);
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
