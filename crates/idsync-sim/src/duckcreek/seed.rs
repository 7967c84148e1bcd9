//! Deterministic seed data for the Duck Creek simulator: users `dc.user00001`, …, roles,
//! entities and privileges, each computed from `(seed, index)` by pure arithmetic (see
//! [`crate::seedgen`]).
//!
//! A few values carry XML-special characters on purpose — the entity `R&D <Labs>`, full
//! names such as `Liam O'Brien`, role descriptions with quotes — so every response exercises
//! escaping end to end.

use super::data::{
    DcUserStatus, Directory, EntityRecord, PrivilegeRecord, RoleRecord, UserRecord, ROOT_ENTITY,
};
use crate::seedgen::{mix, numbered, pick, FIRST_NAMES, LAST_NAMES};

/// The id of the first seeded user; later users count up from it.
pub(crate) const FIRST_USER_ID: u64 = 1001;
/// The id of the first seeded role.
pub(crate) const FIRST_ROLE_ID: u64 = 101;
/// The id of the first seeded privilege.
pub(crate) const FIRST_PRIVILEGE_ID: u64 = 501;
/// The root organisation's name.
pub(crate) const ROOT_NAME: &str = "Duck Creek Mutual";

/// What the simulated tenant holds when it starts.
///
/// Entity 1 is always the root organisation; the `entities` entities below it get ids 2, 3,
/// …. Users get ids from 1001, roles from 101, privileges from 501.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuckCreekSeed {
    /// Number of users (`dc.user00001`, `dc.user00002`, …).
    pub users: u32,
    /// How many of them are locked (exactly, spread evenly; at most `users`).
    pub locked_users: u32,
    /// Number of roles.
    pub roles: u32,
    /// Number of entities below the root organisation.
    pub entities: u32,
    /// Number of privileges in the catalogue (each role holds one to four of them).
    pub privileges: u32,
    /// How many roles a user holds (capped at `roles`); about one user in twenty holds none.
    pub roles_per_user: u32,
    /// The most entities a user is a member of: each is in one to this many (capped at
    /// `entities`); about one user in twenty is in none. The root organisation lists every
    /// user without holding memberships.
    pub entities_per_user: u32,
    /// Seed of the generator; the same seed gives the same data.
    pub seed: u64,
}

impl Default for DuckCreekSeed {
    fn default() -> Self {
        Self {
            users: 300,
            locked_users: 15,
            roles: 12,
            entities: 8,
            privileges: 20,
            roles_per_user: 2,
            entities_per_user: 2,
            seed: 0xD0C_C4EE,
        }
    }
}

impl DuckCreekSeed {
    /// The default seed with `users` users, about 5% of them locked.
    pub fn with_users(users: u32) -> Self {
        Self {
            users,
            locked_users: users / 20,
            ..Self::default()
        }
    }

    /// Builds the tenant.
    pub(crate) fn generate(&self) -> Directory {
        let locked = self.locked_users.min(self.users);
        let mut next_locked = 1u32;
        let users = (0..self.users)
            .map(|index| {
                // The k-th locked user (k = 1..=locked) is at index ⌊k·users/(locked+1)⌋.
                let status =
                    if next_locked <= locked && index == spread(next_locked, self.users, locked) {
                        next_locked += 1;
                        DcUserStatus::Locked
                    } else {
                        DcUserStatus::Active
                    };
                self.user(index, status)
            })
            .collect();
        let root = EntityRecord {
            id: ROOT_ENTITY,
            name: ROOT_NAME.to_owned(),
            element: "Entity".to_owned(),
        };
        let entities = std::iter::once(root)
            .chain((0..self.entities).map(entity))
            .collect();
        let roles = (0..self.roles).map(|index| self.role(index)).collect();
        let privileges = (0..self.privileges).map(privilege).collect();
        Directory::new(
            users,
            roles,
            entities,
            privileges,
            FIRST_USER_ID.saturating_add(u64::from(self.users)),
            FIRST_ROLE_ID.saturating_add(u64::from(self.roles)),
        )
    }

    fn user(&self, index: u32, status: DcUserStatus) -> UserRecord {
        let number = u64::from(index) + 1;
        let h = mix(self.seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let g = mix(h ^ 0xD0C);
        let first = pick(FIRST_NAMES, h);
        let last = if (h >> 24) % 12 == 0 {
            pick(APOSTROPHE_NAMES, h >> 32)
        } else {
            pick(LAST_NAMES, h >> 16)
        };
        let email = format!(
            "{}.{}.{number:05}@example.com",
            email_part(first),
            email_part(last)
        );
        let roles = if g % 20 == 0 {
            Vec::new()
        } else {
            distinct(self.roles_per_user, self.roles, g >> 4)
                .into_iter()
                .map(|i| FIRST_ROLE_ID + i)
                .collect()
        };
        let entities = if (g >> 8) % 20 == 0 {
            Vec::new()
        } else {
            let most = u64::from(self.entities_per_user.max(1));
            let count = u32::try_from(1 + (g >> 16) % most).unwrap_or(1);
            distinct(count, self.entities, g >> 24)
                .into_iter()
                .map(|i| ROOT_ENTITY + 1 + i)
                .collect()
        };
        UserRecord {
            id: FIRST_USER_ID.saturating_add(u64::from(index)),
            name: format!("dc.user{number:05}").into_boxed_str(),
            email: email.into_boxed_str(),
            full_name: format!("{first} {last}").into_boxed_str(),
            status,
            roles,
            entities,
        }
    }

    fn role(&self, index: u32) -> RoleRecord {
        let id = FIRST_ROLE_ID + u64::from(index);
        let (base, description) = pick_pair(ROLES, index);
        let h = mix(self.seed ^ 0x5_0000_0000 ^ id);
        let count = u32::try_from(1 + h % 4).unwrap_or(1);
        RoleRecord {
            id,
            name: numbered(base, index, ROLES.len()),
            description: description.to_owned(),
            privileges: distinct(count, self.privileges, h >> 8)
                .into_iter()
                .map(|i| FIRST_PRIVILEGE_ID + i)
                .collect(),
        }
    }
}

fn entity(index: u32) -> EntityRecord {
    let (base, element) = pick_pair(ENTITIES, index);
    EntityRecord {
        id: ROOT_ENTITY + 1 + u64::from(index),
        name: numbered(base, index, ENTITIES.len()),
        element: element.to_owned(),
    }
}

fn privilege(index: u32) -> PrivilegeRecord {
    let (base, description) = pick_pair(PRIVILEGES, index);
    let kind = match base.split('.').next() {
        Some("Admin") => "Administration",
        Some("Reports") => "Reporting",
        _ => "Application",
    };
    PrivilegeRecord {
        id: FIRST_PRIVILEGE_ID + u64::from(index),
        name: numbered(base, index, PRIVILEGES.len()),
        description: description.to_owned(),
        kind: kind.to_owned(),
    }
}

/// The entry of a table that index `index` takes, cycling.
fn pick_pair(
    table: &'static [(&'static str, &'static str)],
    index: u32,
) -> (&'static str, &'static str) {
    let len = u32::try_from(table.len()).unwrap_or(u32::MAX).max(1);
    usize::try_from(index % len)
        .ok()
        .and_then(|at| table.get(at))
        .copied()
        .unwrap_or(("", ""))
}

/// `count` distinct indexes below `n` (ascending) chosen by `h`; fewer when `n` is smaller.
fn distinct(count: u32, n: u32, h: u64) -> Vec<u64> {
    let n = u64::from(n);
    let count = u64::from(count).min(n);
    let mut chosen: Vec<u64> = Vec::new();
    for j in 0..count {
        let mut candidate = mix(h ^ j.wrapping_mul(0xA24B_AED4_963E_E407)) % n;
        while chosen.contains(&candidate) {
            candidate = (candidate + 1) % n;
        }
        chosen.push(candidate);
    }
    chosen.sort_unstable();
    chosen
}

/// The letters and digits of a name, lower case, for an email address.
fn email_part(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// ⌊k·users/(locked+1)⌋, the index of the k-th locked user.
fn spread(k: u32, users: u32, locked: u32) -> u32 {
    let at = u64::from(k) * u64::from(users) / (u64::from(locked) + 1);
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Last names with an apostrophe (and one outside ASCII), about one user in twelve.
const APOSTROPHE_NAMES: &[&str] = &["O'Brien", "D'Angelo", "O'Neil", "N'Dour", "Müller-O'Hara"];

/// Role names and descriptions.
const ROLES: &[(&str, &str)] = &[
    (
        "Policy Administrator",
        "Maintains policies across all lines.",
    ),
    ("Underwriter", "Rates and issues new business."),
    (
        "Senior Underwriter",
        "Approves referrals above the \"standard\" authority.",
    ),
    (
        "Claims Adjuster",
        "Adjusts claims; can't approve payments over the adjuster's limit.",
    ),
    ("Claims Supervisor", "Approves claim payments."),
    ("Billing Clerk", "Posts payments & adjustments."),
    (
        "Billing Manager",
        "Billing & collections for accounts > $10k, refunds < $1k.",
    ),
    ("Agent", "Quotes and binds for their agency."),
    ("Agency Manager", "Manages an agency's agents."),
    ("Customer Service", "Answers policyholders' questions."),
    ("Auditor", "Read-only access to everything."),
    (
        "System Administrator",
        "Manages users, roles & configuration.",
    ),
];

/// Entity names and the element each is listed under.
const ENTITIES: &[(&str, &str)] = &[
    ("Personal Lines", "Entity"),
    ("Commercial Lines", "Entity"),
    ("R&D <Labs>", "Entity"),
    ("Northwest Agency", "Agency"),
    ("Claims Center", "Entity"),
    ("Billing Operations", "Entity"),
    ("Midwest \"Heartland\" Agency", "Agency"),
    ("O'Hare Field Office", "Entity"),
];

/// Privilege names and descriptions (the type follows from the name).
const PRIVILEGES: &[(&str, &str)] = &[
    ("Policy.View", "View policies."),
    ("Policy.Edit", "Edit policies."),
    ("Policy.Issue", "Issue policies."),
    ("Policy.Cancel", "Cancel policies."),
    ("Claims.View", "View claims."),
    ("Claims.Edit", "Edit claims."),
    ("Claims.Approve", "Approve claim payments."),
    ("Claims.Pay", "Release claim payments."),
    ("Billing.View", "View accounts & invoices."),
    ("Billing.Adjust", "Adjust invoices."),
    ("Billing.Refund", "Issue refunds."),
    ("Party.View", "View parties."),
    ("Party.Edit", "Edit parties."),
    ("Reports.Run", "Run reports."),
    ("Reports.Export", "Export reports."),
    ("Admin.Users", "Manage users."),
    ("Admin.Roles", "Manage roles."),
    ("Admin.Config", "Change configuration."),
    ("Rating.Override", "Override rated premiums."),
    ("Forms.Manage", "Manage forms."),
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Instant;

    use super::*;

    #[test]
    fn small_seed_has_exact_locked_users_and_every_shape() {
        let seed = DuckCreekSeed {
            users: 137,
            locked_users: 9,
            ..DuckCreekSeed::default()
        };
        let dir = seed.generate();
        assert_eq!(dir.users.len(), 137);
        let locked = dir
            .users
            .iter()
            .filter(|u| u.status == DcUserStatus::Locked)
            .count();
        assert_eq!(locked, 9);
        assert_eq!(dir.users[0].name.as_ref(), "dc.user00001");
        assert_eq!(dir.users[0].id, 1001);
        assert_eq!(dir.users[136].name.as_ref(), "dc.user00137");
        assert_eq!(dir.entities.len(), 9, "the root and eight below it");
        assert_eq!(dir.entities[0].id, ROOT_ENTITY);
        assert!(dir.entities.iter().any(|e| e.name == "R&D <Labs>"));
        assert_eq!(
            dir.entities
                .iter()
                .filter(|e| e.element == "Agency")
                .count(),
            2
        );
        assert_eq!(dir.roles.len(), 12);
        assert_eq!(dir.privileges.len(), 20);
        assert!(dir
            .roles
            .iter()
            .all(|r| (1..=4).contains(&r.privileges.len())));
        assert!(dir.roles.iter().any(|r| r.description.contains('"')));
        // Every user holds two roles or none, and one or two memberships or none.
        assert!(dir.users.iter().all(|u| [0, 2].contains(&u.roles.len())));
        assert!(dir.users.iter().all(|u| u.entities.len() <= 2));
        assert!(dir.users.iter().any(|u| u.roles.is_empty()));
        assert!(dir.users.iter().any(|u| u.entities.is_empty()));
        assert!(dir.users.iter().any(|u| u.entities.len() == 1));
        assert!(dir.users.iter().any(|u| u.full_name.contains('\'')));
        assert!(dir
            .users
            .iter()
            .all(|u| u.entities.iter().all(|e| *e != ROOT_ENTITY)));
        // Every lock, none, more roles than exist.
        let all = DuckCreekSeed {
            users: 4,
            locked_users: 40,
            roles_per_user: 50,
            ..DuckCreekSeed::default()
        }
        .generate();
        assert!(all.users.iter().all(|u| u.status == DcUserStatus::Locked));
        assert!(all.users.iter().all(|u| u.roles.len() % 12 == 0));
        assert_eq!(DuckCreekSeed::with_users(0).generate().users.len(), 0);
        let bare = DuckCreekSeed {
            roles: 0,
            entities: 0,
            privileges: 0,
            ..DuckCreekSeed::default()
        }
        .generate();
        assert!(bare
            .users
            .iter()
            .all(|u| u.roles.is_empty() && u.entities.is_empty()));
        assert_eq!(bare.entities.len(), 1);
        // Past the tables, names get a round number and stay unique.
        let many = DuckCreekSeed {
            roles: 30,
            entities: 20,
            privileges: 45,
            ..DuckCreekSeed::with_users(10)
        }
        .generate();
        let role_names: HashSet<&str> = many.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(role_names.len(), 30);
        assert!(role_names.contains("Underwriter 3"));
        let entity_names: HashSet<&str> = many.entities.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(entity_names.len(), 21);
    }

    #[test]
    fn fifty_thousand_users_build_quickly_and_deterministically() {
        let seed = DuckCreekSeed::with_users(50_000);
        let started = Instant::now();
        let a = seed.generate();
        let elapsed = started.elapsed();
        let b = seed.generate();
        assert!(
            a.users == b.users && a.roles == b.roles,
            "same seed, same data"
        );
        assert_eq!(a.users.len(), 50_000);
        assert_eq!(
            a.users
                .iter()
                .filter(|u| u.status == DcUserStatus::Locked)
                .count(),
            2_500
        );
        let emails: HashSet<&str> = a.users.iter().map(|u| u.email.as_ref()).collect();
        assert_eq!(emails.len(), 50_000, "emails are unique");
        // Debug builds too: generous, but catches anything quadratic.
        assert!(elapsed.as_secs() < 3, "seed took {elapsed:?}");
        let other = DuckCreekSeed {
            seed: 7,
            ..seed.clone()
        }
        .generate();
        assert!(other.users != a.users, "another seed, other data");
    }
}
