//! What the one list of runbooks (`registry!` in `runbooks/mod.rs`) expands to. A runbook is
//! its file and one line in that list: the line declares its module and gives it its
//! subcommand (flags and help from its parameters, plus the flags every run shares), its place
//! in the `Params` the journal records (tagged by runbook, so journals stay readable), and its
//! dispatch — deadline, measure, replanning, plan, committed examples. Nothing else names a runbook.

/// What every runbook command accepts. Global, so that runbooks with subcommands (`pgha host
/// backup …`) take them after their own.
#[derive(Debug, Clone, clap::Args)]
pub struct RunFlags {
    /// Print the plan and check its pre-conditions against the cluster; change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// How --dry-run prints the plan
    #[arg(short, long, global = true, value_enum, default_value_t = PlanOutput::Text)]
    pub output: PlanOutput,
    /// Answer yes to confirmations (not to destructive steps: see --confirm; not to steps done
    /// by hand: see --done)
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Confirm a destructive step by the name it asks for (a member or cluster name): repeat
    /// for each
    #[arg(long, global = true, value_name = "NAME", value_parser = crate::flags::name)]
    pub confirm: Vec<String>,
    /// A step done by hand (drain, provisioning, load-balancing) is done: repeat for each
    #[arg(long, global = true, value_name = "STEP", value_parser = crate::flags::name)]
    pub done: Vec<String>,
}

/// `-o text|markdown|json` for plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanOutput {
    Text,
    Markdown,
    Json,
}

macro_rules! registry {
    ($( $(#[$meta:meta])* $variant:ident in $module:ident ),* $(,)?) => {
        $( pub mod $module; )*

        /// Every runbook's command line: its own parameters and the flags every run shares.
        #[derive(Debug, clap::Subcommand)]
        pub enum RunbookCommand {
            $(
                #[command(about = <$module::$variant as Runbook>::ABOUT)]
                $(#[$meta])*
                $variant {
                    #[command(flatten)]
                    params: <$module::$variant as Runbook>::Params,
                    #[command(flatten)]
                    run: RunFlags,
                },
            )*
        }

        impl RunbookCommand {
            pub fn into_parts(self) -> (Params, RunFlags) {
                match self {
                    $( RunbookCommand::$variant { params, run } => (Params::$variant(params), run), )*
                }
            }
        }

        /// What the operator asked for, by runbook. Stored in the plan (and so in the
        /// journal) so that a resumed run can be planned again from the same request.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "runbook", rename_all = "snake_case")]
        pub enum Params {
            $( $variant(<$module::$variant as Runbook>::Params), )*
        }

        impl Params {
            /// The runbook's command name.
            pub fn runbook(&self) -> &'static str {
                match self {
                    $( Params::$variant(_) => <$module::$variant as Runbook>::NAME, )*
                }
            }

            /// The parameters with the environment's default deadline where the operator gave
            /// none: `--timeout` wins, then the inventory's `timeouts.runbooks.<runbook>`, then
            /// the runbook's own.
            #[must_use]
            pub fn with_default_timeout(mut self, defaults: &std::collections::BTreeMap<String, std::time::Duration>) -> Self {
                let default = defaults.get(self.runbook()).copied();
                let deadline = match &mut self {
                    $( Params::$variant(params) => <$module::$variant as Runbook>::deadline(params), )*
                };
                if let Some(deadline) = deadline {
                    *deadline = deadline.or(default);
                }
                self
            }

            /// The parameters a `--replan` of a run made with these plans with.
            #[must_use]
            pub fn replanning(self) -> Self {
                match self {
                    $( Params::$variant(params) => Params::$variant(
                        <$module::$variant as Runbook>::replanning(params),
                    ), )*
                }
            }

            /// The parameters completed with what the runbook measures before planning.
            pub async fn measured(
                self,
                target: &crate::inventory::ClusterTarget,
                view: &crate::observe::ClusterView,
                probe: &impl Probe,
            ) -> Result<Self, PlanError> {
                Ok(match self {
                    $( Params::$variant(params) => Params::$variant(
                        <$module::$variant as Runbook>::measure(params, target, view, probe).await?,
                    ), )*
                })
            }

            /// The runbook's plan, named and carrying these parameters.
            pub fn plan(
                &self,
                target: &crate::inventory::ClusterTarget,
                view: &crate::observe::ClusterView,
            ) -> Result<crate::plan::Plan, PlanError> {
                let mut plan = match self {
                    $( Params::$variant(params) => <$module::$variant as Runbook>::plan(target, view, params)?, )*
                };
                plan.runbook = self.runbook().into();
                plan.params = serde_json::to_value(self).unwrap_or_default();
                Ok(plan)
            }
        }

        /// Every committed plan: `runbooks/<file>.md`, its parameters and the lab it is for.
        pub fn examples() -> Vec<(&'static str, Params, ExampleLab)> {
            let mut all = Vec::new();
            $(
                all.extend(<$module::$variant as Runbook>::examples().into_iter().map(|example| {
                    (example.file, Params::$variant(example.params), example.lab)
                }));
            )*
            all
        }
    };
}

pub(super) use registry;
