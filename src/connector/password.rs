//! Initial passwords for accounts idsync creates on targets that need one (Jama; a Duck Creek
//! `create_account` template that binds `password`). A fresh one per attempt, sent to the
//! target only: never stored, printed or logged; users set theirs through the target's own
//! reset flow.

use rand::seq::{IndexedRandom, SliceRandom};
use secrecy::SecretString;

/// Length of a generated initial password.
pub const PASSWORD_LENGTH: usize = 24;

/// A strong random initial password: [`PASSWORD_LENGTH`] characters with upper- and
/// lower-case letters, digits and symbols (at least one of each), from the thread's CSPRNG.
pub fn generate_password() -> SecretString {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#$%&*+-=?@^_~";
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
        .iter()
        .filter_map(|set| set.choose(&mut rng).copied())
        .collect();
    let rest = PASSWORD_LENGTH.saturating_sub(chars.len());
    chars.extend((0..rest).filter_map(|_| all.choose(&mut rng).copied()));
    chars.shuffle(&mut rng);
    SecretString::from(String::from_utf8_lossy(&chars).into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn generated_passwords_are_strong_and_fresh() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let password = generate_password();
            let text = password.expose_secret();
            assert_eq!(text.chars().count(), PASSWORD_LENGTH);
            assert!(text.chars().any(|c| c.is_ascii_uppercase()), "{text}");
            assert!(text.chars().any(|c| c.is_ascii_lowercase()), "{text}");
            assert!(text.chars().any(|c| c.is_ascii_digit()), "{text}");
            assert!(text.chars().any(|c| !c.is_ascii_alphanumeric()), "{text}");
            assert!(seen.insert(text.to_string()), "repeated {text}");
        }
    }
}
