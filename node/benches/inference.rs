//! Native inference figures: the node's generation path beside a bare candle quantized-llama
//! loop on the same GGUF, in the same process, on the same prompt tokens.
//!
//! Both sides: argmax sampling after a 1.1 repeat penalty over the last 64 tokens, the whole
//! prompt in one forward pass, then one token per pass; the node also detokenises incrementally
//! and checks stop strings, the bare loop does neither. Each run does both, in alternating order,
//! so load elsewhere on the machine hits both alike; medians are reported.
//!
//! `cargo bench -p node --bench inference` (release), or with `--profile test` to reuse the test
//! build (dependencies optimised alike). The model is pulled into the cache when missing;
//! `BENCH_RUNS`, `BENCH_TOKENS` change the run count and generated tokens.

use std::fs::File;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use node::cli::Env;
use node::inference::cache::ensure_builtin;
use node::inference::native::{GenParams, NativeModel};

const PROMPT: &str = "Write one sentence about peer-to-peer networks.";

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process (all threads), user + system, from `/proc/self/stat` (clock ticks,
/// taken as 100 per second as on Linux x86-64/arm64). Unlike wall time it barely moves when other
/// processes compete for the cores, so it compares the two sides fairly on a busy machine.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

struct Run {
    prefill: Duration,
    first_token: Duration,
    decode_tok_s: f64,
    tokens: usize,
}

fn bare(w: &mut ModelWeights, ids: &[u32], max: usize, eos: &[u32]) -> Run {
    let dev = Device::Cpu;
    let started = Instant::now();
    let mut sampler = LogitsProcessor::from_sampling(0, Sampling::ArgMax);
    w.clear_kv_cache();
    let input = Tensor::new(ids, &dev).unwrap().unsqueeze(0).unwrap();
    let mut logits = w.forward(&input, 0).unwrap().squeeze(0).unwrap();
    let prefill = started.elapsed();
    let mut out: Vec<u32> = Vec::new();
    let mut first = Duration::ZERO;
    let mut decode_start = Instant::now();
    while out.len() < max {
        let l = logits.to_dtype(candle_core::DType::F32).unwrap();
        let l = if out.is_empty() {
            l
        } else {
            let from = out.len().saturating_sub(64);
            candle_transformers::utils::apply_repeat_penalty(&l, 1.1, &out[from..]).unwrap()
        };
        let next = sampler.sample(&l).unwrap();
        if out.is_empty() {
            first = started.elapsed();
            decode_start = Instant::now();
        }
        if eos.contains(&next) {
            break;
        }
        out.push(next);
        if out.len() >= max {
            break;
        }
        let input = Tensor::new(&[next], &dev).unwrap().unsqueeze(0).unwrap();
        logits = w
            .forward(&input, ids.len() + out.len() - 1)
            .unwrap()
            .squeeze(0)
            .unwrap();
    }
    let d = decode_start.elapsed();
    Run {
        prefill,
        first_token: first,
        decode_tok_s: out.len().saturating_sub(1) as f64 / d.as_secs_f64(),
        tokens: out.len(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let env = Env::from_process();
    let runs: usize = env
        .non_empty("BENCH_RUNS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let max: usize = env
        .non_empty("BENCH_TOKENS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let path = ensure_builtin(&env).unwrap_or_else(|e| panic!("{e}"));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "model: {} ({threads} threads, {max} tokens, {runs} runs)",
        path.display()
    );

    let rss0 = rss_kib("VmRSS:");
    let t = Instant::now();
    let mut node = NativeModel::load(&path).unwrap();
    let node_load = t.elapsed();
    let rss_loaded = rss_kib("VmRSS:");
    let params = GenParams {
        temperature: 0.0,
        max_tokens: max,
        ..GenParams::default()
    };
    let ids = node.prompt_ids(PROMPT, false).unwrap();
    // Warm-up (page in the weights, size the KV cache), one of each.
    let g = node.generate(PROMPT, &params, &mut |_| {}).unwrap();
    let eos = [2u32];
    println!(
        "sample output ({} tokens, {:?}): {:?}",
        g.tokens, g.finish, g.text
    );

    let t = Instant::now();
    let mut f = File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let mut weights = ModelWeights::from_gguf(content, &mut f, &Device::Cpu).unwrap();
    let bare_load = t.elapsed();
    let rss_both = rss_kib("VmRSS:");
    bare(&mut weights, &ids, max, &eos);

    let (mut n_pre, mut n_ttft, mut n_dec, mut b_pre, mut b_ttft, mut b_dec) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut n_cpu, mut b_cpu) = (vec![], vec![]);
    let mut tokens = (0, 0);
    for i in 0..runs {
        // Alternate which side goes first so a burst of load elsewhere hits both alike.
        let mut node_run = || {
            let c = cpu_s();
            let g = node.generate(PROMPT, &params, &mut |_| {}).unwrap();
            (g, cpu_s() - c)
        };
        let mut bare_run = || {
            let c = cpu_s();
            let b = bare(&mut weights, &ids, max, &eos);
            (b, cpu_s() - c)
        };
        let ((g, gc), (b, bc)) = if i % 2 == 0 {
            let g = node_run();
            (g, bare_run())
        } else {
            let b = bare_run();
            (node_run(), b)
        };
        n_cpu.push(gc * 1e3 / (ids.len() + g.tokens) as f64);
        b_cpu.push(bc * 1e3 / (ids.len() + b.tokens) as f64);
        n_pre.push(g.prefill.as_secs_f64() * 1e3);
        n_ttft.push(g.first_token.as_secs_f64() * 1e3);
        n_dec.push(g.tokens.saturating_sub(1) as f64 / g.decode.as_secs_f64());
        b_pre.push(b.prefill.as_secs_f64() * 1e3);
        b_ttft.push(b.first_token.as_secs_f64() * 1e3);
        b_dec.push(b.decode_tok_s);
        tokens = (g.tokens, b.tokens);
    }
    let (nd, bd) = (median(n_dec), median(b_dec));
    println!();
    println!("| | node (NativeModel) | bare candle loop |");
    println!("|---|---|---|");
    println!(
        "| model load | {} ms | {} ms (weights only) |",
        node_load.as_millis(),
        bare_load.as_millis()
    );
    println!("| prompt tokens | {} | {} |", ids.len(), ids.len());
    println!("| generated tokens | {} | {} |", tokens.0, tokens.1);
    println!(
        "| prefill (median) | {:.0} ms ({:.1} tok/s) | {:.0} ms ({:.1} tok/s) |",
        median(n_pre.clone()),
        ids.len() as f64 / median(n_pre) * 1e3,
        median(b_pre.clone()),
        ids.len() as f64 / median(b_pre) * 1e3
    );
    println!(
        "| time to first token (median) | {:.0} ms | {:.0} ms |",
        median(n_ttft),
        median(b_ttft)
    );
    println!("| decode (median) | {nd:.1} tok/s | {bd:.1} tok/s |");
    println!("| decode ratio node/bare (wall) | {:.3} | |", nd / bd);
    let (nc, bc) = (median(n_cpu), median(b_cpu));
    println!("| CPU time per token, prompt + generated (median) | {nc:.1} ms | {bc:.1} ms |");
    println!(
        "| throughput ratio node/bare (CPU time) | {:.3} | |",
        bc / nc
    );
    println!(
        "| RSS | {} MiB before load, {} MiB with the model loaded | {} MiB with both loaded |",
        rss0 / 1024,
        rss_loaded / 1024,
        rss_both / 1024
    );
}
