//! Path groups (`/`, `/assets`, `/api`, …, `other`), matched on the request
//! target as logged.
//!
//! A prefix matches a path segment by segment: `/api` takes `/api`,
//! `/api/x` and `/api?x`, not `/apix`. The target is matched without first
//! cutting off its query string: this runs once per log line, against every
//! configured prefix.
//!
//! The target's first 16 bytes are read once per line as two words, padded
//! with `?` when it is shorter (a target is grouped as its path, and `/api`
//! has the path of `/api?`). A prefix of up to 15 bytes (16 ending with `/`)
//! is then one masked compare of those two words, the byte after it
//! included: that byte without bit 4 must be `/` (0x2f), which only `/`,
//! `?` (0x3f) and so the padding are.

use std::hint::select_unpredictable;

/// One prefix, with its first eight bytes as a little-endian word and the
/// mask of those that count.
#[derive(Debug, Clone)]
struct Prefix {
    bytes: Vec<u8>,
    head: u64,
    mask: u64,
    /// A prefix with a query string can never match a path.
    never: bool,
    /// The prefix ends with `/`: whatever follows it is below it.
    ends_segment: bool,
}

/// One prefix as a compare with a target's [`head`]: it matches when
/// `head & mask == bytes` in both words. `bytes` is the prefix and, unless
/// it ends with `/`, a `/` after it that `mask` leaves bit 4 out of; both
/// xor-ed with `?` where `mask` is set, as the head is.
#[derive(Debug, Clone, Copy)]
struct Compare {
    mask: [u64; 2],
    bytes: [u64; 2],
    group: usize,
}

/// `?` in every byte: the padding after a target shorter than 16 bytes.
const PAD: u64 = u64::from_le_bytes([b'?'; 8]);

/// `/` itself (padded: `/?`) or `/?…`, in the first two bytes of a head.
const ROOT: u64 = (b'/' ^ b'?') as u64;

impl Compare {
    /// This prefix's group if it matches the target's head, else `group`.
    #[inline(always)]
    fn select(&self, low: u64, high: u64, group: usize) -> usize {
        let differs =
            ((low & self.mask[0]) ^ self.bytes[0]) | ((high & self.mask[1]) ^ self.bytes[1]);
        select_unpredictable(differs == 0, self.group, group)
    }

    /// `None` when the prefix and the byte after it do not fit in 16 bytes.
    fn new(prefix: &[u8], group: usize) -> Option<Self> {
        let mut mask = [0u8; 16];
        let mut bytes = [0u8; 16];
        if prefix.contains(&b'?') {
            // Never a match: a bit the mask takes out of the head.
            bytes[0] = 1;
        } else {
            let ends_segment = prefix.last() == Some(&b'/');
            let len = prefix.len() + usize::from(!ends_segment);
            if len > 16 {
                return None;
            }
            bytes[..prefix.len()].copy_from_slice(prefix);
            mask[..prefix.len()].fill(0xff);
            if !ends_segment {
                bytes[prefix.len()] = b'/';
                mask[prefix.len()] = !0x10;
            }
            for (byte, mask) in bytes.iter_mut().zip(mask) {
                *byte ^= b'?' & mask;
            }
        }
        let words = |b: [u8; 16]| {
            let (low, high) = b.split_at(8);
            [
                u64::from_le_bytes(low.try_into().expect("8 bytes")),
                u64::from_le_bytes(high.try_into().expect("8 bytes")),
            ]
        };
        Some(Compare {
            mask: words(mask),
            bytes: words(bytes),
            group,
        })
    }
}

/// The configured prefixes, in order: group 0 is `/` itself, 1.. the
/// prefixes, and the last `other`.
#[derive(Debug, Clone)]
pub struct PathGroups {
    prefixes: Vec<Prefix>,
    /// One per prefix, last first, in pairs (the first half of the first
    /// one a never-matching pad when there is an odd number of prefixes).
    compares: Vec<[Compare; 2]>,
    /// Some prefix does not fit in the head: `prefixes` are matched one
    /// word and a slice compare at a time.
    by_word: bool,
}

impl PathGroups {
    /// Compile `prefixes` (each starting with `/`, as `--groups` checks;
    /// at most 64, a bit each when matching).
    pub fn new(prefixes: &[Vec<u8>]) -> Self {
        assert!(prefixes.len() <= 64, "at most 64 path-group prefixes");
        let pad = (prefixes.len() % 2 == 1).then(|| Compare::new(b"?", 0));
        let compares = (pad.into_iter())
            .chain((prefixes.iter().enumerate().rev()).map(|(i, p)| Compare::new(p, i + 1)))
            .collect::<Option<Vec<_>>>();
        let by_word = compares.is_none();
        let compares = (compares.unwrap_or_default().chunks_exact(2))
            .map(|pair| [pair[0], pair[1]])
            .collect();
        let prefixes = prefixes
            .iter()
            .map(|bytes| {
                let head = &bytes[..bytes.len().min(8)];
                let mut word = [0u8; 8];
                word[..head.len()].copy_from_slice(head);
                Prefix {
                    bytes: bytes.clone(),
                    head: u64::from_le_bytes(word),
                    mask: match head.len() {
                        8 => u64::MAX,
                        n => (1u64 << (8 * n)) - 1,
                    },
                    never: bytes.contains(&b'?'),
                    ends_segment: bytes.last() == Some(&b'/'),
                }
            })
            .collect();
        PathGroups {
            prefixes,
            compares,
            by_word,
        }
    }

    /// How many groups there are, `/` and `other` included.
    pub fn count(&self) -> usize {
        self.prefixes.len() + 2
    }

    /// The group of a request target (path and query, as in
    /// `GET /x?y HTTP/1.1`); `other` when there is none.
    #[inline(always)]
    pub fn of_target(&self, target: Option<&[u8]>) -> usize {
        let other = self.prefixes.len() + 1;
        let Some(target) = target else { return other };
        if self.by_word {
            return self.of_target_by_word(target);
        }
        let [low, high] = head(target);
        // Every prefix is tried, from the last, and the first match kept: a
        // loop of fixed length, where stopping at the match would be a
        // branch as random as the log's paths, and a select where keeping
        // the match would be one.
        let mut group = other;
        for [first, second] in &self.compares {
            group = first.select(low, high, group);
            group = second.select(low, high, group);
        }
        select_unpredictable(low & 0xffff == ROOT, 0, group)
    }

    /// [`Self::of_target`] with a prefix that does not fit in 16 bytes.
    #[inline(always)]
    fn of_target_by_word(&self, target: &[u8]) -> usize {
        let other = self.prefixes.len() + 1;
        if matches!(target, [b'/'] | [b'/', b'?', ..]) {
            return 0;
        }
        let head = target
            .first_chunk::<8>()
            .map(|head| u64::from_le_bytes(*head));
        let mut matches = 0u64;
        for (index, prefix) in self.prefixes.iter().enumerate() {
            let starts = match head {
                Some(head) if prefix.bytes.len() <= 8 => head & prefix.mask == prefix.head,
                Some(head) => {
                    head == prefix.head
                        && target.get(8..prefix.bytes.len()) == Some(&prefix.bytes[8..])
                }
                None => target.starts_with(&prefix.bytes),
            };
            // The byte after the prefix must end a path segment.
            let next = target.get(prefix.bytes.len()).copied().unwrap_or(b'/');
            let ends_segment = prefix.ends_segment | (next == b'/') | (next == b'?');
            matches |= u64::from(starts & !prefix.never & ends_segment) << index;
        }
        if matches != 0 {
            return matches.trailing_zeros() as usize + 1;
        }
        other
    }
}

/// A target's first 16 bytes as two little-endian words, padded with `?`
/// and then xor-ed with `?`: the padding is 0.
#[inline(always)]
fn head(target: &[u8]) -> [u64; 2] {
    let len = target.len();
    if len > 8 {
        // The 8 bytes that end at byte 16 or the target's end, shifted down
        // to start at byte 8.
        let end = len.min(16);
        let first = u64::from_le_bytes(target[..8].try_into().expect("8 bytes"));
        let last = u64::from_le_bytes(target[end - 8..end].try_into().expect("8 bytes"));
        return [first ^ PAD, (last ^ PAD) >> (8 * (16 - end))];
    }
    // Two words or three bytes that overlap when the target is shorter.
    let low = match len {
        0 => return [0, 0],
        1..4 => {
            u64::from(target[0])
                | u64::from(target[len / 2]) << (8 * (len / 2))
                | u64::from(target[len - 1]) << (8 * (len - 1))
        }
        _ => {
            let first = u32::from_le_bytes(target[..4].try_into().expect("4 bytes"));
            let last = u32::from_le_bytes(target[len - 4..].try_into().expect("4 bytes"));
            u64::from(first) | u64::from(last) << (8 * (len - 4))
        }
    };
    [(low ^ PAD) & (u64::MAX >> (64 - 8 * len)), 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rule on the path alone (the target without its query string).
    fn group_of_path(prefixes: &[Vec<u8>], path: &[u8]) -> usize {
        if path == b"/" {
            return 0;
        }
        for (index, prefix) in prefixes.iter().enumerate() {
            if let Some(rest) = path.strip_prefix(prefix.as_slice())
                && (rest.is_empty() || prefix.ends_with(b"/") || rest[0] == b'/')
            {
                return index + 1;
            }
        }
        prefixes.len() + 1
    }

    #[test]
    fn groups_match_whole_segments() {
        let groups = PathGroups::new(&[b"/api".to_vec(), b"/static/".to_vec()]);
        let of = |target: &[u8]| groups.of_target(Some(target));
        assert_eq!(of(b"/"), 0);
        assert_eq!(of(b"/?v=1"), 0);
        assert_eq!(of(b"/api"), 1);
        assert_eq!(of(b"/api?x=1"), 1);
        assert_eq!(of(b"/api/v1"), 1);
        assert_eq!(of(b"/apix"), 3);
        assert_eq!(of(b"/static/x"), 2);
        assert_eq!(of(b"/static"), 3);
        assert_eq!(groups.of_target(None), 3);
    }

    /// Prefixes starting with `/` of 1 to `max` bytes from `alphabet`.
    fn prefixes(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(
            proptest::collection::vec(proptest::sample::select(alphabet), 0..max).prop_map(
                |mut p| {
                    p.insert(0, b'/');
                    p
                },
            ),
            0..5,
        )
    }

    /// Targets of up to 20 bytes (around the 8 and 16 of the head), from
    /// `alphabet`, mostly starting with `/`.
    fn targets(alphabet: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
        (
            any::<bool>(),
            proptest::collection::vec(proptest::sample::select(alphabet), 0..20),
        )
            .prop_map(|(slash, mut t)| {
                if slash {
                    t.insert(0, b'/');
                }
                t
            })
    }

    fn check(prefixes: &[Vec<u8>], target: &[u8]) -> Result<(), TestCaseError> {
        let groups = PathGroups::new(prefixes);
        let path = match target.iter().position(|&b| b == b'?') {
            Some(query) => &target[..query],
            None => target,
        };
        let group = group_of_path(prefixes, path);
        prop_assert_eq!(groups.of_target(Some(target)), group);
        prop_assert_eq!(groups.of_target_by_word(target), group);
        Ok(())
    }

    #[test]
    fn groups_at_the_edges_of_the_head() {
        let prefixes = [
            b"/abcdefghijklmn".to_vec(),  // 15: the `/` after it is byte 15
            b"/abcdefghijklmn/".to_vec(), // 16, ends with `/`
            b"/bcdefghijklmnop".to_vec(), // 16: matched by word
            b"/a?".to_vec(),              // never
            b"/abcdefg".to_vec(),         // 8
            b"/abcdef/".to_vec(),         // 8, ends with `/`
        ];
        for (prefixes, fast) in [
            (&prefixes[..2], true),
            (&prefixes[..], false),
            (&prefixes[3..], true),
        ] {
            let groups = PathGroups::new(prefixes);
            assert_eq!(!groups.by_word, fast);
            for target in [
                &b""[..],
                b"/",
                b"/?",
                b"//",
                b"/a",
                b"/a?",
                b"/abcdef",
                b"/abcdef/",
                b"/abcdefg",
                b"/abcdefg?",
                b"/abcdefg/",
                b"/abcdefgh",
                b"/abcdefghijklm",
                b"/abcdefghijklmn",
                b"/abcdefghijklmn?",
                b"/abcdefghijklmn/",
                b"/abcdefghijklmn/x",
                b"/abcdefghijklmno",
                b"/abcdefghijklmn\x00",
                b"/abcdefghijklmn\x3f",
                b"/abcdefghijklmn\x1f",
                b"/abcdefghijklmn\x6f",
                b"/bcdefghijklmnop",
                b"/bcdefghijklmnop/",
                b"/bcdefghijklmnopq",
            ] {
                check(prefixes, target).unwrap();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Prefixes of 1 to 20 bytes: some sets of them are matched on
        /// the 16-byte head, some by word.
        #[test]
        fn a_target_is_grouped_as_its_path_is_up_to_20_bytes(
            prefixes in prefixes(b"/a?b", 20),
            target in targets(b"/a?b"),
        ) {
            check(&prefixes, &target)?;
        }

        /// Targets that start with (most of) one of the prefixes (without
        /// `?`, which would be most long ones), so that long ones match and
        /// miss by a byte.
        #[test]
        fn a_target_near_a_prefix_is_grouped_as_its_path_is(
            prefixes in prefixes(b"/ab", 20),
            pick in any::<proptest::sample::Index>(),
            cut in 0..3usize,
            suffix in proptest::collection::vec(proptest::sample::select(b"/a?b".to_vec()), 0..4),
        ) {
            let mut target = match prefixes.len() {
                0 => Vec::new(),
                n => prefixes[pick.index(n)].clone(),
            };
            target.truncate(target.len().saturating_sub(cut));
            target.extend(suffix);
            check(&prefixes, &target)?;
        }

        /// Prefixes that fit in the head, bytes that differ from `/` and
        /// `?` only in bit 4 or are 0 (the head's padding).
        #[test]
        fn a_target_is_grouped_as_its_path_is_on_the_head(
            prefixes in prefixes(b"/a?b\x00\x1f\x6f", 15),
            target in targets(b"/a?b\x00\x1f\x6f"),
        ) {
            prop_assert!(!PathGroups::new(&prefixes).by_word);
            check(&prefixes, &target)?;
        }

        #[test]
        fn a_target_is_grouped_as_its_path_is(
            prefixes in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(b"/a?b".to_vec()), 0..11)
                    .prop_map(|mut p| { p.insert(0, b'/'); p }),
                0..5,
            ),
            target in proptest::collection::vec(proptest::sample::select(b"/a?b".to_vec()), 1..20),
        ) {
            let groups = PathGroups::new(&prefixes);
            let path = match target.iter().position(|&b| b == b'?') {
                Some(query) => &target[..query],
                None => &target[..],
            };
            prop_assert_eq!(groups.of_target(Some(&target)), group_of_path(&prefixes, path));
        }
    }
}
