//! Which task attributes (`user.*` keys) a request template reads, found by looking at the
//! compiled template, so that a submit naming a key no template reads can be refused instead
//! of being dropped without a word.
//!
//! Two looks, joined:
//!
//! * **Statically** ([`minijinja::Template::undeclared_variables`]): every `user.KEY` the
//!   template names, in any branch, including `user.KEY is defined` and
//!   `user.KEY | default(…)`.
//! * **By rendering** (only when the template uses `user` other than as `user.KEY`: a
//!   subscript `user[key]` or `user["key"]`, a loop over keys, `user` passed on under another
//!   name): the template is rendered twice with a recording `user` and undefined values
//!   allowed, once with every key set (so `if user[key]` and `is defined` branches run) and
//!   once with none (so `is not defined` branches run). Every key looked up counts.
//!
//! Counted as reading **every** key ([`AttributeReads::Any`]): a template that reads the
//! whole map (`user | items`, `user | tojson`, `user | length`, printing `user`, a loop over
//! `user`), or one that uses `user` dynamically and fails to render in a look (its reads
//! cannot all be seen, so nothing is refused on its account).
//!
//! Not methods: minijinja maps have none, so `user.get("x")` fails `check-config` like any
//! other template error.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, UndefinedBehavior, Value};

use super::SAMPLE_USER;

/// The name task attributes are bound under.
const USER: &str = "user";

/// The value of a key the template reads that [`SAMPLE_USER`] does not hold, when a template
/// is rendered with sample values (`check-config`, and the look by rendering): a digit
/// string, which reads as text where the template quotes it and as a number where it does
/// not, as an `--attr KEY=VALUE` value can.
pub const SAMPLE_CUSTOM_VALUE: &str = "1";

/// The task attributes something reads (a template, or every template of one operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeReads {
    /// These keys, and no others.
    Keys(BTreeSet<String>),
    /// Any key: a template reads the whole `user` map, or reads it in a way that cannot be
    /// followed.
    Any,
}

impl AttributeReads {
    /// Reads no attribute.
    pub fn none() -> Self {
        AttributeReads::Keys(BTreeSet::new())
    }

    /// Whether `key` is read.
    pub fn contains(&self, key: &str) -> bool {
        match self {
            AttributeReads::Keys(keys) => keys.contains(key),
            AttributeReads::Any => true,
        }
    }

    /// The keys read, sorted; `None` for [`AttributeReads::Any`].
    pub fn keys(&self) -> Option<&BTreeSet<String>> {
        match self {
            AttributeReads::Keys(keys) => Some(keys),
            AttributeReads::Any => None,
        }
    }

    /// What `self` or `other` reads.
    pub fn union(self, other: &AttributeReads) -> Self {
        match (self, other) {
            (AttributeReads::Keys(mut keys), AttributeReads::Keys(more)) => {
                keys.extend(more.iter().cloned());
                AttributeReads::Keys(keys)
            }
            _ => AttributeReads::Any,
        }
    }
}

/// The task attributes template `source` (written in `syntax`) reads. `root` builds the
/// context to render it with from a `user` value: every other binding set to a sample.
pub fn attribute_reads(
    source: &str,
    syntax: &SyntaxConfig,
    root: impl Fn(Value) -> Value,
) -> AttributeReads {
    let mut env = Environment::new();
    env.set_syntax(syntax.clone());
    // Undefined values pass wherever they can, so a look goes on past a key it did not set.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    if env.add_template("probe", source).is_err() {
        return AttributeReads::Any;
    }
    let Ok(template) = env.get_template("probe") else {
        return AttributeReads::Any;
    };
    let mut keys = BTreeSet::new();
    let mut dynamic = false;
    for name in template.undeclared_variables(true) {
        if name == USER {
            dynamic = true;
        } else if let Some(path) = name.strip_prefix("user.") {
            let key = path.split('.').next().unwrap_or(path);
            keys.insert(key.to_string());
        }
    }
    if !dynamic {
        return AttributeReads::Keys(keys);
    }
    for defined in [true, false] {
        let recorder = Arc::new(Recorder::new(defined));
        let rendered = template.render(root(Value::from_dyn_object(recorder.clone())));
        if rendered.is_err() || recorder.read_whole_map() {
            return AttributeReads::Any;
        }
        keys.extend(recorder.keys());
    }
    AttributeReads::Keys(keys)
}

/// A `user` map that records the keys looked up and whether the whole map was read. With
/// `defined`, every key has a value (the sample one); without, none has.
#[derive(Debug)]
struct Recorder {
    defined: bool,
    keys: Mutex<BTreeSet<String>>,
    whole_map: AtomicBool,
}

impl Recorder {
    fn new(defined: bool) -> Self {
        Self {
            defined,
            keys: Mutex::new(BTreeSet::new()),
            whole_map: AtomicBool::new(false),
        }
    }

    fn keys(&self) -> BTreeSet<String> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn read_whole_map(&self) -> bool {
        self.whole_map.load(Ordering::Relaxed)
    }
}

impl Object for Recorder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string());
        self.defined.then(|| Value::from(sample_value(key)))
    }

    /// Iterating, counting, serializing or printing the map reads every key.
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.whole_map.store(true, Ordering::Relaxed);
        Enumerator::Empty
    }

    /// `{% if user %}` reads no key (and the real map always holds `username`).
    fn is_true(self: &Arc<Self>) -> bool {
        true
    }
}

/// The sample value of attribute `key`: [`SAMPLE_USER`]'s, else [`SAMPLE_CUSTOM_VALUE`].
pub fn sample_value(key: &str) -> &'static str {
    SAMPLE_USER
        .iter()
        .find(|(sample, _)| *sample == key)
        .map_or(SAMPLE_CUSTOM_VALUE, |(_, value)| value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::connector::template::{syntax, TemplateContext};

    fn reads(source: &str) -> AttributeReads {
        let syntax = syntax().unwrap();
        let sample = TemplateContext::sample("t", "create_account");
        attribute_reads(source, &syntax, |user| sample.root_with_user(user))
    }

    fn keys(source: &str) -> Vec<String> {
        match reads(source) {
            AttributeReads::Keys(keys) => keys.into_iter().collect(),
            AttributeReads::Any => panic!("{source}: reads every key"),
        }
    }

    fn built_in(catalog: &crate::connector::template::TemplateCatalog, key: &str) -> Vec<String> {
        let (_, source) = catalog
            .defaults
            .iter()
            .find(|(name, _)| *name == key)
            .unwrap();
        keys(source)
    }

    #[test]
    fn the_built_in_templates_read_what_their_targets_take() {
        use crate::connector::{digicert, duckcreek, jama};
        assert_eq!(
            built_in(&jama::TEMPLATES, "create_account"),
            [
                "email",
                "firstname",
                "lastname",
                "license_type",
                "location",
                "phonenumber",
                "title"
            ]
        );
        assert_eq!(
            built_in(&jama::TEMPLATES, "update_account"),
            [
                "email",
                "firstname",
                "lastname",
                "license_type",
                "location",
                "phonenumber",
                "title"
            ]
        );
        assert_eq!(
            built_in(&digicert::TEMPLATES, "create_account"),
            [
                "container_id",
                "email",
                "firstname",
                "lastname",
                "phonenumber",
                "title"
            ]
        );
        assert_eq!(
            built_in(&digicert::TEMPLATES, "update_account"),
            ["email", "firstname", "lastname", "phonenumber", "title"]
        );
        for (key, _) in duckcreek::TEMPLATES.defaults {
            assert_eq!(
                built_in(&duckcreek::TEMPLATES, key),
                Vec::<String>::new(),
                "{key}"
            );
        }
    }

    #[test]
    fn attribute_reads_count_in_every_branch_filter_and_test() {
        assert_eq!(
            keys(
                r#"{"a": "${ user.firstname }"{% if user.title is defined %}, "t": "${ user.title }"{% else %}, "d": "${ user.department | default("x") }"{% endif %}}"#
            ),
            ["department", "firstname", "title"]
        );
        // Only the attribute of `user` counts, not a deeper path or another binding.
        assert_eq!(
            keys(
                r#"${ user.manager.name } ${ account.name } ${ task.id } ${ entitlementValue.entitlementID }"#
            ),
            ["manager"]
        );
        assert_eq!(keys(r#"{"n": "${ account.name }"}"#), Vec::<String>::new());
    }

    #[test]
    fn subscripts_loops_and_aliases_are_followed_by_rendering() {
        assert_eq!(keys(r#"${ user["costcenter"] }"#), ["costcenter"]);
        assert_eq!(
            keys(r#"{% for key in ["phonenumber", "mobile"] %}${ user[key] }{% endfor %}"#),
            ["mobile", "phonenumber"]
        );
        assert_eq!(
            keys(
                r#"{% for key, field in {"a": "A", "b": "B"}|items if user[key] is defined %}${ field }${ user[key] }{% endfor %}"#
            ),
            ["a", "b"]
        );
        assert_eq!(keys(r#"{% set u = user %}${ u.phone }"#), ["phone"]);
        assert_eq!(keys(r#"{% if "mail" in user %}x{% endif %}"#), ["mail"]);
        // A key looked up only when another is missing.
        assert_eq!(
            keys(r#"{% if user.q is not defined %}${ user["w" ~ "x"] }{% endif %}"#),
            ["q", "wx"]
        );
        assert_eq!(
            keys(r#"{% if user %}${ user["a"] }{% endif %}"#),
            ["a"],
            "testing the map is not reading it"
        );
    }

    #[test]
    fn reading_the_whole_map_or_an_unfollowable_read_counts_every_key() {
        for source in [
            r#"${ user | tojson }"#,
            r#"{% for k, v in user | items %}${ k }{% endfor %}"#,
            r#"{% for k in user %}${ k }{% endfor %}"#,
            r#"${ user | length }"#,
            r#"${ user }"#,
            r#"{% set u = user %}${ u | tojson }"#,
            // Fails to render: the reads after the failure cannot be seen.
            r#"{% for k in ["a", "b"] %}${ user[k] + 1 }{% endfor %}"#,
        ] {
            assert_eq!(reads(source), AttributeReads::Any, "{source}");
        }
        // A template that fails to render but names its keys needs no rendering.
        assert_eq!(keys(r#"${ user.n + 1 }"#), ["n"]);
    }

    #[test]
    fn methods_are_names_not_reads_and_fail_the_real_render() {
        // `user.get` is what the static look sees; check-config refuses the template.
        assert_eq!(keys(r#"${ user.get("mail") }"#), ["get"]);
    }

    #[test]
    fn unions_and_membership() {
        let a = AttributeReads::Keys(["a".to_string()].into());
        let b = AttributeReads::Keys(["b".to_string()].into());
        let both = a.clone().union(&b);
        assert!(both.contains("a") && both.contains("b") && !both.contains("c"));
        assert_eq!(a.clone().union(&AttributeReads::Any), AttributeReads::Any);
        assert_eq!(AttributeReads::Any.union(&a), AttributeReads::Any);
        assert!(AttributeReads::Any.contains("anything"));
        assert_eq!(AttributeReads::none().keys().map(BTreeSet::len), Some(0));
    }

    proptest! {
        /// Whatever the keys, and however each is read (attribute, subscript, test,
        /// default, a loop over a literal list), the reads are exactly those keys.
        #[test]
        fn any_set_of_reads_is_found_exactly(
            reads_of in proptest::collection::btree_map("[a-z][a-z0-9_]{0,12}", 0..5usize, 0..6)
        ) {
            let mut source = String::from("{");
            for (key, form) in &reads_of {
                source.push_str(&match form {
                    0 => format!("${{ user.{key} }}"),
                    1 => format!("${{ user[\"{key}\"] }}"),
                    2 => format!("{{% if user.{key} is defined %}}x{{% endif %}}"),
                    3 => format!("${{ user.{key} | default(\"d\") }}"),
                    _ => format!("{{% for k in [\"{key}\"] %}}${{ user[k] }}{{% endfor %}}"),
                });
                source.push(' ');
            }
            source.push('}');
            let wanted: Vec<String> = reads_of.keys().cloned().collect();
            prop_assert_eq!(keys(&source), wanted);
        }
    }
}
