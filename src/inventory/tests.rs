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
        "DIR/pgha.yml: environment \"production\" has several clusters (geo, main-db): choose one with --cluster"
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
