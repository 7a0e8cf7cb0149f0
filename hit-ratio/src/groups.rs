//! Path groups (`/`, `/assets`, `/api`, …, `other`), matched on the request
//! target as logged.
//!
//! A prefix matches a path segment by segment: `/api` takes `/api`,
//! `/api/x` and `/api?x`, not `/apix`. The target is matched where it lies
//! in the line, without first cutting off its query string, and each
//! prefix's first eight bytes are compared as one word: this runs once per
//! log line, against every configured prefix.

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

/// The configured prefixes, in order: group 0 is `/` itself, 1.. the
/// prefixes, and the last `other`.
#[derive(Debug, Clone)]
pub struct PathGroups {
    prefixes: Vec<Prefix>,
}

impl PathGroups {
    /// Compile `prefixes` (each starting with `/`, as `--groups` checks;
    /// at most 64, a bit each when matching).
    pub fn new(prefixes: &[Vec<u8>]) -> Self {
        assert!(prefixes.len() <= 64, "at most 64 path-group prefixes");
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
        PathGroups { prefixes }
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
        if matches!(target, [b'/'] | [b'/', b'?', ..]) {
            return 0;
        }
        let head = target
            .first_chunk::<8>()
            .map(|head| u64::from_le_bytes(*head));
        // Every prefix is tried and the first match kept: a loop of fixed
        // length, where stopping at the match would be a branch as random
        // as the log's paths.
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

    proptest! {
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
