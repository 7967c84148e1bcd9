//! `idsync-fuzz seed-corpus`: writes the committed seed corpora. The page targets get the
//! simulators' real answers (started in-process on loopback); templates, config and API get
//! the sample values, the shipped config files and valid task bodies.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use idsync_sim::{
    DigicertSeed, DigicertSim, DigicertSimConfig, DuckCreekSeed, DuckCreekSim, DuckCreekSimConfig,
    JamaSeed, JamaSim, JamaSimConfig,
};
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};

type Error = Box<dyn std::error::Error>;

/// Writes every corpus under `root` (one directory per target), replacing `seed-*` files.
pub fn write_all(root: &Path, repo: &Path) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        digicert(&root.join("digicert")).await?;
        jama(&root.join("jama")).await?;
        duckcreek(&root.join("duckcreek")).await
    })?;
    templates(&root.join("templates"))?;
    config(&root.join("config"), repo)?;
    api(&root.join("api"))?;
    Ok(())
}

/// Empties the `seed-*` files of `dir` (creating it), so a rerun leaves no stale seed.
fn fresh(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

fn save(dir: &Path, name: &str, body: &[u8]) -> Result<(), Error> {
    fs::write(dir.join(format!("seed-{name}")), body)?;
    println!("  {}/seed-{name} ({} bytes)", dir.display(), body.len());
    Ok(())
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A small simulated DigiCert account's users, containers, roles and an error.
async fn digicert(dir: &Path) -> Result<(), Error> {
    fresh(dir)?;
    let config = DigicertSimConfig {
        seed: DigicertSeed {
            users: 12,
            divisions: 2,
            ..DigicertSeed::default()
        },
        ..DigicertSimConfig::default()
    };
    let server = DigicertSim::start(config, loopback()).await?;
    let key = server.control().api_key();
    let client = reqwest::Client::new();
    let base = server.base_url();
    let get = |path: &str, key: &str| {
        client
            .get(format!("{base}{path}"))
            .header("X-DC-DEVKEY", key)
            .send()
    };
    save(
        dir,
        "users-first.json",
        &get("/user?limit=3&offset=0", &key).await?.bytes().await?,
    )?;
    save(
        dir,
        "users-last.json",
        &get("/user?limit=5&offset=10", &key).await?.bytes().await?,
    )?;
    let containers = get("/container", &key).await?.bytes().await?;
    save(dir, "containers.json", &containers)?;
    let first = serde_json::from_slice::<Value>(&containers)?["containers"][0]["id"].clone();
    save(
        dir,
        "roles.json",
        &get(&format!("/container/{first}/role"), &key)
            .await?
            .bytes()
            .await?,
    )?;
    save(
        dir,
        "error-unauthorized.json",
        &get("/user", "wrong").await?.bytes().await?,
    )?;
    Ok(())
}

/// A small simulated Jama tenant's users, groups, members and an error.
async fn jama(dir: &Path) -> Result<(), Error> {
    fresh(dir)?;
    let config = JamaSimConfig {
        seed: JamaSeed {
            users: 8,
            groups: 3,
            ..JamaSeed::default()
        },
        ..JamaSimConfig::default()
    };
    let (id, secret) = (
        config.client_id.clone(),
        config.client_secret.expose_secret().to_string(),
    );
    let server = JamaSim::start(config, loopback()).await?;
    let base = server.base_url();
    let client = reqwest::Client::new();
    let token: Value = serde_json::from_slice(
        &client
            .post(format!("{base}/rest/oauth/token"))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    let token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let get = |path: &str| {
        client
            .get(format!("{base}/rest/v1{path}"))
            .bearer_auth(&token)
            .send()
    };
    save(
        dir,
        "users-first.json",
        &get("/users?startAt=0&maxResults=3").await?.bytes().await?,
    )?;
    save(
        dir,
        "users-last.json",
        &get("/users?startAt=6&maxResults=5").await?.bytes().await?,
    )?;
    let groups = get("/usergroups").await?.bytes().await?;
    save(dir, "usergroups.json", &groups)?;
    let first = serde_json::from_slice::<Value>(&groups)?["data"][0]["id"].clone();
    save(
        dir,
        "members.json",
        &get(&format!("/usergroups/{first}/users"))
            .await?
            .bytes()
            .await?,
    )?;
    save(
        dir,
        "error-not-found.json",
        &get("/users/99999999").await?.bytes().await?,
    )?;
    Ok(())
}

/// A small simulated Duck Creek tenant's batch answers: users, the catalogue, a refused
/// login, and a SOAP fault.
async fn duckcreek(dir: &Path) -> Result<(), Error> {
    fresh(dir)?;
    let config = DuckCreekSimConfig {
        seed: DuckCreekSeed {
            users: 4,
            roles: 3,
            entities: 3,
            privileges: 3,
            ..DuckCreekSeed::default()
        },
        ..DuckCreekSimConfig::default()
    };
    let (user, password) = (
        config.username.clone(),
        config.password.expose_secret().to_string(),
    );
    let server = DuckCreekSim::start(config, loopback()).await?;
    let base = server.base_url();
    let client = reqwest::Client::new();
    let entity = idsync::connector::duckcreek::DEFAULT_ENTITY_ID;
    let post = |password: &str, requests: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope \
             xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><server><requests>\
             <Session.loginRq userName=\"{user}\" password=\"{password}\"/>{requests}\
             <Session.closeRq/></requests></server></s:Body></s:Envelope>"
        );
        client
            .post(&base)
            .header("content-type", "text/xml; charset=utf-8")
            .body(body)
            .send()
    };
    let users = format!("<OnlineData.listEntityUsersRq entityID=\"{entity}\"/>");
    save(
        dir,
        "users.xml",
        &post(&password, &users).await?.bytes().await?,
    )?;
    let catalogue = "<Security.listRolesRq includePrivileges=\"false\"/>\
                     <OnlineData.listEntitiesRq/><Security.listPrivilegesRq/>";
    save(
        dir,
        "catalogue.xml",
        &post(&password, catalogue).await?.bytes().await?,
    )?;
    save(
        dir,
        "login-refused.xml",
        &post("wrong", &users).await?.bytes().await?,
    )?;
    let fault = client
        .post(&base)
        .header("content-type", "text/xml; charset=utf-8")
        .body("<not-soap/>")
        .send()
        .await?
        .bytes()
        .await?;
    save(dir, "fault.xml", &fault)?;
    Ok(())
}

/// The sample values `check-config` renders with, and a hostile set.
fn templates(dir: &Path) -> Result<(), Error> {
    fresh(dir)?;
    let attributes: Map<String, Value> = idsync::connector::template::SAMPLE_USER
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
        .collect();
    let sample = json!({
        "attributes": attributes,
        "account_name": "jane.doe",
        "account_id": "1001",
        "entitlement": ["role", "5"],
        "entitlement_name": "Standard User",
        "password": "Sample-Passw0rd!",
        "request_id": "sample-request",
    });
    save(dir, "sample.json", &serde_json::to_vec_pretty(&sample)?)?;
    let hostile = json!({
        "attributes": { "first_name": "\u{1b}[2J\u{1b}[31mEVIL", "last_name": "a\u{202e}b",
                        "email": "\"},{\"x\":\"</a><b>&amp;", "title": "${ password }" },
        "account_name": "a\u{0}b",
        "account_id": "1\"2",
        "entitlement": ["role", "<r>"],
        "entitlement_name": "]]>",
        "password": "p\"w<&>",
        "request_id": "{% raw %}",
    });
    save(dir, "hostile.json", &serde_json::to_vec_pretty(&hostile)?)?;
    Ok(())
}

/// The shipped config files.
fn config(dir: &Path, repo: &Path) -> Result<(), Error> {
    fresh(dir)?;
    let mut files = vec![repo.join("config/idsync.example.toml")];
    for entry in fs::read_dir(repo.join("examples/config"))? {
        files.push(entry?.path());
    }
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        save(dir, &name, &fs::read(&file)?)?;
    }
    Ok(())
}

/// Valid task bodies of each shape.
fn api(dir: &Path) -> Result<(), Error> {
    fresh(dir)?;
    let bodies = [
        (
            "create.json",
            json!({"target": "digicert", "operation": "create_account", "account": "jane.doe",
            "attributes": {"email": "jane@example.com", "firstname": "Jane", "lastname": "Doe"},
            "request_id": "r-1", "idempotency_key": "k-1"}),
        ),
        (
            "add-access.json",
            json!({"target": "jama", "operation": "add_access", "account": "jane.doe",
            "entitlement": {"type": "usergroup", "id": "3"}}),
        ),
        (
            "remove-access-text.json",
            json!({"target": "duckcreek", "operation": "remove_access",
            "account": "jane.doe", "entitlement": "Role:Underwriter", "owner": "E-1001"}),
        ),
        (
            "disable.json",
            json!({"target": "digicert", "operation": "disable_account", "account": "jane.doe"}),
        ),
    ];
    for (name, body) in bodies {
        save(dir, name, &serde_json::to_vec_pretty(&body)?)?;
    }
    Ok(())
}
