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
            out[found] = base + bits.trailing_zeros() / STRIDE;
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
    let (chunks, tail) = rest.as_chunks::<CHUNK>();
    for (index, chunk) in chunks.iter().enumerate().take(INLINE / CHUNK) {
        let bits = chunk_bits(chunk, needle);
        if bits != 0 {
            return Some(from + index * CHUNK + (bits.trailing_zeros() / STRIDE) as usize);
        }
    }
    if chunks.len() > INLINE / CHUNK {
        return memchr::memchr(needle, &rest[INLINE..]).map(|at| from + INLINE + at);
    }
    if tail.is_empty() {
        return None;
    }
    let start = line.len() - tail.len();
    if let Some(last) = line.last_chunk::<CHUNK>() {
        // The last sixteen bytes of the line, less those before `start`.
        let bits = chunk_bits(last, needle) >> ((CHUNK - tail.len()) as u32 * STRIDE);
        return (bits != 0).then(|| start + (bits.trailing_zeros() / STRIDE) as usize);
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

/// Bits per byte in [`chunk_bits`]'s answer: byte `i` matched when bit
/// `STRIDE * i` (x86_64, fallback) or `STRIDE * i + 3` (aarch64) is set.
#[cfg(target_arch = "x86_64")]
const STRIDE: u32 = 1;
#[cfg(target_arch = "aarch64")]
const STRIDE: u32 = 4;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const STRIDE: u32 = 1;

/// One bit per byte of `chunk` that equals `needle` (SSE2's `pmovmskb`).
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

/// Four bits per byte of `chunk`, the top one set when the byte equals
/// `needle` (NEON has no `pmovmskb`; narrowing the compare by four bits
/// per byte is the usual stand-in).
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn chunk_bits(chunk: &[u8; CHUNK], needle: u8) -> u64 {
    use std::arch::aarch64::{
        vceqq_u8, vdupq_n_u8, vget_lane_u64, vld1q_u8, vreinterpret_u64_u8, vreinterpretq_u16_u8,
        vshrn_n_u16,
    };
    // SAFETY: NEON is part of the aarch64 baseline, so the target feature
    // these intrinsics require is always there; `chunk` is 16 readable
    // bytes.
    let nibbles = unsafe {
        let equal = vceqq_u8(vld1q_u8(chunk.as_ptr()), vdupq_n_u8(needle));
        vget_lane_u64::<0>(vreinterpret_u64_u8(vshrn_n_u16::<4>(vreinterpretq_u16_u8(
            equal,
        ))))
    };
    nibbles & 0x8888_8888_8888_8888
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
