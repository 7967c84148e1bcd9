//! Deterministic seed data for the DigiCert simulator.
//!
//! Every user is computed from `(seed, index)` by a pure hash (splitmix64), so the same seed
//! gives the same account on every machine and every version of the `rand` crate, and user
//! N does not depend on how many users come before it.

use std::borrow::Cow;

use super::data::{Container, Directory, RoleSet, UserRecord, UserStatus, TOP_CONTAINER_ID};
use crate::seedgen::{mix, numbered, pick, FIRST_NAMES, LAST_NAMES};

/// What the simulated account holds when it starts.
///
/// The first user (`user00001`) is the one the API key belongs to (`GET /user/me`): always
/// an active Administrator in the top-level container, so a create that names no container
/// lands there, as CertCentral places it in the key owner's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigicertSeed {
    /// Number of users (`user00001`, `user00002`, …).
    pub users: u32,
    /// Number of divisions under the top-level container.
    pub divisions: u32,
    /// Percentage of users (0–100) created `inactive`.
    pub inactive_percent: u8,
    /// Seed of the generator; the same seed gives the same data.
    pub seed: u64,
    /// The `account_id` every user carries.
    pub account_id: u64,
    /// The id of the first user; later users count up from it.
    pub first_user_id: u64,
}

impl Default for DigicertSeed {
    fn default() -> Self {
        Self {
            users: 250,
            divisions: 4,
            inactive_percent: 5,
            seed: 0x1D5_C0DE,
            account_id: 1234,
            first_user_id: 100_001,
        }
    }
}

impl DigicertSeed {
    /// The default seed with `users` users.
    pub fn with_users(users: u32) -> Self {
        Self {
            users,
            ..Self::default()
        }
    }

    /// An account with its containers and roles but no users.
    pub fn empty() -> Self {
        Self::with_users(0)
    }

    /// Builds the account.
    pub(crate) fn generate(&self) -> Directory {
        let mut containers = Vec::with_capacity(usize::try_from(self.divisions).unwrap_or(0) + 1);
        containers.push(self.container(TOP_CONTAINER_ID, 0, "Company", "The whole account."));
        for index in 0..self.divisions {
            let base = pick(DIVISIONS, u64::from(index));
            let name = numbered(base, index, DIVISIONS.len());
            let description = format!("{name} division.");
            containers.push(self.container(index + 2, TOP_CONTAINER_ID, &name, &description));
        }
        let users: Vec<UserRecord> = (0..self.users).map(|index| self.user(index)).collect();
        Directory {
            account_id: self.account_id,
            containers,
            api_user_id: users.first().map(|user| user.id),
            users,
            next_user_id: self.first_user_id + u64::from(self.users),
            hidden: Vec::new(),
        }
    }

    fn container(&self, id: u32, parent_id: u32, name: &str, description: &str) -> Container {
        let h = mix(self.seed ^ 0xC0A7_A1AE_0000_0000 ^ u64::from(id));
        Container {
            id,
            public_id: format!("{:016x}", h),
            name: name.to_owned(),
            description: description.to_owned(),
            parent_id,
            template_id: if parent_id == 0 { 4 } else { 5 },
            ekey: format!("{:016x}{:016x}", mix(h), mix(h ^ 1)),
            is_active: true,
        }
    }

    fn user(&self, index: u32) -> UserRecord {
        let number = u64::from(index) + 1;
        let h = mix(self.seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let g = mix(h);
        let first = pick(FIRST_NAMES, h);
        let last = pick(LAST_NAMES, h >> 16);
        let email = format!(
            "{}.{}.{number:05}@example.com",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        );
        let job_title = (g % 10 != 0).then(|| Cow::Borrowed(pick(JOB_TITLES, g >> 8)));
        let telephone = ((g >> 4) % 10 != 0)
            .then(|| format!("+1-555-{:03}-{:04}", (g >> 20) % 1000, (g >> 32) % 10_000))
            .map(String::into_boxed_str);
        let status = if (h >> 40) % 100 < u64::from(self.inactive_percent) {
            UserStatus::Inactive
        } else {
            UserStatus::Active
        };
        let container_id = if self.divisions == 0 || (h >> 24) % 10 < 4 {
            TOP_CONTAINER_ID
        } else {
            let division = u32::try_from((h >> 32) % u64::from(self.divisions)).unwrap_or(0);
            division + 2
        };
        let primary = match (h >> 48) % 100 {
            0..=2 => 1,
            3..=7 => 3,
            8..=19 => 4,
            20..=29 => 2,
            _ => 5,
        };
        let mut roles = RoleSet::default();
        roles.insert(primary);
        if (h >> 56) % 100 < 15 {
            // A second, different role.
            roles.insert((primary + (g >> 44) % 4) % 5 + 1);
        }
        let (status, container_id) = if index == 0 {
            // The API key's owner (`GET /user/me`) administers the whole account.
            roles = RoleSet::default();
            roles.insert(1);
            (UserStatus::Active, TOP_CONTAINER_ID)
        } else {
            (status, container_id)
        };
        UserRecord {
            id: self.first_user_id + u64::from(index),
            username: format!("user{number:05}").into_boxed_str(),
            first_name: Cow::Borrowed(first),
            last_name: Cow::Borrowed(last),
            email: email.into_boxed_str(),
            job_title,
            telephone,
            status,
            container_id,
            roles,
        }
    }
}

const JOB_TITLES: &[&str] = &[
    "Engineer",
    "Senior Engineer",
    "Security Analyst",
    "PKI Administrator",
    "IT Manager",
    "Finance Officer",
    "Accountant",
    "Procurement Specialist",
    "DevOps Engineer",
    "Site Reliability Engineer",
    "Product Manager",
    "Compliance Officer",
    "Network Administrator",
    "Support Specialist",
    "Sales Engineer",
    "Director of IT",
];

const DIVISIONS: &[&str] = &[
    "Engineering",
    "Finance",
    "Sales",
    "Operations",
    "Legal",
    "Marketing",
    "Support",
    "Research",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundred_thousand_users_are_generated_deterministically() {
        let seed = DigicertSeed::with_users(100_000);
        let a = seed.generate();
        let b = seed.generate();
        assert_eq!(a.users.len(), 100_000);
        assert!(a.users == b.users, "same seed, same users");
        assert_eq!(a.users.first().unwrap().username.as_ref(), "user00001");
        assert_eq!(a.users.last().unwrap().username.as_ref(), "user100000");
        assert_eq!(a.users.last().unwrap().id, 200_000);
        assert!(a.users.windows(2).all(|w| w[0].id < w[1].id), "sorted ids");
        assert_eq!(a.next_user_id, 200_001);
        let owner = a.user(a.api_user_id.unwrap()).unwrap();
        assert_eq!(owner.username.as_ref(), "user00001");
        assert_eq!(
            (owner.status, owner.container_id, owner.roles.iter().count()),
            (UserStatus::Active, TOP_CONTAINER_ID, 1)
        );
        assert!(
            owner.roles.contains(1),
            "the key's owner is an Administrator"
        );
        assert!(DigicertSeed::empty().generate().api_user_id.is_none());

        let inactive = a
            .users
            .iter()
            .filter(|u| u.status == UserStatus::Inactive)
            .count();
        assert!((4_000..6_000).contains(&inactive), "about 5%: {inactive}");
        assert!(a.users.iter().all(|u| {
            let n = u.roles.iter().count();
            (1..=2).contains(&n)
        }));
        assert!(a
            .users
            .iter()
            .all(|u| a.container(u.container_id).is_some()));
        assert!(a.users.iter().any(|u| u.roles.iter().count() == 2));
        assert!(a.users.iter().any(|u| u.job_title.is_none()));
        assert!(a.users.iter().any(|u| u.container_id != TOP_CONTAINER_ID));
        let emails: std::collections::HashSet<&str> =
            a.users.iter().map(|u| u.email.as_ref()).collect();
        assert_eq!(emails.len(), a.users.len(), "emails are unique");

        let other = DigicertSeed {
            seed: 7,
            ..DigicertSeed::with_users(100)
        }
        .generate();
        assert!(other.users != a.users[..100], "another seed, other data");
    }

    #[test]
    fn containers_form_a_tree_under_company() {
        let dir = DigicertSeed {
            divisions: 10,
            ..DigicertSeed::empty()
        }
        .generate();
        assert!(dir.users.is_empty());
        assert_eq!(dir.containers.len(), 11);
        let top = dir.container(1).unwrap();
        assert_eq!((top.name.as_str(), top.parent_id), ("Company", 0));
        assert!(dir.containers.iter().skip(1).all(|c| c.parent_id == 1));
        assert_eq!(dir.container(10).unwrap().name, "Engineering 2");
        let names: std::collections::HashSet<&str> =
            dir.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), 11);
    }
}
