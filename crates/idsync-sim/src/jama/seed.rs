//! Deterministic seed data for the Jama simulator: users `jama.user00001`, …, user groups
//! and memberships, each computed from `(seed, index)` by pure arithmetic (see
//! [`crate::seedgen`]).

use std::borrow::Cow;

use super::data::{Directory, Group, LicenseType, UserRecord, DEFAULT_AUTH_TYPE};
use crate::seedgen::{mix, numbered, pick, FIRST_NAMES, LAST_NAMES};

/// What the simulated tenant holds when it starts.
///
/// The first user (`jama.user00001`) is the one the OAuth client belongs to
/// (`GET /rest/v1/users/current`) and is always active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JamaSeed {
    /// Number of users (`jama.user00001`, `jama.user00002`, …).
    pub users: u32,
    /// How many of them are inactive (exactly; spread evenly, never the first user; at most
    /// `users - 1`).
    pub inactive_users: u32,
    /// Number of user groups.
    pub groups: u32,
    /// The average number of groups a user is in (capped at `groups`); group sizes vary, so
    /// the total is about `users × memberships_per_user`.
    pub memberships_per_user: u32,
    /// Seed of the generator; the same seed gives the same data.
    pub seed: u64,
    /// The id of the first user; later users count up from it.
    pub first_user_id: u32,
    /// The id of the first group; later groups count up from it.
    pub first_group_id: u32,
}

impl Default for JamaSeed {
    fn default() -> Self {
        Self {
            users: 250,
            inactive_users: 12,
            groups: 12,
            memberships_per_user: 3,
            seed: 0x1D5_7A3A,
            first_user_id: 1001,
            first_group_id: 101,
        }
    }
}

/// Group weights cycle through 1..=4, so some groups are four times the size of others.
const WEIGHT_CYCLE: u64 = 4;

/// Probabilities are in parts per million.
const PPM: u64 = 1_000_000;

impl JamaSeed {
    /// The default seed with `users` users, about 5% of them inactive.
    pub fn with_users(users: u32) -> Self {
        Self {
            users,
            inactive_users: users / 20,
            ..Self::default()
        }
    }

    /// A tenant with its groups but no users.
    pub fn empty() -> Self {
        Self::with_users(0)
    }

    /// Builds the tenant.
    pub(crate) fn generate(&self) -> Directory {
        let inactive = self.inactive_users.min(self.users.saturating_sub(1));
        let mut next_inactive = 1u32;
        let users: Vec<UserRecord> = (0..self.users)
            .map(|index| {
                // The k-th inactive user (k = 1..=inactive) is at index ⌊k·users/(inactive+1)⌋:
                // strictly increasing, never 0.
                let active = if next_inactive <= inactive
                    && index == spread(next_inactive, self.users, inactive)
                {
                    next_inactive += 1;
                    false
                } else {
                    true
                };
                self.user(index, active)
            })
            .collect();
        let groups = (0..self.groups)
            .map(|index| self.group(index, &users))
            .collect();
        Directory {
            api_user_id: users.first().map(|user| user.id),
            next_user_id: self.first_user_id.saturating_add(self.users),
            next_group_id: self.first_group_id.saturating_add(self.groups),
            users,
            groups,
            hidden: Vec::new(),
        }
    }

    fn user(&self, index: u32, active: bool) -> UserRecord {
        let number = u64::from(index) + 1;
        let h = mix(self.seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let g = mix(h ^ 0x7A3A);
        let first = pick(FIRST_NAMES, h);
        let last = pick(LAST_NAMES, h >> 16);
        let email = format!(
            "{}.{}.{number:05}@example.com",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        );
        let phone = (g % 4 != 0)
            .then(|| format!("+1-503-{:03}-{:04}", (g >> 20) % 1000, (g >> 32) % 10_000))
            .map(String::into_boxed_str);
        let title = ((g >> 4) % 10 != 0).then(|| Cow::Borrowed(pick(TITLES, g >> 8)));
        let location = ((g >> 12) % 3 != 0).then(|| Cow::Borrowed(pick(LOCATIONS, g >> 40)));
        let license = match (h >> 40) % 100 {
            0..=69 => LicenseType::Named,
            70..=79 => LicenseType::Floating,
            80..=89 => LicenseType::Stakeholder,
            90..=94 => LicenseType::NamedReviewer,
            _ => LicenseType::TestRunner,
        };
        let auth_type = if (h >> 48) % 5 == 0 {
            2
        } else {
            DEFAULT_AUTH_TYPE
        };
        let custom_data = if (g >> 48) % 4 == 0 {
            vec![(
                Box::from("department"),
                Some(Box::from(pick(DEPARTMENTS, g >> 52))),
            )]
        } else {
            Vec::new()
        };
        UserRecord {
            id: self.first_user_id.saturating_add(index),
            username: format!("jama.user{number:05}").into_boxed_str(),
            first_name: Cow::Borrowed(first),
            last_name: Cow::Borrowed(last),
            email: email.into_boxed_str(),
            phone,
            title,
            location,
            license,
            active,
            avatar_url: None,
            auth_type,
            custom_data,
        }
    }

    /// Group `index` and its members: user u is in it when a hash of (seed, u, group) falls
    /// under the group's share. Weights 1–4 in turn make the groups' sizes differ while the
    /// shares add up to `memberships_per_user`.
    fn group(&self, index: u32, users: &[UserRecord]) -> Group {
        let id = self.first_group_id.saturating_add(index);
        let base = pick(GROUP_NAMES, u64::from(index));
        let name = numbered(base, index, GROUP_NAMES.len());
        // Every fourth group belongs to a project; the rest are organisation-wide.
        let project = (index % 4 == 3).then(|| 20 + index / 4);
        let total_weight: u64 = (0..self.groups)
            .map(|g| 1 + u64::from(g) % WEIGHT_CYCLE)
            .sum();
        let weight = 1 + u64::from(index) % WEIGHT_CYCLE;
        let share = (u64::from(self.memberships_per_user) * weight * PPM)
            .checked_div(total_weight)
            .unwrap_or(0)
            .min(PPM);
        let salt = mix(self.seed ^ 0x6A0C_0000_0000_0000 ^ u64::from(id));
        let members = users
            .iter()
            .filter(|user| mix(salt ^ u64::from(user.id)) % PPM < share)
            .map(|user| user.id)
            .collect();
        Group {
            id,
            description: format!("{name} user group."),
            name,
            project,
            members,
        }
    }
}

/// ⌊k·users/(inactive+1)⌋, the index of the k-th inactive user.
fn spread(k: u32, users: u32, inactive: u32) -> u32 {
    let at = u64::from(k) * u64::from(users) / (u64::from(inactive) + 1);
    u32::try_from(at).unwrap_or(u32::MAX)
}

const TITLES: &[&str] = &[
    "Systems Engineer",
    "Requirements Engineer",
    "Test Engineer",
    "Quality Manager",
    "Product Manager",
    "Project Manager",
    "Hardware Engineer",
    "Software Engineer",
    "Regulatory Specialist",
    "Safety Engineer",
    "Verification Lead",
    "Program Director",
];

const LOCATIONS: &[&str] = &[
    "Portland",
    "Boston",
    "London",
    "Munich",
    "Singapore",
    "Toronto",
    "Austin",
    "Lyon",
];

const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Quality",
    "Regulatory",
    "Product",
    "Operations",
];

const GROUP_NAMES: &[&str] = &[
    "Systems Engineering",
    "Requirements Authors",
    "Reviewers",
    "Test Team",
    "Quality Assurance",
    "Product Management",
    "Regulatory Affairs",
    "Hardware",
    "Software",
    "Stakeholders",
    "Safety",
    "Project Admins",
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Instant;

    use super::*;

    #[test]
    fn small_seed_has_exact_inactive_users_and_an_active_api_user() {
        let seed = JamaSeed {
            users: 137,
            inactive_users: 12,
            ..JamaSeed::default()
        };
        let dir = seed.generate();
        assert_eq!(dir.users.len(), 137);
        assert_eq!(dir.users.iter().filter(|u| !u.active).count(), 12);
        let first = dir.users.first().unwrap();
        assert!(first.active);
        assert_eq!(first.username.as_ref(), "jama.user00001");
        assert_eq!(dir.api_user_id, Some(first.id));
        assert_eq!(
            dir.users.last().unwrap().username.as_ref(),
            "jama.user00137"
        );
        assert_eq!(dir.next_user_id, 1001 + 137);
        assert_eq!(dir.groups.len(), 12);
        assert!(dir.groups.iter().any(|g| g.project.is_some()));
        assert!(dir.groups.iter().any(|g| g.project.is_none()));
        // Too many inactive users: all but the API user.
        let all = JamaSeed {
            users: 5,
            inactive_users: 50,
            ..JamaSeed::default()
        }
        .generate();
        assert_eq!(
            all.users.iter().map(|u| u.active).collect::<Vec<_>>(),
            [true, false, false, false, false]
        );
        assert!(JamaSeed::empty().generate().api_user_id.is_none());
    }

    #[test]
    fn twenty_thousand_users_in_forty_groups_build_quickly_and_deterministically() {
        let seed = JamaSeed {
            users: 20_000,
            inactive_users: 1_000,
            groups: 40,
            memberships_per_user: 10,
            ..JamaSeed::default()
        };
        let started = Instant::now();
        let a = seed.generate();
        let elapsed = started.elapsed();
        let b = seed.generate();
        assert!(
            a.users == b.users && a.groups == b.groups,
            "same seed, same data"
        );
        assert_eq!(a.users.len(), 20_000);
        assert_eq!(a.groups.len(), 40);
        assert_eq!(a.users.iter().filter(|u| !u.active).count(), 1_000);
        let memberships: usize = a.groups.iter().map(|g| g.members.len()).sum();
        assert!(
            (190_000..210_000).contains(&memberships),
            "about 200 000 memberships: {memberships}"
        );
        assert!(a
            .groups
            .iter()
            .all(|g| g.members.windows(2).all(|w| w[0] < w[1])));
        let sizes: Vec<usize> = a.groups.iter().map(|g| g.members.len()).collect();
        assert!(sizes.iter().max() > sizes.iter().min().map(|m| m * 3).as_ref());
        let names: HashSet<&str> = a.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names.len(), 40, "group names are unique");
        let emails: HashSet<&str> = a.users.iter().map(|u| u.email.as_ref()).collect();
        assert_eq!(emails.len(), 20_000, "emails are unique");
        // Debug builds too: generous, but catches anything quadratic.
        assert!(elapsed.as_secs() < 5, "seed took {elapsed:?}");

        let other = JamaSeed {
            seed: 7,
            ..seed.clone()
        }
        .generate();
        assert!(other.users != a.users, "another seed, other data");
        assert!(other.groups != a.groups);
    }
}
