//! Which task attributes a submit may name, and the refusal of the others: a key that no
//! template of the operation reads would be dropped on the way to the target, so it is
//! refused at submit (exit 2 / HTTP 400) with the keys that are read, and a hint where the
//! key looks like one of them (`phone` for `phonenumber`, `emial` for `email`).
//!
//! The keys a submit may name on one (target, operation) are:
//!
//! * what the operation's request templates read (built-in and the operator's, see
//!   [`Connector::attribute_keys`]); any key when a template reads the whole `user` map;
//! * for `create_account`, the keys submit requires ([`CREATE_REQUIRED`]): idsync reads them
//!   itself (the local account's display name and e-mail, and judging a duplicate);
//! * `username` when its value is the task's account: idsync binds that value to
//!   `user.username` anyway. A different `username` counts only where a template reads it.
//!
//! Keys compare without letter case (they are bound lower-cased); a null value is not given.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::connector::template::AttributeReads;
use crate::connector::Connector;
use crate::model::{Attributes, Operation};
use crate::sync::tasks::CREATE_REQUIRED;

/// The attribute idsync binds to the task's account when the submit gives none.
pub const USERNAME: &str = "username";

/// Well-known other names of the Saviynt-style keys (`alias → key`), from the targets' own
/// field names (Jama `phone`, DigiCert `telephone` and `job_title`) and common directory
/// attributes (`mail`, `givenName`, `sn`). Aliases are compared in their normalized form
/// (lower case, without `_`, `-`, `.` and spaces), so `first_name` and `firstName` match
/// `firstname` without an entry here. A key is suggested only where the operation reads it.
pub const ALIASES: &[(&str, &str)] = &[
    ("phone", "phonenumber"),
    ("telephone", "phonenumber"),
    ("telephonenumber", "phonenumber"),
    ("tel", "phonenumber"),
    ("mobile", "phonenumber"),
    ("mobilephone", "phonenumber"),
    ("mobilenumber", "phonenumber"),
    ("cell", "phonenumber"),
    ("cellphone", "phonenumber"),
    ("mail", "email"),
    ("emailaddress", "email"),
    ("primaryemail", "email"),
    ("givenname", "firstname"),
    ("forename", "firstname"),
    ("first", "firstname"),
    ("fname", "firstname"),
    ("surname", "lastname"),
    ("sn", "lastname"),
    ("familyname", "lastname"),
    ("last", "lastname"),
    ("lname", "lastname"),
    ("jobtitle", "title"),
    ("position", "title"),
    ("designation", "title"),
    ("fullname", "displayname"),
    ("name", "displayname"),
    ("cn", "displayname"),
    ("license", "license_type"),
    ("licence", "license_type"),
    ("licencetype", "license_type"),
    ("container", "container_id"),
    ("division", "container_id"),
    ("divisionid", "container_id"),
    ("employeenumber", "employeeid"),
    ("employeeno", "employeeid"),
    ("empid", "employeeid"),
    ("city", "location"),
    ("office", "location"),
    ("site", "location"),
    ("dept", "department"),
    ("ou", "department"),
    ("supervisor", "manager"),
    ("managerid", "manager"),
    ("login", "username"),
    ("loginname", "username"),
    ("userid", "username"),
    ("uid", "username"),
    ("samaccountname", "username"),
];

/// The task attributes a submit of one operation may name on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAttributes {
    target: String,
    operation: Operation,
    reads: AttributeReads,
    templates: Vec<String>,
}

impl KnownAttributes {
    /// What `operation` (on entitlement type `entitlement_type`, for access operations)
    /// reads on `connector`'s target, with the keys idsync reads itself (see the module).
    pub fn of(
        connector: &dyn Connector,
        operation: Operation,
        entitlement_type: Option<&str>,
    ) -> Self {
        let used = connector.attribute_keys(operation, entitlement_type);
        let own: &[&str] = if operation == Operation::CreateAccount {
            CREATE_REQUIRED
        } else {
            &[]
        };
        let own = AttributeReads::Keys(own.iter().map(|key| key.to_string()).collect());
        Self {
            target: connector.target().to_string(),
            operation,
            reads: used.reads.union(&own),
            templates: used.templates,
        }
    }

    /// The keys a submit may name, sorted; `None` when any key is taken (a template reads
    /// the whole `user` map). `username` is listed only where a template reads it.
    pub fn keys(&self) -> Option<&BTreeSet<String>> {
        self.reads.keys()
    }

    /// Refuses `attributes` (of a task on account `account`) when it names a key that is
    /// not taken: [`UnknownAttributes`] names every such key, with a hint where one fits.
    pub fn check(&self, attributes: &Attributes, account: &str) -> Result<(), UnknownAttributes> {
        let Some(known) = self.keys() else {
            return Ok(());
        };
        let unknown: Vec<UnknownKey> = attributes
            .iter()
            .filter(|(_, value)| !value.is_null())
            .filter_map(|(given, value)| {
                let key = given.to_lowercase();
                if known.contains(&key) {
                    return None;
                }
                let hint = if key == USERNAME {
                    if value.as_str().map(str::trim) == Some(account.trim()) {
                        return None;
                    }
                    Hint::Login
                } else {
                    suggest(&key, known).map_or(Hint::None, |key| Hint::DidYouMean(key.clone()))
                };
                Some(UnknownKey {
                    given: given.clone(),
                    hint,
                })
            })
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(UnknownAttributes {
            target: self.target.clone(),
            operation: self.operation,
            unknown,
            known: known.iter().cloned().collect(),
            templates: self.templates.clone(),
        })
    }
}

/// What one operation of one target reads: a line of the listing `check-config` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationKeys {
    /// The target.
    pub target: String,
    /// The operation.
    pub operation: Operation,
    /// The entitlement type, for access operations.
    pub entitlement_type: Option<String>,
    /// The keys a submit may name, sorted; `None`: any key.
    pub reads: Option<Vec<String>>,
}

impl fmt::Display for OperationKeys {
    /// `jama create_account: email, firstname, …`, `… add_access usergroup: none`, `…: any
    /// key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.target, self.operation)?;
        if let Some(kind) = &self.entitlement_type {
            write!(f, " {kind}")?;
        }
        match self.reads.as_deref() {
            None => f.write_str(": any key (a template reads the whole user map)"),
            Some([]) => f.write_str(": none"),
            Some(keys) => write!(f, ": {}", keys.join(", ")),
        }
    }
}

/// What every operation each target supports reads, target by target.
pub fn listing(connectors: &BTreeMap<String, Arc<dyn Connector>>) -> Vec<OperationKeys> {
    connectors
        .iter()
        .flat_map(|(target, connector)| {
            connector
                .capabilities()
                .operations
                .iter()
                .map(|capability| {
                    let kind = capability.entitlement_type.as_deref();
                    let known = KnownAttributes::of(connector.as_ref(), capability.operation, kind);
                    OperationKeys {
                        target: target.clone(),
                        operation: capability.operation,
                        entitlement_type: capability.entitlement_type.clone(),
                        reads: known.keys().map(|keys| keys.iter().cloned().collect()),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A submit named attributes that no template of the operation reads. The message names
/// each key (with a hint where one fits), lists the keys that are read, and says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UnknownAttributes {
    /// The target.
    pub target: String,
    /// The operation.
    pub operation: Operation,
    /// The keys refused, as given, each with its hint.
    pub unknown: Vec<UnknownKey>,
    /// The keys the operation reads, sorted.
    pub known: Vec<String>,
    /// The config keys of the operation's templates (where another key could be read).
    pub templates: Vec<String>,
}

/// One refused attribute key and what it may have meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// The key as the submit gave it.
    pub given: String,
    /// What it may have meant.
    pub hint: Hint,
}

/// What a refused key may have meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// A key the operation reads: the target's own name for it, another well-known name, or
    /// a near spelling.
    DidYouMean(String),
    /// `username` other than the account, which no template reads: the login is the
    /// task's account.
    Login,
    /// Nothing close.
    None,
}

impl UnknownKey {
    /// The hint after the key in a refusal of this key alone (`: did you mean "x"?`).
    fn alone(&self, templates: bool) -> String {
        match &self.hint {
            Hint::DidYouMean(key) => format!(": did you mean \"{key}\"?"),
            Hint::Login => ": the login is the task's account (--account, or \"account\" in the \
                           API), and no template of this operation reads another username"
                .to_string(),
            Hint::None if templates => ": no template of this operation reads it".to_string(),
            Hint::None => String::new(),
        }
    }
}

impl fmt::Display for UnknownKey {
    /// The key in a list of refused keys: `"phone" (did you mean "phonenumber"?)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.given)?;
        match &self.hint {
            Hint::DidYouMean(key) => write!(f, " (did you mean \"{key}\"?)"),
            Hint::Login => f.write_str(" (the login is the task's account)"),
            Hint::None => Ok(()),
        }
    }
}

impl fmt::Display for UnknownAttributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format!("{} {}", self.target, self.operation);
        let head = match self.unknown.as_slice() {
            [one] => format!(
                "unknown attribute \"{}\" for {what}{}",
                one.given,
                one.alone(!self.templates.is_empty())
            ),
            many => {
                let keys: Vec<String> = many.iter().map(ToString::to_string).collect();
                format!("unknown attributes for {what}: {}", keys.join(", "))
            }
        };
        f.write_str(&head)?;
        if !head.ends_with('?') {
            f.write_str(".")?;
        }
        if self.known.is_empty() {
            write!(f, " {what} sends no attributes to the target.")?;
        } else {
            write!(
                f,
                " The attributes {what} reads are: {}.",
                self.known.join(", ")
            )?;
        }
        match (self.templates.is_empty(), self.unknown.len()) {
            (false, _) => write!(
                f,
                " To send another attribute, read it as ${{ user.KEY }} in {}.",
                self.templates.join(" or ")
            ),
            (true, 1) => f.write_str(" Leave it out."),
            (true, _) => f.write_str(" Leave them out."),
        }
    }
}

/// The known key `key` (lower-cased) most likely stands for: the same key spelled with
/// other separators or capitals, a well-known alias ([`ALIASES`]), else the nearest
/// spelling (at most one edit in three characters, and two in all).
fn suggest<'k>(key: &str, known: &'k BTreeSet<String>) -> Option<&'k String> {
    let normal = normalize(key);
    if let Some(same) = known.iter().find(|known| normalize(known) == normal) {
        return Some(same);
    }
    let alias = ALIASES
        .iter()
        .find(|(alias, _)| *alias == normal)
        .and_then(|(_, meant)| known.get(*meant));
    if alias.is_some() {
        return alias;
    }
    let limit = (key.chars().count() / 3).clamp(1, 2);
    known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(key, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// `key` in lower case without `_`, `-`, `.` and spaces.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn known(
        target: &str,
        operation: Operation,
        keys: &[&str],
        templates: &[&str],
    ) -> KnownAttributes {
        KnownAttributes {
            target: target.into(),
            operation,
            reads: AttributeReads::Keys(keys.iter().map(|k| k.to_string()).collect()),
            templates: templates.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn jama_create() -> KnownAttributes {
        known(
            "jama",
            Operation::CreateAccount,
            &[
                "email",
                "firstname",
                "lastname",
                "license_type",
                "location",
                "phonenumber",
                "title",
            ],
            &["targets.jama.templates.create_account"],
        )
    }

    fn attrs(value: serde_json::Value) -> Attributes {
        value.as_object().cloned().unwrap()
    }

    fn refusal(known: &KnownAttributes, value: serde_json::Value) -> String {
        known.check(&attrs(value), "jane").unwrap_err().to_string()
    }

    #[test]
    fn the_targets_own_field_name_gets_a_hint_and_the_read_keys_are_listed() {
        assert_eq!(
            refusal(
                &jama_create(),
                json!({ "phone": "+44 20 7946 0000", "email": "j@x" })
            ),
            "unknown attribute \"phone\" for jama create_account: did you mean \"phonenumber\"? \
             The attributes jama create_account reads are: email, firstname, lastname, \
             license_type, location, phonenumber, title. To send another attribute, read it as \
             ${ user.KEY } in targets.jama.templates.create_account."
        );
    }

    #[test]
    fn aliases_and_spellings_point_at_the_key_the_operation_reads() {
        let digicert = known(
            "digicert",
            Operation::CreateAccount,
            &[
                "container_id",
                "email",
                "firstname",
                "lastname",
                "phonenumber",
                "title",
            ],
            &["targets.digicert.templates.create_account"],
        );
        for (given, meant) in [
            ("telephone", "phonenumber"),
            ("Mobile", "phonenumber"),
            ("mail", "email"),
            ("E-Mail", "email"),
            ("first_name", "firstname"),
            ("givenName", "firstname"),
            ("last_name", "lastname"),
            ("sn", "lastname"),
            ("job_title", "title"),
            ("jobTitle", "title"),
            ("container", "container_id"),
            ("containerId", "container_id"),
        ] {
            let text = refusal(&digicert, json!({ given: "x" }));
            assert!(
                text.contains(&format!(
                    "\"{given}\" for digicert create_account: did you mean \"{meant}\"?"
                )),
                "{given}: {text}"
            );
        }
        // Only letter case differs: that is the key itself.
        assert!(digicert
            .check(&attrs(json!({ "firstName": "J" })), "jane")
            .is_ok());
        assert!(refusal(&jama_create(), json!({ "licenseType": "NAMED" }))
            .contains("did you mean \"license_type\"?"));
        // An alias of a key this operation does not read is no hint.
        let text = refusal(&digicert, json!({ "department_name": "x", "dept": "y" }));
        assert!(!text.contains("did you mean"), "{text}");
    }

    #[test]
    fn a_typo_gets_the_nearest_key_and_is_not_reported_as_missing() {
        let text = refusal(
            &jama_create(),
            json!({ "emial": "j@x", "firstnme": "J", "titel": "T", "lastname": "D" }),
        );
        assert!(
            text.starts_with(
                "unknown attributes for jama create_account: \"emial\" (did you mean \
                 \"email\"?), \"firstnme\" (did you mean \"firstname\"?), \"titel\" (did \
                 you mean \"title\"?). The attributes"
            ),
            "{text}"
        );
        // Nothing near: no hint, but the refusal still says no template reads it.
        let text = refusal(&jama_create(), json!({ "costcenter": "CC-1" }));
        assert!(
            text.starts_with(
                "unknown attribute \"costcenter\" for jama create_account: no template of this \
                 operation reads it. The attributes"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_operation_without_templates_reads_nothing_and_says_so() {
        let enable = known("jama", Operation::EnableAccount, &[], &[]);
        assert_eq!(
            refusal(&enable, json!({ "title": "Lead" })),
            "unknown attribute \"title\" for jama enable_account. jama enable_account sends no \
             attributes to the target. Leave it out."
        );
        assert!(refusal(&enable, json!({ "title": "Lead", "email": "x" }))
            .starts_with("unknown attributes for jama enable_account: \"email\", \"title\". "));
        assert!(enable.check(&Attributes::new(), "jane").is_ok());
    }

    #[test]
    fn known_keys_pass_in_any_case_and_nulls_are_not_given() {
        let create = jama_create();
        assert!(create
            .check(
                &attrs(json!({ "EMAIL": "j@x", "FirstName": "J", "phone": null })),
                "jane"
            )
            .is_ok());
    }

    #[test]
    fn username_passes_as_the_account_and_is_refused_as_someone_else() {
        let create = jama_create();
        assert!(create
            .check(&attrs(json!({ "username": "jane" })), "jane")
            .is_ok());
        let text = refusal(&create, json!({ "username": "bob" }));
        assert!(
            text.contains(
                "\"username\" for jama create_account: the login is the task's account (--account"
            ),
            "{text}"
        );
        // Where a template reads it, any username is taken.
        let reads_it = known("dc", Operation::CreateAccount, &["username"], &[]);
        assert!(reads_it
            .check(&attrs(json!({ "username": "bob" })), "jane")
            .is_ok());
    }

    #[test]
    fn a_template_reading_the_whole_map_takes_every_key() {
        let any = KnownAttributes {
            target: "dc".into(),
            operation: Operation::CreateAccount,
            reads: AttributeReads::Any,
            templates: Vec::new(),
        };
        assert_eq!(any.keys(), None);
        assert!(any
            .check(&attrs(json!({ "anything": 1, "username": "bob" })), "jane")
            .is_ok());
    }

    proptest! {
        /// Whatever the keys given, exactly those not read (and not null) are refused, each
        /// named as given, and any hint names a key that is read.
        #[test]
        fn exactly_the_unread_keys_are_refused(
            given in proptest::collection::btree_map("[A-Za-z_]{1,12}", any::<bool>(), 0..8)
        ) {
            let create = jama_create();
            let attributes: Attributes = given
                .iter()
                .map(|(key, null)| (key.clone(), if *null { json!(null) } else { json!("v") }))
                .collect();
            let read = create.keys().unwrap();
            let mut wanted: Vec<&String> = given
                .iter()
                .filter(|(key, null)| !**null && !read.contains(&key.to_lowercase()))
                .filter(|(key, _)| key.to_lowercase() != USERNAME)
                .map(|(key, _)| key)
                .collect();
            wanted.sort();
            match create.check(&attributes, "jane") {
                Ok(()) => prop_assert!(wanted.is_empty()),
                Err(err) => {
                    let refused: Vec<&String> = err
                        .unknown
                        .iter()
                        .filter(|key| key.given.to_lowercase() != USERNAME)
                        .map(|key| &key.given)
                        .collect();
                    prop_assert_eq!(refused, wanted);
                    for key in &err.unknown {
                        if let Hint::DidYouMean(meant) = &key.hint {
                            prop_assert!(read.contains(meant));
                        }
                    }
                }
            }
        }
    }
}
