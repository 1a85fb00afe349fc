//! `opengateway model ...` and `opengateway stdio`.

use std::io::{IsTerminal, Read, Write};
use std::sync::{Arc, Mutex};

use super::backend::{Backend, model_path};
use super::cache;
use super::native::NativeModel;
use super::queue::{DEFAULT_LIMIT, RequestQueue};
use crate::cli::{CliError, Env, ModelCommand};
use crate::config::PocRoot;
use crate::protocol::{Incoming, LineDecoder, parse_line};

/// Runs a `model` subcommand.
pub fn model(
    action: ModelCommand,
    env: &Env,
    root: &PocRoot,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, CliError> {
    let dir = cache::cache_dir(env);
    match action {
        ModelCommand::Pull => {
            let python = env.non_empty("OPENGATEWAY_PYTHON").unwrap_or("python3");
            let show = std::io::stderr().is_terminal();
            let mut log = |l: &str| {
                let _ = writeln!(err, "{l}");
            };
            let path = cache::pull(&dir, python, show, &mut log)?;
            writeln!(out, "{}", path.display())?;
            Ok(0)
        }
        ModelCommand::List => {
            let models = cache::list(&dir)?;
            if models.is_empty() {
                writeln!(
                    out,
                    "No models in {}. Run: opengateway model pull",
                    dir.display()
                )?;
                return Ok(0);
            }
            writeln!(out, "Models in {}:", dir.display())?;
            for m in models {
                let state = match m.verified {
                    Some(true) => format!("  {} (built-in, sha256 verified)", cache::BUILTIN.name),
                    Some(false) => {
                        "  CORRUPT: size or sha256 differs; run `opengateway model pull`".to_owned()
                    }
                    None => String::new(),
                };
                writeln!(out, "{}  {} bytes{state}", m.file, m.size)?;
            }
            Ok(0)
        }
        ModelCommand::Run(args) => {
            let config = root.config()?;
            let path = match args.model {
                Some(p) => p,
                None => model_path(env, config.model_path())
                    .ok_or(super::backend::BackendError::NoModel)?,
            };
            let mut m = NativeModel::load(&path)?;
            let prompt = args.prompt.join(" ");
            let mut write_err = None;
            let g = m.generate(&prompt, &args.params, &mut |piece| {
                if write_err.is_none()
                    && let Err(e) = out.write_all(piece.as_bytes()).and_then(|()| out.flush())
                {
                    write_err = Some(e);
                }
            })?;
            if let Some(e) = write_err {
                return Err(e.into());
            }
            writeln!(out)?;
            let per_s = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
            writeln!(
                err,
                "[{}] {} prompt tokens, {} generated ({:?}); load {} ms, prefill {} ms ({:.1} tok/s), first token {} ms, decode {:.1} tok/s",
                g.model,
                g.prompt_tokens,
                g.tokens,
                g.finish,
                m.load_time().as_millis(),
                g.prefill.as_millis(),
                per_s(g.prompt_tokens, g.prefill),
                g.first_token.as_millis(),
                per_s(g.tokens.saturating_sub(1), g.decode),
            )?;
            Ok(0)
        }
    }
}

/// `opengateway stdio`: NDJSON requests on stdin, responses on stdout, through the queue.
pub fn stdio(env: &Env, root: &PocRoot, err: &mut dyn Write) -> Result<i32, CliError> {
    let config = root.config()?;
    let backend = Backend::from_env(env, config.model_path())?;
    writeln!(err, "Inference backend: {}", backend.kind().name())?;
    let limit = config.inference_queue_limit().unwrap_or(DEFAULT_LIMIT);
    let queue = RequestQueue::new(Box::new(backend), limit);
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let send = |stdout: &Arc<Mutex<std::io::Stdout>>, line: String| {
        if let Ok(mut o) = stdout.lock() {
            let _ = o.write_all(line.as_bytes()).and_then(|()| o.flush());
        }
    };
    let mut decoder = LineDecoder::default();
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            break;
        }
        decoder.feed(buf.get(..n).unwrap_or_default(), |line| {
            let Some(Incoming::InferenceRequest(req)) = parse_line(line) else {
                return;
            };
            let out = Arc::clone(&stdout);
            super::serve::answer(
                &queue,
                req,
                Box::new(move |line| {
                    send(&out, line);
                    true
                }),
            );
        });
    }
    queue.finish();
    if decoder.dropped() > 0 {
        writeln!(
            err,
            "dropped {} line(s) longer than 1 MiB",
            decoder.dropped()
        )?;
    }
    Ok(0)
}

/// `opengateway api`: the HTTP API over the configured backend, until Ctrl-C or SIGTERM.
pub fn api(
    args: crate::cli::ApiArgs,
    env: &Env,
    root: &PocRoot,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, CliError> {
    let config = root.config()?;
    let backend = Backend::from_env(env, config.model_path())?;
    let kind = backend.kind().name();
    let models = backend.models();
    let limit = args
        .queue_limit
        .or(config.inference_queue_limit())
        .unwrap_or(DEFAULT_LIMIT);
    let queue = Arc::new(RequestQueue::new(Box::new(backend), limit));
    let key = args
        .api_key
        .or_else(|| env.non_empty("OPENGATEWAY_API_KEY").map(str::to_owned));
    if key.is_none() && !args.listen.ip().is_loopback() {
        writeln!(
            err,
            "warning: listening on {} without an API key: anyone who can reach it can use this node",
            args.listen
        )?;
    }
    let state = Arc::new(crate::api::AppState::new(
        queue,
        models.clone(),
        kind,
        env.non_empty("NODE_NAME").unwrap_or("node"),
        Arc::new(crate::api::cluster::LocalOnly),
        key,
    ));
    crate::api::serve(state, args.listen, |addr| {
        // Scripts and tests wait for this line to know the port.
        let _ = writeln!(
            out,
            "OpenGateway API on http://{addr} (backend {kind}, models: {}, queue limit {limit})",
            models.join(", ")
        );
        let _ = out.flush();
    })?;
    Ok(0)
}
