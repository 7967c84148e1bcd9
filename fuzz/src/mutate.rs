//! Mutations of corpus entries: byte flips, insertions, deletions, truncation, splicing with
//! another entry, repeated ranges (deep nesting, long runs), and tokens parsers trip on
//! (huge numbers, odd Unicode, control characters, invalid UTF-8).

use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::Rng;

/// Text that often breaks a parser or a mapping, spliced in whole.
const TOKENS: &[&[u8]] = &[
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e999999",
    b"-0",
    b"0.000000000000000000000000000001",
    b"99999999999999999999999999999999999999",
    b"NaN",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\"",
    b"\\u0000",
    b"\\ud800",
    b"\\uDFFF\\uD800",
    b"\xe2\x80\xae",     // U+202E right-to-left override
    b"\xef\xbb\xbf",     // BOM
    b"\xf0\x9d\x95\x8f", // a 4-byte character
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80", // an encoded surrogate
    b"\x1b[2J",
    b"\x00",
    b"\r\n",
    b"\t",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"&undefined;",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE a [<!ENTITY b \"bbbbbbbbbb\">]>",
    b"<?xml version=\"1.0\"?>",
    b"xmlns:soap=\"\"",
    b"${",
    b"{%",
    b"{{",
    b"'''",
    b"\"\"\"",
    b"[[a]]",
    b"= ",
    b"\\",
];

/// Openers repeated to make deep nesting.
const NESTERS: &[&[u8]] = &[b"[", b"{\"a\":", b"<a>", b"<s:Body>", b"a = [", b"x.", b"{"];

/// One to four mutations of a random entry of `corpus` (which must not be empty).
pub fn mutate(corpus: &[Vec<u8>], rng: &mut SmallRng) -> Vec<u8> {
    let mut data = corpus.choose(rng).cloned().unwrap_or_default();
    let rounds = rng.random_range(1..=4);
    for _ in 0..rounds {
        mutate_once(&mut data, corpus, rng);
    }
    data
}

/// A position in `data` (0..=len).
fn position(data: &[u8], rng: &mut SmallRng) -> usize {
    rng.random_range(0..=data.len())
}

/// A range of `data` of at most `max` bytes.
fn range(data: &[u8], max: usize, rng: &mut SmallRng) -> (usize, usize) {
    let start = position(data, rng);
    let end = (start + rng.random_range(0..=max)).min(data.len());
    (start, end)
}

fn mutate_once(data: &mut Vec<u8>, corpus: &[Vec<u8>], rng: &mut SmallRng) {
    match rng.random_range(0..10) {
        // Flip bits of one byte.
        0 if !data.is_empty() => {
            let at = rng.random_range(0..data.len());
            data[at] ^= 1 << rng.random_range(0..8);
        }
        // Set one byte to anything.
        1 if !data.is_empty() => {
            let at = rng.random_range(0..data.len());
            data[at] = rng.random();
        }
        // Delete a range.
        2 => {
            let (start, end) = range(data, 64, rng);
            data.drain(start..end);
        }
        // Truncate.
        3 => {
            let at = position(data, rng);
            data.truncate(at);
        }
        // Splice: our head, another entry's tail.
        4 => {
            if let Some(other) = corpus.choose(rng) {
                let at = position(data, rng);
                let from = rng.random_range(0..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
        // Repeat a range many times (long runs, duplicated records).
        5 => {
            let (start, end) = range(data, 32, rng);
            let piece = data[start..end].to_vec();
            let times = *[2usize, 16, 256, 4096].choose(rng).unwrap_or(&2);
            let at = position(data, rng);
            let repeated: Vec<u8> = piece
                .iter()
                .copied()
                .cycle()
                .take(piece.len() * times)
                .collect();
            data.splice(at..at, repeated);
        }
        // Deep nesting.
        6 => {
            let opener = NESTERS.choose(rng).copied().unwrap_or(b"[");
            let depth = *[64usize, 1000, 20_000].choose(rng).unwrap_or(&64);
            let at = position(data, rng);
            let nested: Vec<u8> = opener
                .iter()
                .copied()
                .cycle()
                .take(opener.len() * depth)
                .collect();
            data.splice(at..at, nested);
        }
        // Replace a range with a token.
        7 => {
            let token = TOKENS.choose(rng).copied().unwrap_or(b"");
            let (start, end) = range(data, 8, rng);
            data.splice(start..end, token.iter().copied());
        }
        // Insert a token.
        8 => {
            let token = TOKENS.choose(rng).copied().unwrap_or(b"");
            let at = position(data, rng);
            data.splice(at..at, token.iter().copied());
        }
        // Insert a control character.
        _ => {
            let at = position(data, rng);
            data.insert(at, rng.random_range(0..0x20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mutations_change_the_input_and_stay_bounded() {
        let corpus = vec![b"{\"users\":[{\"id\":1}]}".to_vec(), b"<a/>".to_vec()];
        let mut rng = SmallRng::seed_from_u64(7);
        let outputs: Vec<Vec<u8>> = (0..500).map(|_| mutate(&corpus, &mut rng)).collect();
        assert!(outputs.iter().filter(|o| !corpus.contains(o)).count() > 400);
        assert!(outputs.iter().all(|o| o.len() < 1_000_000));
    }
}
