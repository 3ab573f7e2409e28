//! Inventory parsing, validation and selection. Every bad input must give one line naming the
//! file and the field (or line and column), and never a secret.

use std::io::Write;

use super::*;
use crate::alerts::AlertmanagerAuth;

const GOOD: &str = "\
environments:
  staging:
    rest:
      username: patroni
      password_env: PGHA_TEST_STAGING_PASSWORD
    timeouts:
      connect: 1s
      request: 3s
    clusters:
      main-db:
        scope: pg-main
        members:
          - name: db1
            host: 10.0.0.1
          - name: db2
            host: 10.0.0.2
            api_url: https://db2.example:8443/
  production:
    rest:
      scheme: https
      port: 8443
      tls:
        ca_file: ca.pem
    dcs:
      kind: consul
      hosts: [127.0.0.1:8500]
      token_file: secrets/consul-token
    ssh:
      user: ops
      sudo: true
      identity_file: keys/id
    clusters:
      main-db:
        members:
          - name: p1
            host: 10.1.0.1
      geo:
        members:
          - name: g1
            host: 10.2.0.1
";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::File::create(dir.path().join("pgha.yml"))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        Fixture { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("pgha.yml")
    }

    fn selector(&self, environment: Option<&str>, cluster: Option<&str>) -> Selector {
        Selector {
            config: Some(self.path()),
            environment: environment.map(str::to_string),
            cluster: cluster.map(str::to_string),
            ..Selector::default()
        }
    }

    fn resolve(
        &self,
        environment: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<ClusterTarget, InventoryError> {
        let selector = self.selector(environment, cluster);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(resolve(&selector))
    }

    fn error(&self, environment: Option<&str>, cluster: Option<&str>) -> String {
        let error = self.resolve(environment, cluster).unwrap_err();
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        let message = error.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        message.replace(&self.dir.path().display().to_string(), "DIR")
    }
}

#[test]
fn a_good_inventory_resolves_with_defaults_and_overrides() {
    let fixture = Fixture::new(GOOD);
    // SAFETY of the test: the variable name is unique to this test.
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let target = fixture.resolve(Some("staging"), None).unwrap();
    assert_eq!(target.cluster, "main-db");
    assert_eq!(target.scope, "pg-main");
    assert_eq!(target.members[0].api_url, "http://10.0.0.1:8008");
    assert_eq!(
        target.members[1].api_url, "https://db2.example:8443",
        "explicit URL kept, slash trimmed"
    );
    assert_eq!(target.rest.connect_timeout, Duration::from_secs(1));
    assert_eq!(target.rest.request_timeout, Duration::from_secs(3));
    let auth = target.rest.auth.as_ref().unwrap();
    assert_eq!(auth.username, "patroni");
    assert_eq!(auth.password.expose(), "s3cret");
    assert!(
        !format!("{target:?}").contains("s3cret"),
        "Debug never shows the password"
    );
}

#[test]
fn tls_and_scheme_settings_build_https_urls_and_relative_paths() {
    let fixture = Fixture::new(GOOD);
    std::fs::create_dir_all(fixture.dir.path().join("secrets")).unwrap();
    std::fs::write(fixture.dir.path().join("secrets/consul-token"), "c0nsul\n").unwrap();
    let target = fixture
        .resolve(Some("production"), Some("main-db"))
        .unwrap();
    assert_eq!(target.members[0].api_url, "https://10.1.0.1:8443");
    assert_eq!(
        target.rest.tls.ca_file.as_deref(),
        Some(fixture.dir.path().join("ca.pem").as_path())
    );
    assert!(
        target.rest.tls.verify,
        "verification is on unless said otherwise"
    );
    assert_eq!(
        target.scope, "main-db",
        "scope defaults to the cluster name"
    );
    let dcs = target.dcs.unwrap();
    assert_eq!(dcs.kind, DcsKind::Consul);
    let consul = target.consul.unwrap();
    assert_eq!(consul.addresses, ["http://127.0.0.1:8500"]);
    assert_eq!(
        consul.token.unwrap().expose(),
        "c0nsul",
        "read from its file"
    );
    let ssh = target.ssh.unwrap();
    assert!(ssh.sudo);
    assert_eq!(
        ssh.identity_file.unwrap(),
        fixture.dir.path().join("keys/id")
    );
}

#[test]
fn environment_and_cluster_must_be_chosen_when_ambiguous() {
    let fixture = Fixture::new(GOOD);
    assert_eq!(
        fixture.error(None, None),
        "DIR/pgha.yml: several environments (production, staging): choose one with --env or PGHA_ENV"
    );
    assert_eq!(
        fixture.error(Some("production"), None),
        "DIR/pgha.yml: environment \"production\" has several clusters (geo, main-db): choose one with --cluster (or name the environment's default_cluster)"
    );
    assert_eq!(
        fixture.error(Some("prod"), None),
        "DIR/pgha.yml: no environment \"prod\" (known: production, staging)"
    );
    assert_eq!(
        fixture.error(Some("production"), Some("mian-db")),
        "DIR/pgha.yml: environment \"production\" has no cluster \"mian-db\" (known: geo, main-db)"
    );
}

/// `default_cluster:` picks the cluster when `--cluster` is not given; `--cluster` still wins,
/// and a default naming no cluster of the environment is refused by field.
#[test]
fn an_environment_default_cluster_is_chosen_without_cluster() {
    let with_default = |default: &str| {
        GOOD.replace(
            "      sudo: true\n      identity_file: keys/id\n",
            &format!(
                "      sudo: true\n      identity_file: keys/id\n    default_cluster: {default}\n"
            ),
        )
    };
    let fixture = Fixture::new(&with_default("main-db"));
    std::fs::create_dir_all(fixture.dir.path().join("secrets")).unwrap();
    std::fs::write(fixture.dir.path().join("secrets/consul-token"), "t\n").unwrap();
    let chosen = fixture.resolve(Some("production"), None).unwrap();
    assert_eq!(chosen.cluster, "main-db");
    let named = fixture.resolve(Some("production"), Some("geo")).unwrap();
    assert_eq!(named.cluster, "geo");
    let fixture = Fixture::new(&with_default("mian-db"));
    assert_eq!(
        fixture.error(Some("production"), None),
        "DIR/pgha.yml: environments.production.default_cluster: \"mian-db\" is not one of its clusters (geo, main-db)"
    );
}

#[test]
fn unknown_keys_name_line_and_column() {
    let fixture = Fixture::new(&GOOD.replace(
        "      password_env: PGHA_TEST_STAGING_PASSWORD",
        "      pasword_env: X",
    ));
    let message = fixture.error(Some("staging"), None);
    assert!(
        message.starts_with("DIR/pgha.yml:5:7: unknown field `pasword_env`"),
        "{message}"
    );
}

#[test]
fn duplicate_keys_are_refused_with_their_location() {
    let fixture = Fixture::new(&GOOD.replace(
        "            host: 10.0.0.1\n",
        "            host: 10.0.0.1\n            host: 10.0.0.9\n",
    ));
    let message = fixture.error(Some("staging"), None);
    assert_eq!(
        message,
        "DIR/pgha.yml:15:13: duplicate key `host`: each key may appear once"
    );
}

#[test]
fn malformed_yaml_names_line_and_column() {
    let fixture = Fixture::new("environments:\n  staging: [unclosed\n");
    let message = fixture.error(None, None);
    assert!(message.starts_with("DIR/pgha.yml:"), "{message}");
    let location: Vec<&str> = message.split(':').skip(1).take(2).collect();
    assert!(
        location
            .iter()
            .all(|part| part.parse::<u64>().is_ok_and(|n| n > 0)),
        "{message}"
    );
}

#[test]
fn inline_passwords_are_not_accepted() {
    let fixture = Fixture::new(&GOOD.replace(
        "password_env: PGHA_TEST_STAGING_PASSWORD",
        "password: hunter2",
    ));
    let message = fixture.error(Some("staging"), None);
    assert!(message.contains("unknown field `password`"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the secret never appears: {message}"
    );
}

#[test]
fn validation_names_the_field() {
    let cases = [
        (
            GOOD.replace("- name: db2", "- name: db1"),
            "environments.staging.clusters.main-db.members[1].name: \"db1\" appears twice",
        ),
        (
            GOOD.replace("- name: db2", "- name: \"db 2;rm\""),
            "environments.staging.clusters.main-db.members[1].name: \"db 2;rm\" is not a valid name",
        ),
        (
            GOOD.replace("host: 10.0.0.1", "host: \"10.0.0.1 && x\""),
            "environments.staging.clusters.main-db.members[0].host: \"10.0.0.1 && x\" is not a host name or IP address",
        ),
        (
            GOOD.replace("host: 10.0.0.2", "host: -Jevil.example"),
            "environments.staging.clusters.main-db.members[1].host: \"-Jevil.example\" starts with '-': ssh would read it as an option",
        ),
        (
            GOOD.replace("    timeouts:\n", "    ssh:\n      user: -oProxyCommand=id\n    timeouts:\n"),
            "environments.staging.ssh.user: \"-oProxyCommand=id\" is not a user name (letters, digits, '.', '_' and '-'; not starting with '-')",
        ),
        (
            GOOD.replace("    timeouts:\n", "    ssh:\n      user: \"ops;id\"\n    timeouts:\n"),
            "environments.staging.ssh.user: \"ops;id\" is not a user name",
        ),
        (
            GOOD.replace(
                "        scope: pg-main\n",
                "        scope: pg-main\n        ssh:\n          jump_host: -oProxyCommand=id\n",
            ),
            "environments.staging.clusters.main-db.ssh.jump_host: \"-oProxyCommand=id\" is not [user@]host[:port]",
        ),
        (
            GOOD.replace(
                "        scope: pg-main\n",
                "        scope: pg-main\n        ssh:\n          jump_host: \"bastion;touch x\"\n",
            ),
            "environments.staging.clusters.main-db.ssh.jump_host: \"bastion;touch x\" is not [user@]host[:port]",
        ),
        (
            GOOD.replace(
                "        scope: pg-main\n",
                "        scope: pg-main\n        ssh:\n          jump_host: \"$(id)@bastion\"\n",
            ),
            "environments.staging.clusters.main-db.ssh.jump_host: \"$(id)@bastion\" is not [user@]host[:port]",
        ),
        (
            GOOD.replace("api_url: https://db2.example:8443/", "api_url: ftp://x"),
            "members[1].api_url: \"ftp://x\" must be an http:// or https:// URL",
        ),
        (
            GOOD.replace("      password_env: PGHA_TEST_STAGING_PASSWORD\n", ""),
            "environments.staging.rest: username is set but no password_env or password_file",
        ),
        (
            GOOD.replace("connect: 1s", "connect: soon"),
            "\"soon\" is not a duration",
        ),
        (
            GOOD.replace("connect: 1s", "connect: 9000y"),
            "\"9000y\" is longer than 7days, the longest duration pgha accepts",
        ),
        (
            GOOD.replace("connect: 1s", "connect: 1s\n      runbooks: {reinit: 200d}"),
            "runbooks.reinit: \"200d\" is longer than 7days",
        ),
        (
            GOOD.replace(
                "    timeouts:\n      connect: 1s",
                "    alertmanager:\n      url: http://am:9093\n      matchers: {fqdn: \"{hostname}\"}\n    timeouts:\n      connect: 1s",
            ),
            "environments.staging.alertmanager.matchers: \"{hostname}\": the placeholders are {member}, {host} and {cluster}",
        ),
        (
            GOOD.replace(
                "    timeouts:\n      connect: 1s",
                "    alertmanager:\n      url: http://am:9093\n      matchers: {\"alert name\": x}\n    timeouts:\n      connect: 1s",
            ),
            "environments.staging.alertmanager.matchers: \"alert name\" is not a label name",
        ),
    ];
    for (text, expected) in cases {
        let message = Fixture::new(&text).error(Some("staging"), None);
        assert!(
            message.contains(expected),
            "{message}\n  expected: {expected}"
        );
    }
}

/// `user:password@` in a URL would be copied into plans, journals and messages: every URL field
/// refuses it, naming the field and hiding the credentials.
#[test]
fn credentials_in_urls_are_refused_naming_the_field_and_hiding_them() {
    let alertmanager = |url: &str| {
        GOOD.replace(
            "    timeouts:\n      connect: 1s",
            &format!(
                "    alertmanager:\n      url: {url}\n      matchers: {{alertname: Lag}}\n    timeouts:\n      connect: 1s"
            ),
        )
    };
    let cases = [
        (
            GOOD.replace(
                "api_url: https://db2.example:8443/",
                "api_url: https://patroni:s3cret@db2.example:8443/",
            ),
            "DIR/pgha.yml: environments.staging.clusters.main-db.members[1].api_url: \"https://***@db2.example:8443/\"",
        ),
        (
            GOOD.replace(
                "api_url: https://db2.example:8443/",
                "api_url: \"https://patroni:s3cret@db2.example:port/\"",
            ),
            "members[1].api_url: \"https://***@db2.example:port/\"",
        ),
        (
            alertmanager("http://admin:s3cret@am.example:9093"),
            "DIR/pgha.yml: environments.staging.alertmanager.url: \"http://***@am.example:9093\"",
        ),
        (
            GOOD.replace(
                "    timeouts:\n      connect: 1s",
                "    dcs: {kind: consul, hosts: [\"10.0.0.8:8500\", \"acl:s3cret@10.0.0.9:8500\"]}\n    timeouts:\n      connect: 1s",
            ),
            "DIR/pgha.yml: environments.staging.dcs.hosts[1]: \"***@10.0.0.9:8500\"",
        ),
        (
            GOOD.replace(
                "        scope: pg-main\n",
                "        scope: pg-main\n        dcs: {kind: etcd, hosts: [\"http://root:s3cret@10.0.0.9:2379\"]}\n",
            ),
            "DIR/pgha.yml: environments.staging.clusters.main-db.dcs.hosts[0]: \"http://***@10.0.0.9:2379\"",
        ),
    ];
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret-rest");
    for (text, expected) in cases {
        let message = Fixture::new(&text).error(Some("staging"), None);
        assert!(
            message.contains(expected),
            "{message}\n  expected: {expected}"
        );
        assert!(message.contains("no credentials in URLs"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}

#[test]
fn patroni_config_mode_refuses_credentials_in_its_addresses() {
    let cases = [
        (
            "restapi:\n  connect_address: api:s3cret@10.0.0.1:8008\n",
            "patroni.yml: restapi.connect_address: \"http://***@10.0.0.1:8008\"",
        ),
        (
            "restapi:\n  listen: api:s3cret@10.0.0.1:8008\n",
            "patroni.yml: restapi.listen: \"http://***@10.0.0.1:8008\"",
        ),
        (
            "restapi:\n  connect_address: 10.0.0.1:8008\nconsul:\n  url: http://acl:s3cret@10.0.0.9:8500\n",
            "patroni.yml: consul.url: \"http://***@10.0.0.9:8500\"",
        ),
        (
            "restapi:\n  connect_address: 10.0.0.1:8008\nconsul:\n  host: acl:s3cret@10.0.0.9:8500\n",
            "patroni.yml: consul.host: \"http://***@10.0.0.9:8500\"",
        ),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("patroni.yml");
        std::fs::write(&path, format!("scope: demo\n{text}")).unwrap();
        let Err(error) = patroni_config::load(&path, &Selector::default()) else {
            panic!("accepted {text}");
        };
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        let message = error.to_string();
        assert!(
            message.contains(expected),
            "{message}\n  expected: {expected}"
        );
        assert!(message.contains("no credentials in URLs"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}

/// In `--api` mode the members' URLs come from the network (`/cluster`): credentials in them
/// are dropped, never sent or shown; pgha uses its own REST credentials.
#[tokio::test]
async fn discovered_members_never_carry_credentials_in_their_urls() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    let published = server.uri().replace("http://", "http://api:s3cret@");
    Mock::given(path("/cluster"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "scope": "demo",
            "members": [{"name": "node1", "role": "leader", "state": "running",
                         "host": "127.0.0.1", "api_url": format!("{published}/patroni")}]
        })))
        .mount(&server)
        .await;
    let selector = Selector {
        api: Some(server.uri()),
        ..Selector::default()
    };
    let target = resolve(&selector).await.unwrap();
    assert_eq!(target.members[0].api_url, server.uri());
}

/// GOOD's staging environment with an Alertmanager whose section ends with `credentials`.
fn with_alertmanager(credentials: &str) -> String {
    GOOD.replace(
        "    timeouts:\n      connect: 1s",
        &format!(
            "    alertmanager:\n      url: http://am.example:9093/\n      matchers: {{alertname: Lag}}\n{credentials}    timeouts:\n      connect: 1s"
        ),
    )
}

#[test]
fn alertmanager_credentials_come_from_a_variable_or_a_file() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    unsafe_set_env("PGHA_TEST_AM_PASSWORD", "am-s3cret");
    let fixture = Fixture::new(&with_alertmanager(
        "      username: pgha\n      password_env: PGHA_TEST_AM_PASSWORD\n",
    ));
    let target = fixture.resolve(Some("staging"), None).unwrap();
    let expected = AlertmanagerAuth::Basic {
        username: "pgha".into(),
        password: Secret::new("am-s3cret"),
    };
    assert_eq!(
        target.alertmanager.as_ref().unwrap().auth,
        Some(expected.clone())
    );
    assert!(!format!("{target:?}").contains("am-s3cret"));
    // Looked up by the plan's URL at call time; another URL gets nothing.
    assert_eq!(
        target.alertmanager_auth("http://am.example:9093"),
        Some(expected)
    );
    assert_eq!(target.alertmanager_auth("http://elsewhere:9093"), None);

    let fixture = Fixture::new(&with_alertmanager("      token_file: secrets/am\n"));
    std::fs::create_dir(fixture.dir.path().join("secrets")).unwrap();
    std::fs::write(fixture.dir.path().join("secrets/am"), "t0ken\n").unwrap();
    let target = fixture.resolve(Some("staging"), None).unwrap();
    assert_eq!(
        target.alertmanager.unwrap().auth,
        Some(AlertmanagerAuth::Bearer(Secret::new("t0ken")))
    );
}

#[test]
fn alertmanager_credentials_are_one_way_and_named_never_inline() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let cases = [
        (
            "      username: pgha\n      password_env: A\n      password_file: b\n",
            "DIR/pgha.yml: environments.staging.alertmanager: password_env and password_file are both set: keep one",
        ),
        (
            "      token_env: A\n      token_file: b\n",
            "DIR/pgha.yml: environments.staging.alertmanager: token_env and token_file are both set: keep one",
        ),
        (
            "      username: pgha\n      password_env: A\n      token_env: B\n",
            "DIR/pgha.yml: environments.staging.alertmanager: basic auth (username, password_env or password_file) and a bearer token (token_env or token_file) are both set: keep one",
        ),
        (
            "      username: pgha\n",
            "DIR/pgha.yml: environments.staging.alertmanager: username is set but no password_env or password_file",
        ),
        (
            "      password_file: b\n",
            "DIR/pgha.yml: environments.staging.alertmanager: a password source is set but no username",
        ),
        (
            "      token_env: PGHA_TEST_UNSET_AM_TOKEN\n",
            "DIR/pgha.yml: environments.staging.alertmanager.token_env: environment variable PGHA_TEST_UNSET_AM_TOKEN is not set",
        ),
        (
            "      token_file: missing\n",
            "DIR/pgha.yml: environments.staging.alertmanager.token_file: cannot read DIR/missing",
        ),
        ("      password: hunter2\n", "unknown field `password`"),
        ("      token: hunter2\n", "unknown field `token`"),
    ];
    for (credentials, expected) in cases {
        let message = Fixture::new(&with_alertmanager(credentials)).error(Some("staging"), None);
        assert!(
            message.contains(expected),
            "{message}\n  expected: {expected}"
        );
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[test]
fn the_summary_shows_alertmanager_credentials_by_source() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    unsafe_set_env("PGHA_TEST_AM_SUMMARY_PASSWORD", "am-s3cret");
    let fixture = Fixture::new(&with_alertmanager(
        "      username: pgha\n      password_env: PGHA_TEST_AM_SUMMARY_PASSWORD\n",
    ));
    let summary = summarize(&fixture.selector(None, None)).unwrap();
    let alertmanager = summary.environments["staging"]["main-db"]
        .alertmanager
        .as_ref()
        .unwrap();
    assert_eq!(alertmanager.url, "http://am.example:9093");
    assert_eq!(alertmanager.username.as_deref(), Some("pgha"));
    assert_eq!(
        alertmanager.password_from.as_deref(),
        Some("env:PGHA_TEST_AM_SUMMARY_PASSWORD")
    );
    assert_eq!(alertmanager.token_from, None);
    assert!(
        !serde_json::to_string(&summary)
            .unwrap()
            .contains("am-s3cret")
    );
}

#[test]
fn a_missing_password_variable_names_the_variable_not_a_value() {
    let fixture =
        Fixture::new(&GOOD.replace("PGHA_TEST_STAGING_PASSWORD", "PGHA_TEST_UNSET_VARIABLE"));
    assert_eq!(
        fixture.error(Some("staging"), None),
        "DIR/pgha.yml: environments.staging.clusters.main-db.rest.password_env: environment variable PGHA_TEST_UNSET_VARIABLE is not set"
    );
}

#[test]
fn password_files_are_relative_to_the_inventory_and_lose_the_newline() {
    let fixture = Fixture::new(&GOOD.replace(
        "password_env: PGHA_TEST_STAGING_PASSWORD",
        "password_file: secrets/rest",
    ));
    std::fs::create_dir(fixture.dir.path().join("secrets")).unwrap();
    std::fs::write(fixture.dir.path().join("secrets/rest"), "from-file\n").unwrap();
    let target = fixture.resolve(Some("staging"), None).unwrap();
    assert_eq!(target.rest.auth.unwrap().password.expose(), "from-file");
    std::fs::remove_file(fixture.dir.path().join("secrets/rest")).unwrap();
    let message = fixture.error(Some("staging"), None);
    assert!(message.starts_with("DIR/pgha.yml: environments.staging.clusters.main-db.rest.password_file: cannot read DIR/secrets/rest"), "{message}");
}

#[test]
fn the_lab_inventory_serves_the_lab_environment_and_the_default() {
    let lab = Fixture::new(
        &GOOD
            .replace("  staging:", "  lab:")
            .replace("  production:", "  other:"),
    );
    let main = Fixture::new(GOOD);
    let selector =
        |config: Option<PathBuf>, search: Vec<PathBuf>, environment: Option<&str>| Selector {
            config,
            search_paths: search,
            lab_inventory: Some(lab.path()),
            environment: environment.map(str::to_string),
            ..Selector::default()
        };
    // The main inventory has no `lab`: the lab's own file answers for it.
    let (path, _) = load_for(&selector(Some(main.path()), vec![], Some("lab"))).unwrap();
    assert_eq!(path, lab.path());
    // No inventory anywhere: the lab's is the default.
    let (path, _) = load_for(&selector(
        None,
        vec![PathBuf::from("/nonexistent/pgha.yml")],
        None,
    ))
    .unwrap();
    assert_eq!(path, lab.path());
    // An inventory exists: it is the default, not the lab.
    let (path, _) = load_for(&selector(None, vec![main.path()], None)).unwrap();
    assert_eq!(path, main.path());
    // Nothing at all.
    let nothing = Selector {
        search_paths: vec![PathBuf::from("/nonexistent/pgha.yml")],
        lab_inventory: Some(PathBuf::from("/nonexistent/lab/pgha.yml")),
        ..Selector::default()
    };
    let message = load_for(&nothing).unwrap_err().to_string();
    assert!(
        message.starts_with(
            "no inventory found (looked for /nonexistent/pgha.yml, /nonexistent/lab/pgha.yml)"
        ),
        "{message}"
    );
}

#[test]
fn patroni_config_mode_reads_restapi_and_ctl_like_patronictl() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patroni.yml");
    std::fs::write(
        &path,
        "scope: demo\nname: node1\nrestapi:\n  listen: 0.0.0.0:8008\n  certfile: /etc/ssl/server.pem\n  \
         authentication:\n    username: api\n    password: api-secret\n  cafile: ca.pem\n\
         ctl:\n  authentication:\n    username: ctl\n    password: ctl-secret\n\
         postgresql:\n  data_dir: /var/lib/postgresql\n",
    )
    .unwrap();
    let selector = Selector::default();
    let seed = patroni_config::load(&path, &selector).unwrap();
    assert_eq!(
        seed.url, "https://127.0.0.1:8008",
        "https because restapi.certfile is set; wildcard → loopback"
    );
    assert_eq!(seed.scope.as_deref(), Some("demo"));
    let auth = seed.rest.auth.unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.expose()),
        ("ctl", "ctl-secret"),
        "ctl wins, as in patronictl"
    );
    assert_eq!(seed.rest.tls.ca_file.unwrap(), dir.path().join("ca.pem"));
}

#[test]
fn patroni_config_without_restapi_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patroni.yml");
    std::fs::write(&path, "scope: demo\n").unwrap();
    let Err(error) = patroni_config::load(&path, &Selector::default()) else {
        panic!("accepted a config without restapi");
    };
    assert!(
        error
            .to_string()
            .ends_with("patroni.yml: restapi: missing: pgha needs the REST API's address")
    );
}

#[test]
fn names_are_checked_for_shell_safety() {
    for bad in [
        "", "a b", "a;b", "$(x)", "`x`", "-rf", ".hidden", "a/b", "a\nb", "ä",
    ] {
        assert!(check_name(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["node1", "patroni-01-db-dr.c.gitlab-dr.internal", "main_db"] {
        assert!(check_name(good).is_ok(), "{good:?} refused");
    }
}

/// What reaches ssh's command line as `-l` and `-J`: the plain alphabets, never a leading `-`.
#[test]
fn ssh_users_and_jump_hosts_are_checked() {
    for good in ["ops", "gitlab-psql", "first.last", "_svc", "u1"] {
        assert!(check_ssh_user(good).is_ok(), "{good:?} refused");
    }
    for bad in [
        "",
        "-oProxyCommand=x",
        "-l",
        "a b",
        "ops;id",
        "$(id)",
        "%r",
        "a@b",
        "ä",
    ] {
        assert!(check_ssh_user(bad).is_err(), "{bad:?} accepted");
    }
    for good in [
        "bastion",
        "bastion.example:2222",
        "ops@bastion.example",
        "ops@10.0.0.9:22",
        "[2001:db8::1]",
        "ops@[2001:db8::1]:2222",
        "jump1,ops@jump2:2200",
    ] {
        assert!(check_jump_host(good).is_ok(), "{good:?} refused");
    }
    for bad in [
        "",
        "-oProxyCommand=x",
        "bastion -oProxyCommand=x",
        "-J",
        "ops@-bastion",
        "-ops@bastion",
        "bastion;id",
        "bastion:22;id",
        "bastion:0",
        "bastion:99999",
        "bastion:ssh",
        "2001:db8::1",
        "[2001:db8::1",
        "[::1]x",
        "jump1,,jump2",
        "ssh://bastion",
        "bastion\nProxyCommand x",
    ] {
        assert!(check_jump_host(bad).is_err(), "{bad:?} accepted");
    }
    let error = check_jump_host("ops@bastion:22;id").unwrap_err();
    assert_eq!(
        error,
        "\"ops@bastion:22;id\" is not [user@]host[:port]: \"22;id\" is not a port"
    );
}

/// A valid `ssh:` section, per environment or per cluster, resolves as written.
#[test]
fn a_cluster_ssh_section_with_a_jump_host_resolves() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let text = GOOD.replace(
        "        scope: pg-main\n",
        "        scope: pg-main\n        ssh:\n          user: gitlab-psql\n          jump_host: ops@bastion.example:2222\n",
    );
    let target = Fixture::new(&text).resolve(Some("staging"), None).unwrap();
    let ssh = target.ssh.as_ref().unwrap();
    assert_eq!(ssh.user.as_deref(), Some("gitlab-psql"));
    assert_eq!(ssh.jump_host.as_deref(), Some("ops@bastion.example:2222"));
    assert_eq!(target.members_from, MemberSource::Inventory);
    assert_eq!(target.remote_host("db2"), Ok("10.0.0.2"));
}

/// In `--api` mode the members and their hosts are whatever `/cluster` says (here a host ssh
/// would read as an option): fine for showing and for REST, never a place to run commands.
#[tokio::test]
async fn discovered_members_are_never_where_commands_run() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(path("/cluster"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "scope": "demo",
            "members": [{"name": "node1", "role": "leader", "state": "running",
                         "host": "-oProxyCommand=id", "api_url": format!("{}/patroni", server.uri())}]
        })))
        .mount(&server)
        .await;
    let selector = Selector {
        api: Some(server.uri()),
        ..Selector::default()
    };
    let target = resolve(&selector).await.unwrap();
    assert_eq!(target.members[0].host, "-oProxyCommand=id");
    assert_eq!(target.members_from, MemberSource::Discovered);
    let error = target.remote_host("node1").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "node1: the members of cluster demo come from the DCS (--api {}): pgha runs commands only on hosts an inventory names; select the cluster from an inventory (--config, --env) that lists node1",
            server.uri()
        )
    );
}

#[test]
fn summaries_name_secret_sources_not_values() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let fixture = Fixture::new(GOOD);
    let summary = summarize(&fixture.selector(None, None)).unwrap();
    let text = serde_json::to_string(&summary).unwrap();
    assert!(text.contains("env:PGHA_TEST_STAGING_PASSWORD"));
    assert!(!text.contains("s3cret"));
}

/// Tests in this module set only variables no other test reads.
fn unsafe_set_env(key: &str, value: &str) {
    // Edition 2024 marks set_var unsafe because another thread may read the environment; these
    // variable names are private to this module's tests.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(key, value);
    }
}

/// An environment for one test, instead of the process's.
fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_string(), (*value).to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

/// GOOD's staging cluster with `dcs` as its own `dcs:` section (indented under the cluster).
fn with_cluster_dcs(dcs: &str) -> String {
    GOOD.replace(
        "        scope: pg-main\n",
        &format!("        scope: pg-main\n        dcs:\n{dcs}"),
    )
}

impl Fixture {
    /// The staging cluster, resolved with `env` as the environment the DCS settings read.
    fn resolve_with(&self, env: &[(&str, &str)]) -> Result<ClusterTarget, InventoryError> {
        let selector = self.selector(Some("staging"), None);
        let (path, inventory) = load_for(&selector)?;
        select_cluster(&path, inventory, &selector, &env_of(env))
    }

    fn error_with(&self, env: &[(&str, &str)]) -> String {
        let error = self.resolve_with(env).unwrap_err();
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        let message = error.to_string();
        assert!(!message.contains('\n'), "one line: {message}");
        message.replace(&self.dir.path().display().to_string(), "DIR")
    }
}

#[test]
fn an_etcd_dcs_section_gives_endpoints_namespace_and_credentials() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let fixture = Fixture::new(&with_cluster_dcs(
        "          kind: etcd\n          hosts: [10.0.0.7:2379, etcd2.example, \"https://etcd3.example:2379/\"]\n          namespace: /db/\n          username: pgha\n          password_env: PROD_ETCD_PASSWORD\n",
    ));
    let target = fixture
        .resolve_with(&[("PROD_ETCD_PASSWORD", "etcd-s3cret")])
        .unwrap();
    let etcd = target.etcd.as_ref().unwrap();
    assert_eq!(
        etcd.endpoints,
        [
            "http://10.0.0.7:2379",
            "http://etcd2.example:2379",
            "https://etcd3.example:2379"
        ],
        "etcd's port for a host without one; URLs as written"
    );
    assert_eq!(etcd.namespace, "/db", "no trailing slash");
    assert_eq!(etcd.cluster_prefix("pg-main"), "/db/pg-main/");
    assert_eq!(etcd.username.as_deref(), Some("pgha"));
    assert_eq!(etcd.password.as_ref().unwrap().expose(), "etcd-s3cret");
    assert!(etcd.tls.verify, "verification is on unless said otherwise");
    assert_eq!(etcd.connect_timeout, Duration::from_secs(1), "the REST's");
    assert_eq!(etcd.request_timeout, Duration::from_secs(3), "the REST's");
    assert!(target.consul.is_none());
    assert!(!format!("{target:?}").contains("etcd-s3cret"));
    let dcs = target.dcs.as_ref().unwrap();
    assert_eq!(dcs.username.as_deref(), Some("pgha"));
    assert_eq!(dcs.password_from.as_deref(), Some("env:PROD_ETCD_PASSWORD"));
}

#[test]
fn an_etcd_password_file_scheme_and_tls_resolve_relative_to_the_inventory() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let fixture = Fixture::new(&with_cluster_dcs(
        "          kind: etcd\n          hosts: [10.0.0.7:2379]\n          username: pgha\n          password_file: secrets/etcd\n          tls: {ca_file: etcd-ca.pem, cert_file: c.pem, key_file: c.key}\n",
    ));
    std::fs::create_dir(fixture.dir.path().join("secrets")).unwrap();
    std::fs::write(fixture.dir.path().join("secrets/etcd"), "from file\n").unwrap();
    let target = fixture.resolve_with(&[]).unwrap();
    let etcd = target.etcd.unwrap();
    assert_eq!(
        etcd.endpoints,
        ["https://10.0.0.7:2379"],
        "https when `tls` is set"
    );
    assert_eq!(etcd.namespace, "/service", "Patroni's default");
    assert_eq!(etcd.password.unwrap().expose(), "from file");
    assert_eq!(
        etcd.tls.ca_file.unwrap(),
        fixture.dir.path().join("etcd-ca.pem")
    );
    assert_eq!(
        etcd.tls.client_key.unwrap(),
        fixture.dir.path().join("c.key")
    );

    let explicit = Fixture::new(&with_cluster_dcs(
        "          kind: etcd\n          hosts: [10.0.0.7:2379]\n          scheme: http\n          tls: {ca_file: etcd-ca.pem}\n",
    ));
    let etcd = explicit.resolve_with(&[]).unwrap().etcd.unwrap();
    assert_eq!(etcd.endpoints, ["http://10.0.0.7:2379"], "the scheme wins");
    assert!(etcd.username.is_none() && etcd.password.is_none());

    std::fs::remove_file(fixture.dir.path().join("secrets/etcd")).unwrap();
    let message = fixture.error_with(&[]);
    assert!(
        message.starts_with("DIR/pgha.yml: environments.staging.clusters.main-db.dcs.password_file: cannot read DIR/secrets/etcd"),
        "{message}"
    );
}

#[test]
fn a_bad_etcd_dcs_section_names_the_field() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let field = "DIR/pgha.yml: environments.staging.clusters.main-db.dcs";
    let cases = [
        (
            "          kind: etcd\n          hosts: [e1:2379]\n          namespace: service\n",
            format!(
                "{field}.namespace: \"service\" must start with '/', as Patroni's keys in etcd do (/service)"
            ),
        ),
        (
            "          kind: etcd\n",
            format!(
                "{field}.hosts: kind etcd needs at least one endpoint (host:port or an http(s):// URL)"
            ),
        ),
        (
            "          kind: etcd\n          hosts: [e1:2379]\n          username: pgha\n          password_env: A\n          password_file: b\n",
            format!("{field}: password_env and password_file are both set: keep one"),
        ),
        (
            "          kind: etcd\n          hosts: [e1:2379]\n          username: pgha\n",
            format!("{field}: username is set but no password_env or password_file"),
        ),
        (
            "          kind: etcd\n          hosts: [e1:2379]\n          password_env: A\n",
            format!("{field}: a password source is set but no username"),
        ),
        (
            "          kind: etcd\n          hosts: [e1:2379]\n          username: pgha\n          password_env: PGHA_TEST_UNSET_ETCD\n",
            format!("{field}.password_env: environment variable PGHA_TEST_UNSET_ETCD is not set"),
        ),
        (
            "          kind: etcd\n          hosts: [e1:2379]\n          token_env: CONSUL_HTTP_TOKEN\n",
            format!(
                "{field}.token_env: `token_env` is for kind consul only; etcd takes username with password_env or password_file"
            ),
        ),
        (
            "          kind: etcd\n          hosts: [e1:2379]\n          service: pg\n",
            format!("{field}.service: `service` is for kind consul only"),
        ),
        (
            "          kind: consul\n          username: pgha\n          password_env: A\n",
            format!(
                "{field}.username: `username` is for kind etcd only; Consul takes an ACL token in token_env or token_file"
            ),
        ),
        (
            "          kind: consul\n          password_file: b\n",
            format!("{field}.password_file: `password_file` is for kind etcd only"),
        ),
        (
            "          kind: etcd\n          hosts: [\"unix:///run/etcd.sock\"]\n",
            format!(
                "{field}.hosts: \"unix:///run/etcd.sock\": pgha talks to etcd over http:// or https:// (not unix sockets)"
            ),
        ),
        (
            "          kind: etcd\n          hosts: [\"root:s3cret@e1:2379\"]\n",
            format!(
                "{field}.hosts[0]: \"***@e1:2379\": no credentials in URLs (pgha shows URLs in plans, journals and messages); etcd's credentials belong in dcs.username with dcs.password_env or dcs.password_file"
            ),
        ),
    ];
    for (dcs, expected) in cases {
        let message = Fixture::new(&with_cluster_dcs(dcs)).error_with(&[("A", "s3cret")]);
        assert!(
            message.starts_with(&expected),
            "{message}\n  expected: {expected}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }
}

/// The environment's `dcs:` is taken when the cluster has none; the cluster's replaces it.
#[test]
fn a_cluster_dcs_section_overrides_the_environments() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let environment_dcs = GOOD.replace(
        "    timeouts:\n      connect: 1s",
        "    dcs: {kind: etcd, hosts: [env-etcd:2379], namespace: /env}\n    timeouts:\n      connect: 1s",
    );
    let etcd = Fixture::new(&environment_dcs)
        .resolve_with(&[])
        .unwrap()
        .etcd
        .unwrap();
    assert_eq!(etcd.endpoints, ["http://env-etcd:2379"]);
    assert_eq!(etcd.namespace, "/env");
    let both = environment_dcs.replace(
        "        scope: pg-main\n",
        "        scope: pg-main\n        dcs: {kind: etcd, hosts: [cluster-etcd:2379]}\n",
    );
    let etcd = Fixture::new(&both).resolve_with(&[]).unwrap().etcd.unwrap();
    assert_eq!(etcd.endpoints, ["http://cluster-etcd:2379"]);
    assert_eq!(
        etcd.namespace, "/service",
        "the whole section is the cluster's"
    );
}

/// `ETCDCTL_*` describe whichever etcd etcdctl points at: used only when the inventory names no
/// DCS, never over its `dcs:` section, never when it names Consul.
#[test]
fn the_etcdctl_variables_serve_only_an_inventory_without_a_dcs() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    let env = [
        ("ETCDCTL_ENDPOINTS", "http://10.9.9.9:2379,10.9.9.10:2379"),
        ("ETCDCTL_USER", "root:env-s3cret"),
        ("ETCDCTL_CACERT", "/etc/etcd/ca.pem"),
    ];
    let etcd = Fixture::new(GOOD).resolve_with(&env).unwrap().etcd.unwrap();
    assert_eq!(
        etcd.endpoints,
        ["http://10.9.9.9:2379", "https://10.9.9.10:2379"]
    );
    assert_eq!(etcd.username.as_deref(), Some("root"));
    assert_eq!(etcd.password.unwrap().expose(), "env-s3cret");
    assert!(
        Fixture::new(GOOD).resolve_with(&[]).unwrap().etcd.is_none(),
        "no ETCDCTL_ENDPOINTS, no etcd"
    );

    let inventory = Fixture::new(&with_cluster_dcs(
        "          kind: etcd\n          hosts: [10.0.0.7:2379]\n",
    ));
    let etcd = inventory.resolve_with(&env).unwrap().etcd.unwrap();
    assert_eq!(
        etcd.endpoints,
        ["http://10.0.0.7:2379"],
        "the inventory wins"
    );
    assert!(
        etcd.username.is_none() && etcd.password.is_none() && etcd.tls.ca_file.is_none(),
        "and is the whole truth: ETCDCTL_* credentials never go to its hosts"
    );

    let consul = Fixture::new(&with_cluster_dcs(
        "          kind: consul\n          hosts: [127.0.0.1:8500]\n",
    ));
    let target = consul.resolve_with(&env).unwrap();
    assert!(target.etcd.is_none(), "the DCS is Consul");
    assert!(target.consul.is_some());
}

#[test]
fn the_summary_shows_the_etcd_user_and_password_source_never_the_password() {
    unsafe_set_env("PGHA_TEST_STAGING_PASSWORD", "s3cret");
    unsafe_set_env("PGHA_TEST_ETCD_SUMMARY_PASSWORD", "etcd-s3cret");
    let fixture = Fixture::new(&with_cluster_dcs(
        "          kind: etcd\n          hosts: [10.0.0.7:2379]\n          username: pgha\n          password_env: PGHA_TEST_ETCD_SUMMARY_PASSWORD\n",
    ));
    let summary = summarize(&fixture.selector(None, None)).unwrap();
    let dcs = summary.environments["staging"]["main-db"]
        .dcs
        .as_ref()
        .unwrap();
    assert_eq!(dcs.kind, DcsKind::Etcd);
    assert_eq!(dcs.hosts, ["10.0.0.7:2379"]);
    assert_eq!(dcs.username.as_deref(), Some("pgha"));
    assert_eq!(
        dcs.password_from.as_deref(),
        Some("env:PGHA_TEST_ETCD_SUMMARY_PASSWORD")
    );
    let text = serde_json::to_string(&summary).unwrap();
    assert!(
        text.contains("env:PGHA_TEST_ETCD_SUMMARY_PASSWORD"),
        "{text}"
    );
    assert!(!text.contains("etcd-s3cret"), "{text}");

    let fixture = Fixture::new(&with_cluster_dcs(
        "          kind: etcd\n          hosts: [10.0.0.7:2379]\n          username: pgha\n          password_file: secrets/etcd\n",
    ));
    let summary = summarize(&fixture.selector(None, None)).unwrap();
    let dcs = summary.environments["staging"]["main-db"]
        .dcs
        .as_ref()
        .unwrap();
    assert_eq!(
        dcs.password_from,
        Some(format!(
            "file:{}",
            fixture.dir.path().join("secrets/etcd").display()
        ))
    );
}

/// A `patroni.yml` in a temporary directory, loaded with `env` as the environment.
fn load_patroni(
    text: &str,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Result<Seed, InventoryError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patroni.yml");
    std::fs::write(
        &path,
        format!("scope: demo\nrestapi:\n  connect_address: 10.0.0.1:8008\n{text}"),
    )
    .unwrap();
    let seed = patroni_config::load_with(&path, &Selector::default(), &env_of(env));
    (dir, seed)
}

#[test]
fn patroni_config_mode_reads_the_etcd3_section() {
    let (_dir, seed) = load_patroni("etcd3:\n  host: 10.0.0.7:2379\n", &[]);
    let etcd = seed.unwrap().etcd.unwrap();
    assert_eq!(etcd.endpoints, ["http://10.0.0.7:2379"]);
    assert_eq!(etcd.namespace, "/service");
    assert!(etcd.username.is_none() && etcd.password.is_none());
    assert!(etcd.tls.verify);
    assert_eq!(
        etcd.connect_timeout,
        RestSettings::default().connect_timeout
    );

    let (_dir, seed) = load_patroni(
        "etcd3:\n  hosts:\n  - 10.0.0.7:2379\n  - 10.0.0.8\n  port: 2381\n",
        &[],
    );
    assert_eq!(
        seed.unwrap().etcd.unwrap().endpoints,
        ["http://10.0.0.7:2379", "http://10.0.0.8:2381"],
        "a list; `port` for entries without one"
    );

    let (dir, seed) = load_patroni(
        "namespace: /db/\netcd3:\n  hosts: 10.0.0.7:2379, 10.0.0.8:2379\n  protocol: https\n  \
         username: patroni\n  password: etcd-s3cret\n  cacert: tls/ca.pem\n  cert: /etc/tls/c.pem\n  key: tls/c.key\n",
        &[("ETCDCTL_ENDPOINTS", "http://elsewhere:2379")],
    );
    let seed = seed.unwrap();
    let etcd = seed.etcd.as_ref().unwrap();
    assert_eq!(
        etcd.endpoints,
        ["https://10.0.0.7:2379", "https://10.0.0.8:2379"],
        "a comma-separated string; the file wins over ETCDCTL_ENDPOINTS"
    );
    assert_eq!(etcd.namespace, "/db");
    assert_eq!(etcd.username.as_deref(), Some("patroni"));
    assert_eq!(etcd.password.as_ref().unwrap().expose(), "etcd-s3cret");
    assert_eq!(
        etcd.tls.ca_file.as_deref(),
        Some(dir.path().join("tls/ca.pem").as_path())
    );
    assert_eq!(
        etcd.tls.client_cert.as_deref(),
        Some(Path::new("/etc/tls/c.pem"))
    );
    assert_eq!(
        etcd.tls.client_key.as_deref(),
        Some(dir.path().join("tls/c.key").as_path())
    );
    assert!(seed.consul.is_none());

    let (_dir, seed) = load_patroni(
        "namespace: service\netcd3:\n  url: https://etcd.example:2379\n  hosts: ignored:1\n",
        &[],
    );
    let etcd = seed.unwrap().etcd.unwrap();
    assert_eq!(
        etcd.endpoints,
        ["https://etcd.example:2379"],
        "url before hosts"
    );
    assert_eq!(etcd.namespace, "/service", "Patroni adds the leading slash");
    // `etcd:` is etcd's v2 API, whose keys v3 does not see: not read, even with ETCDCTL_*.
    let (_dir, seed) = load_patroni(
        "etcd:\n  proxy: http://proxy.example:2379\n  url: http://etcd.example:2379\n",
        &[("ETCDCTL_ENDPOINTS", "10.9.9.9:2379")],
    );
    assert!(seed.unwrap().etcd.is_none());
}

#[test]
fn patroni_config_mode_takes_etcdctl_variables_only_without_a_dcs_section() {
    let env = [("ETCDCTL_ENDPOINTS", "10.9.9.9:2379")];
    let (_dir, seed) = load_patroni("", &env);
    assert_eq!(
        seed.unwrap().etcd.unwrap().endpoints,
        ["http://10.9.9.9:2379"]
    );
    let (_dir, seed) = load_patroni("consul:\n  host: 127.0.0.1:8500\n", &env);
    let seed = seed.unwrap();
    assert!(seed.etcd.is_none(), "the file says Consul");
    assert!(seed.consul.is_some());
}

#[test]
fn patroni_config_mode_refuses_a_bad_etcd3_section_naming_the_field() {
    let cases = [
        (
            "etcd3:\n  host: patroni:s3cret@10.0.0.7:2379\n",
            "patroni.yml: etcd3.host: \"http://***@10.0.0.7:2379\": no credentials in URLs (pgha shows URLs in plans, journals and messages); etcd's credentials belong in etcd3.username and etcd3.password",
        ),
        (
            "etcd3:\n  hosts: [a:2379, \"root:s3cret@b:2379\"]\n",
            "patroni.yml: etcd3.hosts: \"http://***@b:2379\"",
        ),
        (
            "etcd3:\n  host: a:2379\n  protocol: grpc\n",
            "patroni.yml: etcd3.protocol: \"grpc\" is not http or https",
        ),
        (
            "etcd3:\n  srv: etcd.example\n",
            "patroni.yml: etcd3.srv: pgha does not look up DNS SRV records: name the endpoints in host, hosts or url",
        ),
        (
            "etcd3:\n  protocol: https\n",
            "patroni.yml: etcd3: names no host, hosts, url or proxy",
        ),
        (
            "etcd3:\n  host: a:2379\n  password: s3cret\n",
            "patroni.yml: etcd3.username: missing: a password is set but no username",
        ),
    ];
    for (text, expected) in cases {
        let (_dir, seed) = load_patroni(text, &[]);
        let Err(error) = seed else {
            panic!("accepted {text}");
        };
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        let message = error.to_string();
        assert!(
            message.contains(expected),
            "{message}\n  expected: {expected}"
        );
        assert!(!message.contains("s3cret"), "{message}");
    }
}

/// `backup:` (environment or cluster, the cluster's winning): the tool, its stanza and
/// configuration, the newest backup's greatest age, refuse or warn; each mistake named by field.
#[test]
fn backup_requirements_resolve_and_mistakes_name_their_field() {
    // SAFETY of the test: the variable name is unique to this test.
    unsafe_set_env("PGHA_TEST_BACKUP_PASSWORD", "s3cret");
    let good = GOOD.replace("PGHA_TEST_STAGING_PASSWORD", "PGHA_TEST_BACKUP_PASSWORD");
    let with =
        |section: &str| good.replace("    timeouts:\n", &format!("{section}    timeouts:\n"));
    let text =
        with("    backup:\n      tool: pgbackrest\n      stanza: main\n      max_age: 26h\n");
    let target = Fixture::new(&text).resolve(Some("staging"), None).unwrap();
    assert_eq!(
        target.backup,
        Some(BackupPolicy {
            tool: BackupTool::Pgbackrest {
                stanza: "main".into(),
                config: None,
            },
            max_age: Duration::from_hours(26),
            refuse_when_older: true,
        })
    );
    let text = good.replace(
        "        scope: pg-main\n",
        "        scope: pg-main\n        backup:\n          tool: wal-g\n          config: /etc/wal-g.json\n          max_age: 2h\n          when_older: warn\n",
    );
    let target = Fixture::new(&text).resolve(Some("staging"), None).unwrap();
    assert_eq!(
        target
            .backup
            .map(|policy| (policy.tool, policy.refuse_when_older)),
        Some((
            BackupTool::WalG {
                config: Some("/etc/wal-g.json".into())
            },
            false
        ))
    );
    // Seed 001's WAL-E, its environment in an envdir directory.
    let text = with(
        "    backup:\n      tool: wal-e\n      config: /etc/wal-e.d/env\n      max_age: 24h\n",
    );
    let target = Fixture::new(&text).resolve(Some("staging"), None).unwrap();
    assert_eq!(
        target.backup.map(|policy| policy.tool),
        Some(BackupTool::WalE {
            envdir: Some("/etc/wal-e.d/env".into())
        })
    );
    let mistakes = [
        (
            "    backup:\n      tool: wal-e\n      stanza: main\n      max_age: 1h\n",
            "environments.staging.backup: `stanza` does not apply to wal-e",
        ),
        (
            "    backup:\n      tool: pgbackrest\n      max_age: 26h\n",
            "environments.staging.backup: pgbackrest needs `stanza`",
        ),
        (
            "    backup:\n      tool: wal-g\n      stanza: main\n      max_age: 1h\n",
            "environments.staging.backup: `stanza` does not apply to wal-g",
        ),
        (
            "    backup:\n      tool: pgbackrest\n      stanza: \"main;id\"\n      max_age: 1h\n",
            "environments.staging.backup:",
        ),
        (
            "    backup:\n      tool: pgbackrest\n      stanza: main\n      max_age: soon\n",
            "pgha.yml:9:16: \"soon\" is not a duration",
        ),
        (
            "    backup:\n      tool: barman\n      stanza: main\n      max_age: 1h\n",
            "barman",
        ),
    ];
    for (section, says) in mistakes {
        let error = Fixture::new(&with(section)).error(Some("staging"), None);
        assert!(error.contains(says), "{section}: {error}");
    }
}

#[test]
fn a_standby_cluster_follows_another_cluster_of_its_environment() {
    let with_geo = |geo: &str| {
        let fixture = Fixture::new(&GOOD.replace("      geo:\n", &format!("      geo:\n{geo}")));
        std::fs::create_dir_all(fixture.dir.path().join("secrets")).unwrap();
        std::fs::write(fixture.dir.path().join("secrets/consul-token"), "t\n").unwrap();
        fixture
    };
    let fixture = with_geo("        standby: true\n        follows: main-db\n");
    let geo = fixture.resolve(Some("production"), Some("geo")).unwrap();
    assert_eq!(
        geo.follows,
        Some(FollowedCluster {
            cluster: "main-db".into(),
            hosts: vec!["10.1.0.1".into()]
        })
    );
    assert_eq!(
        with_geo("        follows: main-db\n").error(Some("production"), Some("geo")),
        "DIR/pgha.yml: environments.production.clusters.geo.follows: only a standby cluster (`standby: true`) follows another"
    );
    assert_eq!(
        with_geo("        standby: true\n        follows: mian-db\n")
            .error(Some("production"), Some("geo")),
        "DIR/pgha.yml: environments.production.clusters.geo.follows: no cluster \"mian-db\" in this environment (known: geo, main-db)"
    );
    assert_eq!(
        with_geo("        standby: true\n        follows: geo\n")
            .error(Some("production"), Some("geo")),
        "DIR/pgha.yml: environments.production.clusters.geo.follows: geo is a standby cluster itself"
    );
}

/// Any text, and the good inventory with one line replaced by anything YAML-shaped: loaded or
/// refused with an error, never a panic.
mod fuzz {
    use proptest::prelude::*;

    use super::*;
    use crate::fuzzing::CASES;

    fn load(text: &str) {
        let path = Path::new("pgha.yml");
        if let Ok(inventory) = parse_yaml::<InventoryFile>(path, text) {
            let _ = validate(path, &inventory);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn any_inventory_text_loads_or_is_refused(
            text in ".{0,200}",
            line in any::<proptest::sample::Index>(),
            replacement in "[ a-z_:{}\\[\\],'\"&*!|>#0-9.-]{0,40}",
        ) {
            load(&text);
            let mut lines: Vec<&str> = GOOD.lines().collect();
            let at = line.index(lines.len());
            lines[at] = &replacement;
            load(&lines.join("\n"));
        }
    }
}

#[test]
fn the_fingerprint_follows_settings_not_secrets_or_where_the_file_lives() {
    let with_password = |password: &str, text: &str| {
        let fixture = Fixture::new(&text.replace(
            "password_env: PGHA_TEST_STAGING_PASSWORD",
            "password_file: secrets/rest",
        ));
        std::fs::create_dir(fixture.dir.path().join("secrets")).unwrap();
        std::fs::write(fixture.dir.path().join("secrets/rest"), password).unwrap();
        let target = fixture.resolve(Some("staging"), None).unwrap();
        assert!(!format!("{target:?}").contains(password));
        target.fingerprint()
    };
    // Another directory and a rotated password: the same settings.
    let first = with_password("first-s3cret", GOOD);
    assert_eq!(first, with_password("second-s3cret", GOOD));
    assert_eq!(first.len(), 64);
    // A member's host: another cluster as far as a plan is concerned.
    assert_ne!(
        first,
        with_password("first-s3cret", &GOOD.replace("10.0.0.2", "10.0.0.3"))
    );
}
