//! DigiCert page parsing: `GET /user`, `GET /container` and `GET /container/{id}/role`
//! answers read by the real DigiCert connector (paging guard, `UsersPage`/`ContainersBody`/
//! `RolesBody`, `map_user`, `map_user_grants`, `map_container`, `map_roles`), and the error
//! body reader.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

use super::adapter::AdapterRig;
use crate::generate::{draw, json_value, record};
use crate::runner::Target;

/// The keys the DigiCert mapping reads.
const KEYS: &[&str] = &[
    "id",
    "username",
    "status",
    "first_name",
    "last_name",
    "email",
    "job_title",
    "telephone",
    "container",
    "access_roles",
    "type",
    "name",
    "public_id",
    "description",
    "parent_id",
    "template_id",
    "is_active",
    "total",
    "limit",
    "offset",
    "users",
    "containers",
    "page",
    "errors",
    "code",
    "message",
];

/// The DigiCert target.
pub struct Digicert {
    rig: AdapterRig,
}

impl Digicert {
    /// A DigiCert connector reading from a mock target.
    pub fn new() -> Digicert {
        Digicert {
            rig: AdapterRig::new(
                "kind = \"digicert\"\napi_key = \"fuzz-key\"",
                "/services/v2",
                "application/json",
            ),
        }
    }
}

impl Target for Digicert {
    fn name(&self) -> &'static str {
        "digicert"
    }

    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let _ = idsync::connector::digicert::error_message(input);
        self.rig.read_all(input);
        Ok(())
    }

    fn generate(&mut self, runner: &mut TestRunner) -> Vec<u8> {
        let records = prop::collection::vec(record(KEYS), 0..6);
        let page = json_value(KEYS, 2);
        let body: Value = match draw(0..4u8, runner) {
            0 => json!({ "users": draw(records, runner), "page": draw(page, runner) }),
            1 => json!({ "containers": draw(records, runner) }),
            2 => json!({ "access_roles": draw(records, runner) }),
            _ => draw(json_value(KEYS, 4), runner),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}
