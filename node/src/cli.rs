//! The `opengateway` command line: the POC's commands that need no network, with its outputs and
//! exit codes (`opengateway scripts/cli.js`), plus our `model` and `topic` commands.
//!
//! Output lines reproduce the POC's `console.log` calls, which join their arguments with one space
//! (hence labels such as `"POC root:    "` followed by a space). An unknown command prints the usage
//! on stderr and exits 1; a missing cluster id for `connect`/`disconnect` prints that command's
//! usage and exits 1. Where the POC silently treats a corrupt file as empty, we stop with an
//! error naming the file and the field (exit 1).

use std::collections::HashMap;
use std::io::Write;

use clap::{Parser, Subcommand};

use crate::config::{PocRoot, RESOURCES_FILE};
use crate::jsonfile::{FileError, read_object, write_json_atomic};
use crate::topic::TopicScheme;

/// The POC's usage text (`cli.js main`), printed on stderr for an unknown command.
pub const USAGE: &str = "Usage: opengateway <command> [args]
Commands: status, clusters, connect, disconnect, resources, eligible, peers, gauge, start, stop, restart, prompt
Prompt usage: opengateway prompt [\"text\"] [--model <model-id>]
No text => interactive chat mode (/exit to quit)
Aliases:  join = connect, leave = disconnect
Also: model pull | model list | model run \"text\", topic <cluster-id>, stdio, api [--listen ADDR]
";

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "opengateway",
    about = "OpenGateway node (drop-in for the JS POC)"
)]
pub struct Cli {
    /// Topic derivation for cluster ids (default: `OPENGATEWAY_TOPIC_SCHEME`, else both).
    #[arg(long, global = true, value_enum)]
    pub topic_scheme: Option<TopicScheme>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the POC root, node, clusters and runtime.
    Status,
    /// List connected clusters.
    Clusters,
    /// Add a cluster to state.json.
    #[command(alias = "join")]
    Connect {
        /// Cluster id.
        id: Option<String>,
    },
    /// Remove a cluster from state.json.
    #[command(alias = "leave")]
    Disconnect {
        /// Cluster id.
        id: Option<String>,
    },
    /// Measure this machine into resources.json.
    Gauge,
    /// Show resources.json.
    Resources,
    /// List the model tiers this machine qualifies for.
    Eligible,
    /// List peers of a cluster seen by the running node (peers.json).
    Peers {
        /// Cluster id (default: config.cluster_id, else the first connected cluster).
        cluster: Option<String>,
    },
    /// Stop the node recorded in state.json (SIGTERM).
    Stop,
    /// Start the node daemon (needs the swarm layer; not available yet).
    Start,
    /// Restart the node daemon (needs the swarm layer; not available yet).
    Restart,
    /// Send a prompt to the cluster (needs the swarm layer; not available yet).
    Prompt {
        /// Prompt words and `--model ID`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Local models: pull, list, run.
    Model {
        /// What to do.
        #[command(subcommand)]
        action: ModelCommand,
    },
    /// Print the topic(s) of a cluster id, hex, for the chosen scheme.
    Topic {
        /// Cluster id.
        id: String,
    },
    /// Answer NDJSON `inference_request` lines from stdin on stdout, as the node does on a
    /// connection, through the request queue and the configured backend.
    Stdio,
    /// Serve the OpenAI-compatible HTTP API (and /metrics, /health, the page) in the foreground.
    Api(ApiArgs),
}

/// `api` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Address to listen on (loopback by default; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Require `Authorization: Bearer <key>` (default: `OPENGATEWAY_API_KEY`; unset = no key).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Requests that may wait for the backend (default: config `inference_queue_limit`, else 8).
    #[arg(long)]
    pub queue_limit: Option<usize>,
}

/// `model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download and verify the built-in model into the cache.
    Pull,
    /// Show the cached models.
    List,
    /// Generate locally with the native backend, streaming the text.
    Run(crate::inference::native::RunArgs),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A POC root file.
    #[error(transparent)]
    File(#[from] FileError),
    /// Gauge.
    #[error(transparent)]
    Gauge(#[from] crate::gauge::GaugeError),
    /// A command that needs the network layer.
    #[error("`{0}` is not available yet: it needs the swarm layer, which this build does not have")]
    NeedsSwarm(&'static str),
    /// Model cache.
    #[error(transparent)]
    Pull(#[from] crate::inference::cache::PullError),
    /// Native inference.
    #[error(transparent)]
    Native(#[from] crate::inference::native::NativeError),
    /// Backend selection.
    #[error(transparent)]
    Backend(#[from] crate::inference::backend::BackendError),
    /// The topic scheme variable.
    #[error("OPENGATEWAY_TOPIC_SCHEME: {0}")]
    Topic(#[from] crate::topic::UnknownScheme),
    /// The HTTP API.
    #[error(transparent)]
    Api(#[from] crate::api::ServeError),
    /// Writing to the terminal.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// The environment variables a command reads, captured once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// This process's environment.
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment from pairs (for tests and embedding).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// A variable, when set (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// A variable, when set and non-empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|s| !s.is_empty())
    }

    /// The POC root.
    pub fn poc_root(&self) -> PocRoot {
        PocRoot::from_env_values(self.get("OPENGATEWAY_POC_ROOT"), self.get("HOME"))
    }
}

/// Runs one command; returns the exit code.
pub fn run(cli: Cli, env: &Env, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, CliError> {
    let root = env.poc_root();
    match cli.command {
        Command::Status => status(&root, out),
        Command::Clusters => {
            let clusters = root.state()?.clusters();
            if clusters.is_empty() {
                writeln!(
                    out,
                    "No clusters connected. Use: opengateway connect <cluster-id>"
                )?;
            }
            for c in clusters {
                writeln!(out, "{c}")?;
            }
            Ok(0)
        }
        Command::Connect { id } => {
            let Some(id) = id.filter(|s| !s.is_empty()) else {
                writeln!(err, "Usage: opengateway connect <cluster-id>")?;
                return Ok(1);
            };
            let mut state = root.state()?;
            if !state.connect(&id) {
                writeln!(out, "Already connected to {id}")?;
                return Ok(0);
            }
            root.save_state(&state)?;
            writeln!(
                out,
                "Connected to {id} . Run \"opengateway start\" to join the cluster."
            )?;
            Ok(0)
        }
        Command::Disconnect { id } => {
            let Some(id) = id.filter(|s| !s.is_empty()) else {
                writeln!(err, "Usage: opengateway disconnect <cluster-id>")?;
                return Ok(1);
            };
            let mut state = root.state()?;
            if !state.disconnect(&id) {
                writeln!(out, "Not connected to {id}")?;
                return Ok(0);
            }
            root.save_state(&state)?;
            writeln!(out, "Disconnected from {id}")?;
            Ok(0)
        }
        Command::Gauge => {
            let profile = crate::gauge::measure(root.dir())?;
            let path = root.file(RESOURCES_FILE);
            // Keep keys a user added; the four measured keys are replaced in place.
            let mut doc = read_object(&path)?.unwrap_or_default();
            let serde_json::Value::Object(fresh) = serde_json::json!(profile) else {
                return Ok(1);
            };
            for (k, v) in fresh {
                doc.insert(k, v);
            }
            write_json_atomic(&path, &doc)?;
            writeln!(out, "Gauged: {}", profile.inspect())?;
            writeln!(out, "Wrote {}", path.display())?;
            Ok(0)
        }
        Command::Resources => {
            let Some(r) = root.resources()? else {
                writeln!(out, "Resources not gauged. Run: opengateway gauge")?;
                return Ok(0);
            };
            writeln!(out, "CPU cores:    {}", r.display(0))?;
            writeln!(out, "RAM (GB):     {}", r.display(1))?;
            writeln!(out, "GPU VRAM (GB): {}", r.display(2))?;
            writeln!(out, "Disk (GB):    {}", r.display(3))?;
            Ok(0)
        }
        Command::Eligible => {
            let Some(r) = root.resources()? else {
                writeln!(out, "Resources not gauged. Run: opengateway gauge")?;
                return Ok(0);
            };
            let tiers = crate::tiers::eligible(&r);
            if tiers.is_empty() {
                writeln!(out, "No clusters eligible with current resources.")?;
            }
            for t in tiers {
                writeln!(out, "{}", t.id)?;
            }
            Ok(0)
        }
        Command::Peers { cluster } => peers(&root, cluster, out),
        Command::Stop => stop(&root, out),
        Command::Start => Err(CliError::NeedsSwarm("start")),
        Command::Restart => Err(CliError::NeedsSwarm("restart")),
        Command::Prompt { .. } => Err(CliError::NeedsSwarm("prompt")),
        Command::Topic { id } => {
            let scheme = topic_scheme(cli.topic_scheme, env)?;
            for t in scheme.topics(&id) {
                writeln!(out, "{}", hex::encode(t))?;
            }
            Ok(0)
        }
        Command::Model { action } => crate::inference::cli::model(action, env, &root, out, err),
        Command::Stdio => crate::inference::cli::stdio(env, &root, err),
        Command::Api(args) => crate::inference::cli::api(args, env, &root, out, err),
    }
}

/// The topic scheme: the flag, else `OPENGATEWAY_TOPIC_SCHEME`, else both.
pub fn topic_scheme(flag: Option<TopicScheme>, env: &Env) -> Result<TopicScheme, CliError> {
    if let Some(s) = flag {
        return Ok(s);
    }
    match env.non_empty("OPENGATEWAY_TOPIC_SCHEME") {
        Some(v) => Ok(v.parse()?),
        None => Ok(TopicScheme::default()),
    }
}

fn pid_alive(pid: i64) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
}

fn status(root: &PocRoot, out: &mut dyn Write) -> Result<i32, CliError> {
    let config = root.config()?;
    let state = root.state()?;
    let node = match state.node_pid() {
        Some(pid) if pid_alive(pid) => format!("running (pid {pid})"),
        _ => "not running".to_owned(),
    };
    let clusters = state.clusters();
    writeln!(out, "POC root:     {}", root.dir().display())?;
    writeln!(out, "Node:         {node}")?;
    writeln!(
        out,
        "Node name:    {}",
        config.node_name().unwrap_or("(auto)")
    )?;
    let list = if clusters.is_empty() {
        "none".to_owned()
    } else {
        clusters.join(", ")
    };
    writeln!(out, "Clusters:     {list}")?;
    let (backend, model) = state.runtime();
    if backend.is_some() || model.is_some() {
        let model = model.map(|m| format!(" ({m})")).unwrap_or_default();
        writeln!(
            out,
            "Runtime:      {}{model}",
            backend.as_deref().unwrap_or("unknown")
        )?;
    }
    let models = state.supported_models();
    if !models.is_empty() {
        writeln!(out, "Models:       {}", models.join(", "))?;
    }
    Ok(0)
}

fn peers(root: &PocRoot, cluster: Option<String>, out: &mut dyn Write) -> Result<i32, CliError> {
    let state = root.state()?;
    let clusters = state.clusters();
    let config = root.config()?;
    let cluster = cluster
        .filter(|c| !c.is_empty())
        .or_else(|| config.cluster_id().map(str::to_owned))
        .or_else(|| clusters.first().cloned().filter(|c| !c.is_empty()));
    let Some(cluster) = cluster else {
        writeln!(
            out,
            "No cluster specified. Use: opengateway peers [cluster-id]"
        )?;
        return Ok(0);
    };
    if !clusters.contains(&cluster) {
        writeln!(out, "Not connected to {cluster}")?;
        return Ok(0);
    }
    let visible: Vec<_> = root
        .peers()?
        .into_iter()
        .filter(|p| p.clusters.contains(&cluster))
        .collect();
    if visible.is_empty() {
        writeln!(out, "No peers currently visible in {cluster}")?;
        return Ok(0);
    }
    writeln!(out, "Peers in {cluster} ({}):", visible.len())?;
    for p in visible {
        let id: String = p
            .peer_id
            .as_deref()
            .map_or_else(|| "?".to_owned(), |s| s.chars().take(16).collect());
        let name = p.node_name.as_deref().unwrap_or("unknown");
        let seen = p
            .last_seen_at
            .map(|s| format!(" last_seen={s}"))
            .unwrap_or_default();
        writeln!(out, "- {id} ({name}){seen}")?;
    }
    Ok(0)
}

fn stop(root: &PocRoot, out: &mut dyn Write) -> Result<i32, CliError> {
    let mut state = root.state()?;
    let Some(pid) = state.node_pid() else {
        writeln!(out, "Node is not running.")?;
        return Ok(0);
    };
    let sent = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::kill_process(p, rustix::process::Signal::TERM).is_ok());
    state.set_node_pid(None);
    root.save_state(&state)?;
    if sent {
        writeln!(out, "Stopped node (pid {pid}).")?;
    } else {
        writeln!(out, "Node process not found. Cleared stale pid.")?;
    }
    Ok(0)
}
