//! Terminal-safe text for human-facing output: the one escaping function every table,
//! summary, error line and text-mode log line goes through.
//!
//! idsync prints data that other people control (a target user can often edit their own
//! display name). A raw ESC in such a value would let them clear the operator's screen or
//! recolour it; a bidi override (U+202E) would let them reorder what the operator reads; a
//! newline would let them forge a table row or a log line. [`escape`] shows each such
//! character in Rust's visible form (`\u{1b}`) and leaves every other character (accents,
//! CJK, emoji) as it is. JSON output never goes through here: it stays exact.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Whether `c` must not reach a terminal raw: a C0 control (tab and newline included, so a
/// row or log line stays one line), DEL, a C1 control, or a bidi mark, embedding, override
/// or isolate.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Whether `c` is a bidi mark, embedding, override or isolate (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069): invisible characters that reorder the text around them.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// `text` with every [`is_unsafe`] character written as `\u{HEX}` (lowercase hex, as Rust
/// writes it). Borrows when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        // Writing to a String cannot fail.
        let _ = push_visible(&mut out, c);
    }
    Cow::Owned(out)
}

/// Appends `c` to `out`, escaped if it is [`is_unsafe`].
fn push_visible(out: &mut impl Write, c: char) -> fmt::Result {
    if is_unsafe(c) {
        write!(out, "\\u{{{:x}}}", u32::from(c))
    } else {
        out.write_char(c)
    }
}

/// A `fmt::Write` that escapes everything written through it into `inner`: for formatters
/// (the text log) that write pieces rather than build one string.
pub struct EscapingWriter<W> {
    inner: W,
}

impl<W: Write> EscapingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner }
    }
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if !text.chars().any(is_unsafe) {
            return self.inner.write_str(text);
        }
        for c in text.chars() {
            push_visible(&mut self.inner, c)?;
        }
        Ok(())
    }
}

/// Displays `T` with every [`is_unsafe`] character escaped: `format!("{}", Visible(err))`.
/// Width and alignment flags are not applied; escape to a `String` first to pad.
pub struct Visible<T>(pub T);

impl<T: fmt::Display> fmt::Display for Visible<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(EscapingWriter::new(f), "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_become_visible() {
        assert_eq!(
            escape("\u{1b}[2J\u{1b}[31mEVIL"),
            "\\u{1b}[2J\\u{1b}[31mEVIL"
        );
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("a\nb\tc\rd\0"), "a\\u{a}b\\u{9}c\\u{d}d\\u{0}");
        assert_eq!(escape("\u{7f}\u{85}\u{9b}"), "\\u{7f}\\u{85}\\u{9b}");
        assert_eq!(
            escape("\u{61c}\u{200e}\u{200f}\u{202a}\u{2066}\u{2069}"),
            "\\u{61c}\\u{200e}\\u{200f}\\u{202a}\\u{2066}\\u{2069}"
        );
    }

    #[test]
    fn ordinary_text_is_unchanged_and_borrowed() {
        for text in [
            "Zoë Müller",
            "山田 太郎",
            "🙂 ok",
            "a\\u{1b}b",
            "",
            "tab-less",
        ] {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn the_writer_escapes_like_escape() {
        let mut out = String::new();
        let mut writer = EscapingWriter::new(&mut out);
        let value = "\u{1b}[31m\u{202e}";
        write!(writer, "name={value} ok").unwrap();
        assert_eq!(out, "name=\\u{1b}[31m\\u{202e} ok");
    }

    /// Text dense in the characters that matter: controls, bidi marks, accents, CJK, emoji.
    const HOSTILE: &str = "[\\x00-\\x1f\\x7f-\\x9f\u{61c}\u{200e}\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}a-zé山🙂\\\\{}]*";

    #[test]
    fn visible_displays_escaped() {
        let line = format!(
            "error: {}",
            Visible(format_args!("no user `{}`", "x\u{1b}]0;t\u{7}"))
        );
        assert_eq!(line, "error: no user `x\\u{1b}]0;t\\u{7}`");
    }

    proptest! {
        #[test]
        fn hostile_text_never_keeps_an_unsafe_character(text in HOSTILE) {
            let escaped = escape(&text);
            prop_assert!(!escaped.chars().any(is_unsafe), "{escaped:?}");
        }

        #[test]
        fn output_never_holds_an_unsafe_character(text in any::<String>()) {
            let escaped = escape(&text);
            prop_assert!(!escaped.chars().any(is_unsafe), "{escaped:?}");
        }

        #[test]
        fn text_without_unsafe_characters_is_unchanged(text in any::<String>()) {
            let safe: String = text.chars().filter(|c| !is_unsafe(*c)).collect();
            prop_assert_eq!(escape(&safe), safe.as_str());
        }

        #[test]
        fn escaping_keeps_every_safe_character_in_order(text in any::<String>()) {
            let kept: String = text.chars().filter(|c| !is_unsafe(*c)).collect();
            let escaped = escape(&text);
            let mut rest = escaped.as_ref();
            for c in kept.chars() {
                let at = rest.find(c);
                prop_assert!(at.is_some(), "{c:?} lost from {escaped:?}");
                rest = &rest[at.unwrap_or(0) + c.len_utf8()..];
            }
        }
    }
}
