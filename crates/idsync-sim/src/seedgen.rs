//! Pure-arithmetic helpers the simulators' seeds share: every seeded record is computed from
//! `(seed, index)` by a hash, so the same seed gives the same data on every machine and every
//! version of the `rand` crate, and record N does not depend on the ones before it.

/// splitmix64's finalizer: a fast, well-mixed 64-bit hash.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The entry of `table` that `h` selects (`""` for an empty table).
pub(crate) fn pick(table: &'static [&'static str], h: u64) -> &'static str {
    let len = u64::try_from(table.len()).unwrap_or(1).max(1);
    usize::try_from(h % len)
        .ok()
        .and_then(|index| table.get(index))
        .copied()
        .unwrap_or("")
}

/// `base` the first time round a table of `len` names, `base 2`, `base 3`, … after: the name
/// of record `index` when names are taken from the table in turn and must stay unique.
pub(crate) fn numbered(base: &str, index: u32, len: usize) -> String {
    let round = index / u32::try_from(len).unwrap_or(u32::MAX).max(1);
    if round == 0 {
        base.to_owned()
    } else {
        format!("{base} {}", round + 1)
    }
}

/// First names for seeded users.
pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Amara", "Ana", "Ben", "Bianca", "Carlos", "Chen", "Chloe", "Dana", "David",
    "Elena", "Emeka", "Erik", "Fatima", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jane", "Jonas",
    "Kai", "Kenji", "Laura", "Leila", "Liam", "Maria", "Mateo", "Mei", "Nadia", "Noah", "Olga",
    "Omar", "Priya", "Quinn", "Rafael", "Rosa", "Sam", "Sofia", "Tariq", "Tomas", "Uma", "Victor",
    "Wei", "Yara", "Yusuf", "Zoe",
];

/// Last names for seeded users.
pub(crate) const LAST_NAMES: &[&str] = &[
    "Abe",
    "Adeyemi",
    "Almeida",
    "Andersen",
    "Baker",
    "Becker",
    "Chen",
    "Costa",
    "Dubois",
    "Doe",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Gupta",
    "Hansen",
    "Haddad",
    "Ito",
    "Ivanova",
    "Jensen",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Martin",
    "Meyer",
    "Mensah",
    "Nakamura",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Quispe",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Tanaka",
    "Torres",
    "Ueda",
    "Varga",
    "Wagner",
    "Wang",
    "Weber",
    "Yilmaz",
    "Zhang",
    "Zimmermann",
];
