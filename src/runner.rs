//! Running a runbook end to end: observe, plan, then either render the plan with its
//! pre-checks (`--dry-run`, which only ever holds a read-only `Observer`) or take the cluster's
//! locks, open a journal and execute. A new run and a resumed one (`runs`) share the one path
//! that holds the locks, records the events, executes and says how it ended. The terminal shows
//! the plan and the progress on stderr; stdout is data.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::watch;

use crate::cluster::Connection;
use crate::consul::ConsulLock;
use crate::dcs::LockHolder;
use crate::error::Error;
use crate::etcd::EtcdLock;
use crate::exec::{
    self, Event, EventSink, Executor, Finish, GatePolicy, LiveCluster, Observer, Outcome,
    ResumePoint, Sinks, TerminalPrompt,
};
use crate::exit::Exit;
use crate::inventory::{ClusterTarget, Selector};
use crate::journal::{self, ClusterIdentity, ClusterLock, Journal, RunStore};
use crate::observe::ClusterView;
use crate::patroni::dynamic_config::{ConfigRead, ConfigSource};
use crate::plan::render::{self, CheckedPrecheck};
use crate::plan::{Action, Plan};
use crate::report::terminal::TerminalSink;
use crate::runbooks::{self, Params};

/// How the plan is printed by `--dry-run` and `runs show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanFormat {
    #[default]
    Text,
    Markdown,
    Json,
}

/// The options every runbook command shares.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub dry_run: bool,
    pub format: PlanFormat,
    pub assume_yes: bool,
    /// Names of destructive steps confirmed ahead (`--confirm NAME`, repeatable).
    pub confirm: Vec<String>,
    /// By-hand steps done outside pgha (`--done NAME`).
    pub done: Vec<String>,
}

pub fn render(plan: &Plan, checked: Option<&[CheckedPrecheck]>, format: PlanFormat) -> String {
    match format {
        PlanFormat::Text => render::text(plan, checked),
        PlanFormat::Markdown => render::markdown(plan, checked),
        PlanFormat::Json => render::json(plan, checked),
    }
}

/// A dry-run: the plan, its checked pre-conditions and, where earlier runs teach it, how long
/// it should take.
fn render_dry_run(
    plan: &Plan,
    checked: &[CheckedPrecheck],
    estimate: Option<&crate::plan::estimate::Estimate>,
    format: PlanFormat,
) -> String {
    let mut out = match format {
        PlanFormat::Json => return render::json_estimated(plan, Some(checked), estimate),
        _ => render(plan, Some(checked), format),
    };
    match (estimate, format) {
        (Some(estimate), PlanFormat::Markdown) => {
            out.push_str(&render::estimate_markdown(estimate));
        }
        (Some(estimate), _) => out.push_str(&render::estimate_text(estimate)),
        (None, _) => {}
    }
    out
}

/// What runbooks may measure before planning, read from the live cluster.
impl runbooks::Probe for LiveCluster {
    async fn database_size(&self, host: &str) -> Option<Result<u64, crate::postgres::SqlError>> {
        Some(self.sql.as_ref()?.database_size(host).await)
    }

    async fn oldest_transaction(
        &self,
        host: &str,
    ) -> Option<Result<Option<std::time::Duration>, crate::postgres::SqlError>> {
        Some(self.sql.as_ref()?.oldest_transaction(host).await)
    }

    async fn primary_position(
        &self,
        host: &str,
    ) -> Option<Result<Option<crate::patroni::Lsn>, crate::postgres::SqlError>> {
        Some(self.sql.as_ref()?.primary_position(host).await)
    }

    /// From the DCS where pgha knows it (what a compare-and-set needs: the key's revision),
    /// else from the leader's (or the first answering member's) `GET /config`.
    async fn dynamic_config(&self, view: &ClusterView) -> Result<ConfigRead, String> {
        let decode = |key: &str, bytes: &[u8]| {
            serde_json::from_slice(bytes)
                .map_err(|error| format!("{key} does not hold JSON: {error}"))
        };
        let absent = |key: &str| {
            format!(
                "{key} is absent: the cluster has no dynamic configuration (is it bootstrapped?)"
            )
        };
        if let Some(etcd) = &self.etcd {
            let key = format!("{}config", etcd.cluster_prefix(&self.target.scope));
            let found = etcd.get(&key).await.map_err(|error| error.to_string())?;
            let found = found.ok_or_else(|| absent(&key))?;
            return Ok(ConfigRead {
                config: decode(&key, &found.value)?,
                from: ConfigSource::Etcd {
                    endpoint: etcd.endpoint().to_string(),
                    key,
                    mod_revision: found.mod_revision,
                },
            });
        }
        if let (Some(consul), Some(settings)) = (&self.consul, &self.target.consul) {
            let key = format!("{}config", settings.cluster_prefix(&self.target.scope));
            let found = consul.get(&key).await.map_err(|error| error.to_string())?;
            let found = found.ok_or_else(|| absent(&key))?;
            return Ok(ConfigRead {
                config: decode(&key, found.value.as_deref().unwrap_or_default())?,
                from: ConfigSource::Consul {
                    address: consul.address().to_string(),
                    key,
                    index: found.modify_index,
                },
            });
        }
        let mut answering: Vec<&crate::observe::MemberView> = view
            .members
            .iter()
            .filter(|member| member.is_reachable())
            .collect();
        answering.sort_by_key(|member| Some(member.name.as_str()) != view.leader.as_deref());
        let member = answering
            .first()
            .ok_or_else(|| "no member's REST API answers".to_string())?;
        let config = self
            .client
            .config(&member.api_url)
            .await
            .map_err(|error| error.to_string())?;
        Ok(ConfigRead {
            config,
            from: ConfigSource::Rest {
                member: member.name.clone(),
            },
        })
    }
}

/// A plan, its checked pre-conditions, and what the cluster is (for the run lock).
pub struct Prepared {
    pub plan: Plan,
    pub checked: Vec<CheckedPrecheck>,
    pub identity: ClusterIdentity,
}

/// Observes, plans and checks the plan's pre-conditions. Read-only by construction: it is
/// given an `Observer`, which cannot change the cluster. A dry-run is exactly this.
pub async fn prepare<O: Observer>(
    observer: &O,
    target: &ClusterTarget,
    params: &Params,
) -> Result<Prepared, Error> {
    let view = observer.observe().await?;
    prepare_from(observer, view, target, params).await
}

/// `prepare` for a view already observed.
pub(crate) async fn prepare_from<O: Observer>(
    observer: &O,
    view: ClusterView,
    target: &ClusterTarget,
    params: &Params,
) -> Result<Prepared, Error> {
    let plan = runbooks::plan(target, &view, params)?;
    let mut checked = exec::evaluate(&plan.prechecks, &view);
    checked.extend(observer.access(&plan, &view).await);
    Ok(Prepared {
        plan,
        checked,
        identity: identity_of(&view),
    })
}

fn identity_of(view: &ClusterView) -> ClusterIdentity {
    ClusterIdentity {
        scope: view.scope.clone(),
        system_identifier: view.system_identifier.clone(),
    }
}

/// `pgha <runbook> …`: a dry-run, or a new run.
pub async fn run(selector: &Selector, params: Params, options: RunOptions) -> Result<Exit, Error> {
    let world = Connection::open(selector).await?.into_live()?;
    let params = params.with_default_timeout(&world.target.runbook_timeouts);
    // One observation serves the measure (read only) and the plan.
    let view = world.observe().await?;
    let params = params.measured(&world.target, &view, &world).await?;
    let Prepared {
        plan,
        checked,
        identity,
    } = prepare_from(&world, view, &world.target, &params).await?;
    refuse_sql_without_access(&world, &plan)?;
    let all_passed = checked.iter().all(|check| check.verdict.passed);
    if options.dry_run {
        let estimate = crate::plan::estimate::from_journals(&plan, &journal::default_dir());
        crate::ui::print_stdout(&render_dry_run(
            &plan,
            &checked,
            estimate.as_ref(),
            options.format,
        ))?;
        return Ok(if all_passed {
            Exit::Success
        } else {
            Exit::PrecheckRefused
        });
    }
    let policy = gate_policy(&options);
    if let Some(reason) = policy.refusal(&plan) {
        return Err(Error::BadInput(reason));
    }
    let store = RunStore::new(journal::default_dir());
    let run_id = RunStore::new_run_id(&plan.runbook);
    // The locks before anything is shown: a refused second run prints one line.
    let held = Held::take(&store, &world, &identity, &plan, &run_id, &policy.operator).await?;
    eprint!("{}", render::text(&plan, None));
    let journal = store.create(&run_id)?;
    let fingerprint = world.target.fingerprint();
    let mut opening = vec![started_event(
        &plan,
        &run_id,
        &policy,
        &identity,
        fingerprint,
    )];
    let (prechecks, refused) = precheck_events(&checked);
    opening.extend(prechecks);
    let execution = Execution {
        world: &world,
        plan: &plan,
        point: ResumePoint::default(),
        policy,
        run_id: &run_id,
    };
    Ok(execution.record(held, journal, opening, refused).await)
}

/// The pre-checks as journal events, and the refusal when one failed.
pub(crate) fn precheck_events(checked: &[CheckedPrecheck]) -> (Vec<Event>, Option<Finish>) {
    let events = checked
        .iter()
        .map(|check| Event::Precheck {
            text: check.text.clone(),
            passed: check.verdict.passed,
            observed: check.verdict.observed.clone(),
        })
        .collect();
    let refused = checked
        .iter()
        .any(|check| !check.verdict.passed)
        .then(|| Finish {
            outcome: Outcome::Refused,
            detail: "a pre-check failed: nothing was changed".into(),
        });
    (events, refused)
}

fn refuse_sql_without_access(world: &LiveCluster, plan: &Plan) -> Result<(), Error> {
    let runs_sql = plan
        .steps
        .iter()
        .any(|step| matches!(step.action, Action::Sql(_)));
    if runs_sql && world.sql.is_none() {
        return Err(Error::BadInput(format!(
            "{}: this plan runs SQL on the leader; add a `postgres:` section (user, password_env or password_file) to environment {}",
            world.target.origin, world.target.environment
        )));
    }
    Ok(())
}

fn started_event(
    plan: &Plan,
    run_id: &str,
    policy: &GatePolicy,
    identity: &ClusterIdentity,
    inventory_fingerprint: String,
) -> Event {
    Event::RunStarted {
        run_id: run_id.into(),
        runbook: plan.runbook.clone(),
        environment: plan.environment.clone(),
        cluster: plan.cluster.clone(),
        plan: Box::new(plan.clone()),
        plan_hash: plan.hash(),
        operator: policy.operator.clone(),
        host: journal::hostname(),
        pid: std::process::id(),
        pgha_version: journal::PGHA_VERSION.into(),
        journal_format: journal::format_for(plan),
        system_identifier: identity.system_identifier.clone(),
        inventory_fingerprint: Some(inventory_fingerprint),
    }
}

/// The locks a run holds while it may change the cluster: the run store's, keyed on what the
/// cluster is, and one in the cluster's DCS where pgha reaches it (Consul, or etcd) — so that two
/// operators on two machines cannot run runbooks on one cluster at once.
pub(crate) struct Held {
    _local: ClusterLock,
    dcs: Option<DcsLock>,
}

impl Held {
    pub(crate) async fn take(
        store: &RunStore,
        world: &LiveCluster,
        identity: &ClusterIdentity,
        plan: &Plan,
        run_id: &str,
        operator: &str,
    ) -> Result<Held, Error> {
        let local = store.lock(identity, &plan.cluster, run_id)?;
        let holder = LockHolder {
            run_id: run_id.into(),
            operator: operator.into(),
            host: journal::hostname(),
            pid: std::process::id(),
            since: journal::now(),
        };
        let dcs = match (&world.consul, &world.etcd) {
            (Some(client), _) => Some(DcsLock::Consul(
                ConsulLock::acquire(client, &plan.scope, &holder).await?,
            )),
            (None, Some(client)) => Some(DcsLock::Etcd(
                EtcdLock::acquire(client, client.lock_key(&plan.scope), &holder).await?,
            )),
            (None, None) => None,
        };
        if let Some(lock) = &dcs {
            tracing::info!("holding {}", lock.describe());
        }
        Ok(Held { _local: local, dcs })
    }

    async fn release(self) {
        if let Some(lock) = self.dcs {
            lock.release().await;
        }
    }
}

/// A run's lock in the cluster's DCS.
enum DcsLock {
    Consul(ConsulLock),
    Etcd(EtcdLock),
}

impl DcsLock {
    /// Set when the lock could not be kept: the executor stops before its next change.
    fn lost_flag(&self) -> Arc<AtomicBool> {
        match self {
            DcsLock::Consul(lock) => lock.lost_flag(),
            DcsLock::Etcd(lock) => lock.lost_flag(),
        }
    }

    fn describe(&self) -> String {
        match self {
            DcsLock::Consul(lock) => format!("the Consul lock {}", lock.key()),
            DcsLock::Etcd(lock) => format!("the etcd lock {}", lock.key()),
        }
    }

    async fn release(self) {
        match self {
            DcsLock::Consul(lock) => lock.release().await,
            DcsLock::Etcd(lock) => lock.release().await,
        }
    }
}

pub(crate) fn gate_policy(options: &RunOptions) -> GatePolicy {
    GatePolicy {
        assume_yes: options.assume_yes,
        confirm: options.confirm.clone(),
        done: options.done.clone(),
        interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        operator: journal::operator(),
    }
}

/// A run about to execute: where, what, from which step, with whose answers.
pub(crate) struct Execution<'a> {
    pub world: &'a LiveCluster,
    pub plan: &'a Plan,
    pub point: ResumePoint,
    pub policy: GatePolicy,
    pub run_id: &'a str,
}

impl Execution<'_> {
    /// The one path every run takes once it holds its locks, new or resumed: record the
    /// opening events, execute from the resume point (unless the opening refused the run),
    /// record the end, release the locks, and say how it ended.
    pub(crate) async fn record(
        self,
        held: Held,
        mut journal: Journal,
        opening: Vec<Event>,
        refused: Option<Finish>,
    ) -> Exit {
        let mut terminal = TerminalSink::new(std::io::stderr().is_terminal());
        let started = tokio::time::Instant::now();
        let run_id = self.run_id;
        let finish = {
            let mut sinks = Sinks(vec![&mut journal, &mut terminal]);
            for event in &opening {
                sinks.emit(event);
            }
            let finish = match refused {
                Some(finish) => finish,
                None => self.execute(held.dcs.as_ref(), &mut sinks).await,
            };
            sinks.emit(&Event::RunFinished {
                outcome: finish.outcome,
                detail: finish.detail.clone(),
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
            finish
        };
        held.release().await;
        conclude(run_id, &journal, &finish)
    }

    async fn execute(self, lease: Option<&DcsLock>, sink: &mut dyn EventSink) -> Finish {
        let run_label = format!("pgha run {} by {}", self.run_id, self.policy.operator);
        let interrupt = listen_for_ctrl_c(self.run_id);
        let mut executor = Executor::new(
            self.world,
            Arc::new(TerminalPrompt),
            self.policy,
            sink,
            interrupt.receiver,
        )
        .with_run_label(run_label)
        .with_lease(lease.map(DcsLock::lost_flag));
        let finish = executor.run(self.plan, &self.point).await;
        interrupt.listener.abort();
        finish
    }
}

struct CtrlC {
    receiver: watch::Receiver<bool>,
    listener: tokio::task::JoinHandle<()>,
}

/// One listener for the whole run. A first Ctrl-C is said at once and stops the run after the
/// action in flight (a call, a command, a statement: each bounded by its own deadline); at a
/// gate it aborts, during a wait it interrupts. A second one exits at once: the journal then
/// shows the step started, and `resume` treats it by its idempotency class.
fn listen_for_ctrl_c(run_id: &str) -> CtrlC {
    let (sender, receiver) = watch::channel(false);
    let resume_hint = format!("pgha resume {run_id}");
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        eprintln!(
            "pgha: Ctrl-C: stopping after the current action (Ctrl-C again to exit at once); the run stays resumable"
        );
        let _ = sender.send(true);
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("pgha: exiting at once; continue with `{resume_hint}`");
            std::process::exit(i32::from(Exit::Aborted.as_code()));
        }
    });
    CtrlC { receiver, listener }
}

fn conclude(run_id: &str, journal: &Journal, finish: &Finish) -> Exit {
    if let Some(error) = &journal.write_error {
        eprintln!(
            "pgha: warning: the journal could not be written ({error}); the run's record is incomplete"
        );
    }
    eprintln!("pgha: journal {}", journal.path().display());
    if finish.outcome.is_resumable() && finish.outcome != Outcome::Refused {
        eprintln!("pgha: continue with `pgha resume {run_id}`");
    }
    finish.outcome.exit()
}
