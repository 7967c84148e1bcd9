//! Jama page parsing: `GET /users`, `GET /usergroups` and `GET /usergroups/{id}/users`
//! answers read by the real Jama connector (start-index paging guard, `ListBody`,
//! `map_user`, `map_group`, `map_members`), and the error body reader.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

use super::adapter::AdapterRig;
use crate::generate::{draw, json_value, record};
use crate::runner::Target;

/// The keys the Jama mapping reads.
const KEYS: &[&str] = &[
    "id",
    "username",
    "active",
    "firstName",
    "lastName",
    "email",
    "phone",
    "title",
    "location",
    "licenseType",
    "authenticationType",
    "customData",
    "name",
    "description",
    "project",
    "meta",
    "data",
    "pageInfo",
    "startIndex",
    "resultCount",
    "totalResults",
    "status",
    "message",
    "location",
];

/// The Jama target.
pub struct Jama {
    rig: AdapterRig,
}

impl Jama {
    /// A Jama connector reading from a mock target.
    pub fn new() -> Jama {
        Jama {
            rig: AdapterRig::new(
                "kind = \"jama\"\nclient_id = \"fuzz\"\nclient_secret = \"fuzz-secret\"",
                "",
                "application/json",
            ),
        }
    }
}

impl Target for Jama {
    fn name(&self) -> &'static str {
        "jama"
    }

    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let _ = idsync::connector::jama::error_message(input);
        self.rig.read_all(input);
        Ok(())
    }

    fn generate(&mut self, runner: &mut TestRunner) -> Vec<u8> {
        let records = prop::collection::vec(record(KEYS), 0..6);
        let page_info = json_value(KEYS, 2);
        let body: Value = match draw(0..3u8, runner) {
            0 => json!({
                "meta": { "status": "OK", "pageInfo": draw(page_info, runner) },
                "data": draw(records, runner),
            }),
            1 => {
                json!({ "meta": draw(json_value(KEYS, 3), runner), "data": draw(records, runner) })
            }
            _ => draw(json_value(KEYS, 4), runner),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}
