//! The body transforms of broken answers, as pure functions: where a body is cut, where
//! garbage goes, how a listing's total moves.

use axum::body::Bytes;
use serde_json::Value;

/// What a `malformed` answer carries spliced into its body: a closing tag no element opened.
/// Neither JSON (after a structural character) nor XML (where a tag may start) allows it.
pub(crate) const GARBAGE: &[u8] = b"</malformed-by-idsync-sim>";

/// Where a listing's total sits in the answers of the REST simulators, tried in order:
/// DigiCert's `page.total`, Jama's `meta.pageInfo.totalResults`.
const TOTAL_POINTERS: [&str; 2] = ["/page/total", "/meta/pageInfo/totalResults"];

/// How many bytes of a `len`-byte body go out before a reset or a truncation: the first
/// half.
pub(crate) fn half(len: usize) -> usize {
    len / 2
}

/// `body` with [`GARBAGE`] spliced in near its middle: after a JSON structural character
/// (outside any string) for a JSON `media` type, before a tag for XML (a mismatched end tag
/// there), at the middle otherwise. The result parses as neither.
pub(crate) fn malformed(body: &[u8], media: &str) -> Bytes {
    let at = if media.contains("json") {
        json_splice_point(body)
    } else if media.contains("xml") {
        xml_splice_point(body)
    } else {
        half(body.len())
    };
    let (head, tail) = body.split_at(at.min(body.len()));
    let mut broken = Vec::with_capacity(body.len() + GARBAGE.len());
    broken.extend_from_slice(head);
    broken.extend_from_slice(GARBAGE);
    broken.extend_from_slice(tail);
    Bytes::from(broken)
}

/// Just after the first `{`, `[`, `:` or `,` outside a string at or past the middle (else
/// the first anywhere, else the start).
fn json_splice_point(body: &[u8]) -> usize {
    let middle = half(body.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut first = None;
    for (index, &byte) in body.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' | b':' | b',' => {
                if index >= middle {
                    return index + 1;
                }
                first.get_or_insert(index + 1);
            }
            _ => {}
        }
    }
    first.unwrap_or(0)
}

/// At the first `<` at or past the middle (else the first anywhere, else the start): between
/// two tags, where an end tag of an element that is not open breaks the document.
fn xml_splice_point(body: &[u8]) -> usize {
    let middle = half(body.len());
    let tag_from = |from: usize| {
        body.get(from..)
            .and_then(|rest| rest.iter().position(|&byte| byte == b'<'))
            .map(|at| from + at)
    };
    tag_from(middle).or_else(|| tag_from(0)).unwrap_or(0)
}

/// `body` (JSON) with the listing's total moved by `delta` (never below 0), or `None` when
/// the body is not JSON or has no total at a known place.
pub(crate) fn drift_total(body: &[u8], delta: i64) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let total = TOTAL_POINTERS.iter().find_map(|pointer| {
        value
            .pointer(pointer)
            .and_then(Value::as_u64)
            .map(|_| *pointer)
    })?;
    let slot = value.pointer_mut(total)?;
    let now = slot.as_u64()?;
    let moved = if delta < 0 {
        now.saturating_sub(delta.unsigned_abs())
    } else {
        now.saturating_add(delta.unsigned_abs())
    };
    *slot = Value::from(moved);
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// `body` with every occurrence of `find` replaced by `replace`, or `None` when it holds
/// none.
pub(crate) fn rewrite(body: &[u8], find: &str, replace: &str) -> Option<Bytes> {
    let find = find.as_bytes();
    if find.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    let mut found = false;
    while let Some(at) = rest.windows(find.len()).position(|window| window == find) {
        found = true;
        let (head, tail) = rest.split_at(at);
        out.extend_from_slice(head);
        out.extend_from_slice(replace.as_bytes());
        rest = tail.get(find.len()..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    found.then(|| Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_no_longer_parses_and_keeps_every_byte() {
        let body = br#"{"users":[{"id":1,"name":"a,b{c"},{"id":2,"name":"d"}],"page":{"total":2}}"#;
        let broken = malformed(body, "application/json");
        assert!(serde_json::from_slice::<Value>(&broken).is_err());
        assert_eq!(broken.len(), body.len() + GARBAGE.len());
        let at = broken
            .windows(GARBAGE.len())
            .position(|window| window == GARBAGE)
            .unwrap();
        assert!(at >= body.len() / 2, "spliced past the middle: {at}");
        // Splicing inside a string would leave valid JSON: the point is structural.
        assert!(matches!(body.get(at - 1), Some(b'{' | b'[' | b':' | b',')));
        // A tiny body still breaks.
        assert!(serde_json::from_slice::<Value>(&malformed(b"7", "application/json")).is_err());
    }

    #[test]
    fn malformed_xml_splices_before_a_tag() {
        let body = b"<a><b x=\"1 &lt; 2\"/><c/><d/></a>";
        let broken = malformed(body, "text/xml; charset=utf-8");
        let text = String::from_utf8(broken.to_vec()).unwrap();
        let at = text.find("</malformed-by-idsync-sim>").unwrap();
        assert!(at >= body.len() / 2);
        // Anything else: the middle.
        let plain = malformed(b"abcdef", "text/plain");
        assert_eq!(&plain[..3], b"abc");
    }

    #[test]
    fn the_total_drifts_where_each_target_keeps_it() {
        let digicert = br#"{"users":[],"page":{"total":10,"limit":5,"offset":0}}"#;
        let moved: Value = serde_json::from_slice(&drift_total(digicert, 3).unwrap()).unwrap();
        assert_eq!(moved["page"]["total"], 13);
        let jama =
            br#"{"meta":{"pageInfo":{"startIndex":0,"resultCount":1,"totalResults":4}},"data":[]}"#;
        let moved: Value = serde_json::from_slice(&drift_total(jama, -9).unwrap()).unwrap();
        assert_eq!(
            moved["meta"]["pageInfo"]["totalResults"], 0,
            "never below 0"
        );
        assert_eq!(drift_total(br#"{"users":[]}"#, 1), None, "no total");
        assert_eq!(drift_total(b"<xml/>", 1), None, "not JSON");
    }

    #[test]
    fn rewrite_replaces_every_occurrence_or_does_not_apply() {
        let body = br#"[{"status":"inactive"},{"status":"active"},{"status":"inactive"}]"#;
        let moved = rewrite(body, r#""status":"inactive""#, r#""status":"pending""#).unwrap();
        assert_eq!(
            &moved[..],
            br#"[{"status":"pending"},{"status":"active"},{"status":"pending"}]"#
        );
        assert_eq!(rewrite(body, "locked", "x"), None);
        assert_eq!(&rewrite(b"aaa", "a", "").unwrap()[..], b"");
    }
}
