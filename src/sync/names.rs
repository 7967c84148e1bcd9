//! Name hygiene at submit: the rules every name and value given to idsync with a task must
//! keep (account, entitlement reference, attribute keys and values, owner, request id,
//! idempotency key, target), and the one form it is stored and compared in.
//!
//! A value is refused, never repaired, when it
//! * contains a control character: C0 (U+0000–U+001F, NUL, TAB, LF and ESC among them), DEL
//!   (U+007F) or C1 (U+0080–U+009F);
//! * contains a bidi control: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069;
//! * contains a line or paragraph separator (U+2028, U+2029);
//! * begins or ends with whitespace (Unicode `White_Space`): `" jane"` is not silently
//!   made into `"jane"`, a different account;
//! * is longer than its field's limit, counted in characters after normalization.
//!
//! A value that passes is stored in Unicode NFC (composed: `zoë` is one `ë`, whatever form
//! it was typed in), so two spellings of one name cannot become two accounts.
//!
//! Data read from targets never passes through here: it is stored as the target gives it.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Most attributes one submit may give.
pub const MAX_ATTRIBUTES: usize = 64;

/// Longest value shown (escaped) in a refusal; longer ones end in `…`.
const SHOWN_CHARS: usize = 40;

/// A field of a submit, with its length limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The target's config name.
    Target,
    /// The account's login name.
    Account,
    /// The entitlement reference, `TYPE:ID_OR_NAME`.
    Entitlement,
    /// An attribute key (it cannot be named: it is the value refused).
    AttributeKey,
    /// The value of the attribute with this (already checked) key.
    AttributeValue(String),
    /// The owning identity's key.
    Owner,
    /// The caller's request id.
    RequestId,
    /// The idempotency key.
    IdempotencyKey,
}

impl Field {
    /// The most characters the field may hold. At or above what the targets accept (DigiCert:
    /// email ≤ 255, names ≤ 128, telephone ≤ 64), so idsync never refuses what a target takes.
    pub fn limit(&self) -> usize {
        match self {
            Field::Target => 128,
            Field::Account | Field::Owner => 256,
            Field::Entitlement => 512,
            Field::AttributeKey => 64,
            Field::AttributeValue(_) => 4096,
            Field::RequestId | Field::IdempotencyKey => 128,
        }
    }
}

impl fmt::Display for Field {
    /// The field as a refusal names it, with its CLI flag where the name differs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Target => f.write_str("target"),
            Field::Account => f.write_str("account"),
            Field::Entitlement => f.write_str("entitlement"),
            Field::AttributeKey => f.write_str("an attribute key"),
            Field::AttributeValue(key) => write!(f, "attribute `{key}`"),
            Field::Owner => f.write_str("owner"),
            Field::RequestId => f.write_str("request_id (--request-id)"),
            Field::IdempotencyKey => f.write_str("idempotency_key (--idempotency-key)"),
        }
    }
}

/// What kind of character a value may not contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// C0, DEL or C1.
    Control,
    /// A bidi mark, embedding, override or isolate.
    Bidi,
    /// U+2028 or U+2029.
    LineSeparator,
}

impl Forbidden {
    /// The class of `c`, if it is forbidden.
    pub fn of(c: char) -> Option<Forbidden> {
        match c {
            c if c.is_control() => Some(Forbidden::Control),
            c if crate::visible::is_bidi_control(c) => Some(Forbidden::Bidi),
            '\u{2028}' | '\u{2029}' => Some(Forbidden::LineSeparator),
            _ => None,
        }
    }
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forbidden::Control => "a control character",
            Forbidden::Bidi => "a bidi control character",
            Forbidden::LineSeparator => "a line separator",
        })
    }
}

/// Which end of a value has whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The first character.
    Leading,
    /// The last character.
    Trailing,
}

/// Why a name or value given at submit was refused. Each message names the field, says what
/// is wrong, shows the value only escaped ([`escape`]) and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A forbidden character.
    #[error(
        "{field} contains {class} {code} at position {position} (value \"{shown}\"); \
         names and values must be plain text: remove it and submit again"
    )]
    Forbidden {
        /// The field.
        field: Field,
        /// The class of the character.
        class: Forbidden,
        /// The character as `U+XXXX`.
        code: String,
        /// Its position, counted in characters from 1.
        position: usize,
        /// The value, escaped and shortened.
        shown: String,
    },
    /// Whitespace at either end.
    #[error(
        "{field} has {} whitespace {code} (value \"{shown}\"); idsync does not trim, since \
         \" jane\" and \"jane\" would be different names: remove it and submit again",
        match end { End::Leading => "leading", End::Trailing => "trailing" }
    )]
    Whitespace {
        /// The field.
        field: Field,
        /// Which end.
        end: End,
        /// The whitespace character as `U+XXXX`.
        code: String,
        /// The value, escaped and shortened.
        shown: String,
    },
    /// Longer than the field's limit.
    #[error(
        "{field} is {length} characters long, over the limit of {limit} (value \"{shown}\"); \
         shorten it"
    )]
    TooLong {
        /// The field.
        field: Field,
        /// Its length in characters (after NFC).
        length: usize,
        /// The field's limit.
        limit: usize,
        /// The value's start, escaped.
        shown: String,
    },
    /// More attributes than [`MAX_ATTRIBUTES`].
    #[error(
        "{given} attributes given, over the limit of {limit}; give only the attributes the \
         operation's templates read (idsync check-config lists them)"
    )]
    TooManyAttributes {
        /// How many were given.
        given: usize,
        /// The limit.
        limit: usize,
    },
}

/// `value` in NFC, or why `field` may not hold it.
pub fn clean(field: Field, value: &str) -> Result<String, NameError> {
    if let Some((index, c, class)) = value
        .chars()
        .enumerate()
        .find_map(|(index, c)| Forbidden::of(c).map(|class| (index, c, class)))
    {
        return Err(NameError::Forbidden {
            field,
            class,
            code: code(c),
            position: index + 1,
            shown: escape(value),
        });
    }
    let ends = [
        (End::Leading, value.chars().next()),
        (End::Trailing, value.chars().next_back()),
    ];
    for (end, c) in ends {
        if let Some(c) = c.filter(|c| c.is_whitespace()) {
            return Err(NameError::Whitespace {
                field,
                end,
                code: code(c),
                shown: escape(value),
            });
        }
    }
    let normal: String = value.nfc().collect();
    let length = normal.chars().count();
    if length > field.limit() {
        return Err(NameError::TooLong {
            limit: field.limit(),
            field,
            length,
            shown: escape(&normal),
        });
    }
    Ok(normal)
}

/// Refuses more than [`MAX_ATTRIBUTES`] attributes.
pub fn check_count(given: usize) -> Result<(), NameError> {
    if given > MAX_ATTRIBUTES {
        return Err(NameError::TooManyAttributes {
            given,
            limit: MAX_ATTRIBUTES,
        });
    }
    Ok(())
}

/// `value` safe to quote in a message: every forbidden character, and `\` and `"`, written
/// as an escape (`\u{1b}`, `\\`, `\"`); at most [`SHOWN_CHARS`] characters, then `…`.
pub fn escape(value: &str) -> String {
    let mut shown = String::new();
    for (index, c) in value.chars().enumerate() {
        if index == SHOWN_CHARS {
            shown.push('…');
            break;
        }
        match c {
            '\\' => shown.push_str("\\\\"),
            '"' => shown.push_str("\\\""),
            c if Forbidden::of(c).is_some() => shown.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => shown.push(c),
        }
    }
    shown
}

/// `c` as `U+XXXX`.
fn code(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn refusal(field: Field, value: &str) -> String {
        clean(field, value).unwrap_err().to_string()
    }

    #[test]
    fn an_escape_is_named_by_field_code_and_position_and_shown_escaped() {
        assert_eq!(
            refusal(Field::Account, "\u{1b}[2Jjane"),
            "account contains a control character U+001B at position 1 (value \
             \"\\u{1b}[2Jjane\"); names and values must be plain text: remove it and submit \
             again"
        );
    }

    #[test]
    fn every_control_class_is_refused() {
        for c in [
            '\0', '\t', '\n', '\r', '\u{1b}', '\u{1f}', '\u{7f}', '\u{80}', '\u{9b}', '\u{9f}',
        ] {
            let text = refusal(Field::Account, &format!("ja{c}ne"));
            assert!(
                text.starts_with(&format!(
                    "account contains a control character {} at position 3",
                    code(c)
                )),
                "{text}"
            );
            assert!(!text.contains(c), "{text:?}");
        }
    }

    #[test]
    fn every_bidi_control_is_refused() {
        let bidi = ['\u{061C}', '\u{200E}', '\u{200F}']
            .into_iter()
            .chain('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}');
        for c in bidi {
            let text = refusal(Field::Entitlement, &format!("role:{c}101"));
            assert!(
                text.starts_with(&format!(
                    "entitlement contains a bidi control character {} at position 6",
                    code(c)
                )),
                "{text}"
            );
            assert!(!text.contains(c), "{text:?}");
        }
        for c in ['\u{2028}', '\u{2029}'] {
            assert!(refusal(Field::Owner, &format!("a{c}b")).contains("a line separator"));
        }
        // Neighbours of the ranges, and the zero-width joiner emoji and Indic scripts need.
        for fine in [
            '\u{061B}', '\u{200D}', '\u{2027}', '\u{202F}', '\u{2065}', '\u{206A}',
        ] {
            assert!(
                clean(Field::Account, &format!("a{fine}b")).is_ok(),
                "{fine:?}"
            );
        }
    }

    #[test]
    fn the_first_forbidden_character_is_reported() {
        assert!(refusal(Field::Account, "a\0b\u{202e}")
            .starts_with("account contains a control character U+0000 at position 2"));
        assert!(refusal(Field::Account, "ab\u{202e}\0")
            .starts_with("account contains a bidi control character U+202E at position 3"));
    }

    #[test]
    fn each_limit_holds_at_the_boundary_and_refuses_one_over() {
        for field in [
            Field::Target,
            Field::Account,
            Field::Entitlement,
            Field::AttributeKey,
            Field::AttributeValue("title".into()),
            Field::Owner,
            Field::RequestId,
            Field::IdempotencyKey,
        ] {
            let limit = field.limit();
            // Counted in characters, not bytes.
            let at = "é".repeat(limit);
            assert_eq!(clean(field.clone(), &at).unwrap(), at, "{field}");
            let over = "é".repeat(limit + 1);
            let text = refusal(field.clone(), &over);
            assert!(
                text.starts_with(&format!(
                    "{field} is {} characters long, over the limit of {limit} (value \"",
                    limit + 1
                )) && text.ends_with("…\"); shorten it"),
                "{text}"
            );
        }
        assert_eq!(
            [Field::Account, Field::Entitlement, Field::AttributeKey].map(|field| field.limit()),
            [256, 512, 64]
        );
        assert_eq!(Field::AttributeValue(String::new()).limit(), 4096);
        assert_eq!(Field::RequestId.limit(), 128);
    }

    #[test]
    fn at_most_64_attributes() {
        assert!(check_count(64).is_ok());
        assert_eq!(
            check_count(65).unwrap_err().to_string(),
            "65 attributes given, over the limit of 64; give only the attributes the \
             operation's templates read (idsync check-config lists them)"
        );
    }

    #[test]
    fn whitespace_at_either_end_is_refused_and_inside_is_kept() {
        assert_eq!(
            refusal(Field::Account, " jane"),
            "account has leading whitespace U+0020 (value \" jane\"); idsync does not trim, \
             since \" jane\" and \"jane\" would be different names: remove it and submit again"
        );
        assert!(refusal(Field::RequestId, "r-1 ").contains("has trailing whitespace U+0020"));
        assert!(refusal(Field::Account, "jane\u{a0}").contains("trailing whitespace U+00A0"));
        assert!(refusal(Field::Account, "\u{3000}李").contains("leading whitespace U+3000"));
        assert!(refusal(Field::Account, " ").contains("leading whitespace"));
        assert_eq!(
            clean(Field::AttributeValue("title".into()), "Lead  Engineer").unwrap(),
            "Lead  Engineer"
        );
    }

    #[test]
    fn values_are_stored_in_nfc() {
        let decomposed = "zoe\u{308}";
        assert_eq!(clean(Field::Account, decomposed).unwrap(), "zo\u{eb}");
        assert_eq!(clean(Field::Account, "zo\u{eb}").unwrap(), "zo\u{eb}");
        assert_eq!(clean(Field::Account, "李").unwrap(), "李");
        // Compatibility forms are kept: NFC, not NFKC (the ligature is not "fi").
        assert_eq!(clean(Field::Account, "\u{fb01}").unwrap(), "\u{fb01}");
        // The limit counts the normalized form.
        let limit = Field::Account.limit();
        assert!(clean(Field::Account, &"e\u{301}".repeat(limit)).is_ok());
    }

    #[test]
    fn escape_shows_backslashes_and_quotes_unambiguously() {
        assert_eq!(escape("a\\u{1b}\"b\u{1b}"), "a\\\\u{1b}\\\"b\\u{1b}");
        assert_eq!(escape(&"x".repeat(41)), format!("{}…", "x".repeat(40)));
    }

    /// Ordinary text, and the characters the rules are about, mixed.
    fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            any::<char>().prop_map(String::from),
            "[a-z\u{e9}\u{301}李 ]{1,4}",
            prop::sample::select(vec![
                "\0",
                "\t",
                "\n",
                "\u{1b}[2J",
                "\u{7f}",
                "\u{85}",
                "\u{202e}",
                "\u{2067}",
                "\u{200f}",
                "\u{61c}",
                "\u{2028}",
                "\u{a0}",
                "\\",
                "\"",
            ])
            .prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        /// A value either passes as its NFC form, with nothing forbidden and no whitespace at
        /// its ends, or is refused with a message that holds no forbidden character.
        #[test]
        fn a_value_passes_normalized_or_is_refused_safely(value in hostile()) {
            match clean(Field::Account, &value) {
                Ok(stored) => {
                    prop_assert_eq!(&stored, &value.nfc().collect::<String>());
                    prop_assert!(stored.chars().all(|c| Forbidden::of(c).is_none()));
                    prop_assert!(!stored.starts_with(char::is_whitespace));
                    prop_assert!(!stored.ends_with(char::is_whitespace));
                }
                Err(err) => {
                    let text = err.to_string();
                    prop_assert!(text.starts_with("account "), "{}", text);
                    prop_assert!(
                        text.chars().all(|c| Forbidden::of(c).is_none()),
                        "{:?}", text
                    );
                }
            }
        }

        /// Arbitrary strings too (any code point).
        #[test]
        fn any_string_passes_normalized_or_is_refused_safely(value in any::<String>()) {
            match clean(Field::AttributeKey, &value) {
                Ok(stored) => prop_assert_eq!(stored, value.nfc().collect::<String>()),
                Err(err) => prop_assert!(
                    err.to_string().chars().all(|c| Forbidden::of(c).is_none())
                ),
            }
        }
    }
}
