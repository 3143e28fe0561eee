//! `twinloop-sim`: the simulator harness's command line.
//!
//! One subcommand per harness: `dst` (docs/DST.md), and the process harness's `run`,
//! `chaos` and `bench` (docs/BENCHMARKS.md, with their own exit codes there).
//!
//! Exit codes (also in `docs/DST.md`): 0 every seed passed; 2 bad arguments; 10 a safety
//! invariant (1–4) broke; 11 a liveness invariant (5–6) broke or a run got stuck; 12 a
//! node or the simulator panicked. With several failing seeds, the code is the first
//! failing seed's (in seed order).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use twinloop_sim::dst::{self, Options, RunConfig, SeedReport, TestWorkloadFactory};

#[derive(Debug, Parser)]
#[command(name = "twinloop-sim", version, about = "Simulator harness for twinloop")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deterministic simulation testing: real nodes, virtual time and network, seeded
    /// fault schedules, invariant checkers.
    Dst(DstArgs),
    /// The process harness: two real node processes, a simulated tank plant, injected
    /// faults (kills, freezes, link cuts, partitions, switchovers) and a report.
    Run(twinloop_sim::harness::cli::RunArgs),
    /// The process harness with N random (seeded) faults back to back.
    Chaos(twinloop_sim::harness::cli::ChaosArgs),
    /// Benchmarks on real processes: failover, switchover, overhead, join, and the
    /// service address on network namespaces beside keepalived (vip, root).
    Bench(twinloop_sim::harness::cli::BenchArgs),
    /// `bench counts`'s in-process run under callgrind (not for people: the bench starts it).
    #[command(hide = true)]
    BenchCore(BenchCoreArgs),
}

#[derive(Debug, Args)]
struct BenchCoreArgs {
    /// Whose calls are counted.
    #[arg(long, value_enum)]
    role: twinloop_sim::harness::counts::CoreRole,
    /// Cycles counted after the warm-up.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    cycles: u64,
    /// The core timing, as `bench --profile` names it.
    #[arg(long, default_value = "harness")]
    profile: String,
    /// The virtual clock's cycle.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    cycle_ms: u32,
}

/// Which control program the simulated nodes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AppKind {
    /// The runtime's `TestApp` (accumulated state, ballast) in a snapshot of the seed's drawn size.
    Test,
}

#[derive(Debug, Args)]
struct DstArgs {
    /// The first seed. Every option of a run is drawn from its seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How many seeds to run: `seed`, `seed + 1`, … `seed + seeds - 1`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Print a JSON summary as the last line of standard output.
    #[arg(long)]
    json: bool,
    /// Worker threads (each runs one seed at a time; results do not depend on it).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// Print only failing seeds and the summary.
    #[arg(long)]
    quiet: bool,
    /// Stop at the first failing seed (the seeds already running finish): a yes/no
    /// verdict, as the mutation run wants (`tools/mutants.sh`). The summary counts the
    /// seeds run, so its trace hash is not the full range's.
    #[arg(long)]
    fail_fast: bool,
    /// Print faults, transitions, alarms and notable sink verdicts as they happen (for
    /// replaying one seed).
    #[arg(long)]
    trace: bool,
    /// With `--trace`, also print every sync-link message sent.
    #[arg(long)]
    trace_wire: bool,
    /// Acknowledged events (issue 22): the nodes run with `outputs.acks` on, the sink
    /// acks every event back through the simulated network, and invariant 16 checks that
    /// every event a primary emitted is applied.
    #[arg(long)]
    acks: bool,
    /// Acked outputs (issue 16): every node runs with `outputs.release = "acked"` (the
    /// level refresh off), and invariant 17 checks that no output id leaves two primaries
    /// (none reaches the sink twice, before dedup) but where the design allows it.
    #[arg(long)]
    acked: bool,
    /// The control program.
    #[arg(long, value_enum, default_value_t = AppKind::Test)]
    app: AppKind,
    /// Plant a known bug, to see the checkers catch it (`cold-start`: a node without
    /// state leads from a cold start whenever it hears no primary, as before 2026-11-26;
    /// `ignore-sent-mask`: a new primary re-sends what the old one reported sent;
    /// `forget-heard-epoch`: an epoch heard or followed from the peer is never written;
    /// `lead-before-durable`: a node's own epoch is written in the background;
    /// `sink-ignores-levels`: the sink takes a level older than its key's newest;
    /// `refresh-never-fires`: the level refresh is off on the nodes while the checker
    /// holds them to the seed's period).
    #[arg(long, value_enum, default_value_t = Plant::None)]
    plant: Plant,
    /// Members that may lead: 2 is the pair (the DST above); 3 or 4 run a group of that
    /// many (issue 16, `dst::group`), with `--witness` one more that only votes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=4))]
    nodes: u8,
    /// Add a witness to the group (at most four members in all).
    #[arg(long)]
    witness: bool,
    /// Groups: do not check invariant 5 (after the quiet end, a group in which a running
    /// backup could win the votes has a primary). Checked by default since 2026-11-27
    /// (docs/DST.md, "Groups").
    #[arg(long)]
    no_liveness: bool,
    /// Groups: check invariant 5 (the default since 2026-11-27; kept so that older
    /// commands still run).
    #[arg(long, hide = true, conflicts_with = "no_liveness")]
    liveness: bool,
    /// The sink's dedup window in frames (at least the seed's `frames_buffered`), in place
    /// of 65,536: shows what a window shorter than the run does (issue 22's refreshed
    /// levels; events may then be refused as too old, docs/PROTOCOL.md "The dedup window").
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    sink_window_frames: Option<u64>,
}

/// A bug to plant back (see `--plant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Plant {
    /// The real thing.
    None,
    /// `allow_cold_start` on both nodes: invariant 8's bug.
    ColdStart,
    /// Commits reach the backup with an empty `sent_mask`: invariant 9's bug.
    IgnoreSentMask,
    /// The writes of an epoch heard or followed are dropped: invariant 3's orphaned losses.
    ForgetHeardEpoch,
    /// A node's own epoch writes are made in the background: it leads before they are
    /// durable (invariant 1).
    LeadBeforeDurable,
    /// The sink offers every output as an event: an older level after a newer one
    /// (invariant 14).
    SinkIgnoresLevels,
    /// The level refresh never fires: a level lost on the output path stays lost
    /// (invariant 14's healing bound, issue 22).
    RefreshNeverFires,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Dst(args) => dst_main(&args),
        Command::Run(args) => i32::from(twinloop_sim::harness::cli::run_main(&args)),
        Command::Chaos(args) => i32::from(twinloop_sim::harness::cli::chaos_main(&args)),
        Command::Bench(args) => i32::from(twinloop_sim::harness::cli::bench_main(&args)),
        Command::BenchCore(args) => {
            match twinloop_sim::harness::counts::bench_core(args.role, args.cycles, &args.profile, args.cycle_ms) {
                Ok(line) => {
                    println!("{line}");
                    0
                }
                Err(e) => {
                    eprintln!("twinloop-sim bench-core: {e}");
                    1
                }
            }
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The command that runs seed `seed` again as `args` ran it: every flag that changes a
/// run goes with it (a `--acked` failure replayed without `--acked` passes).
fn replay_command(args: &DstArgs, seed: u64) -> String {
    let mut command = format!("cargo run --release -p twinloop-sim -- dst --seed {seed}");
    for (on, flag) in [(args.acks, " --acks"), (args.acked, " --acked")] {
        if on {
            command.push_str(flag);
        }
    }
    if args.plant != Plant::None {
        if let Some(value) = args.plant.to_possible_value() {
            command.push_str(" --plant ");
            command.push_str(value.get_name());
        }
    }
    if let Some(frames) = args.sink_window_frames {
        command.push_str(&format!(" --sink-window-frames {frames}"));
    }
    command
}

fn print_failure(args: &DstArgs, report: &SeedReport) {
    let Some(kind) = report.failure else { return };
    println!(
        "FAIL seed {} ({}, exit code {}): {} violation(s)",
        report.seed,
        kind.name(),
        kind.exit_code(),
        report.violation_count
    );
    if let Some(message) = &report.panic {
        println!("  panic: {message}");
    }
    for v in report.violations.iter().take(12) {
        println!(
            "  invariant {} ({:?}) at {:.3} ms: {}",
            v.invariant.number(),
            v.invariant,
            v.at as f64 / 1e6,
            v.detail
        );
    }
    println!("  replay: {}", replay_command(args, report.seed));
}

fn dst_main(args: &DstArgs) -> i32 {
    if args.nodes > 2 || args.witness {
        return dst_group_main(args);
    }
    let run = RunConfig {
        trace: args.trace,
        trace_wire: args.trace && args.trace_wire,
        acks: args.acks,
        acked: args.acked,
        sink_window_frames: args.sink_window_frames,
        fail_fast: args.fail_fast,
        mutation: match args.plant {
            Plant::None => dst::Mutation::None,
            Plant::ColdStart => dst::Mutation::ColdStart,
            Plant::IgnoreSentMask => dst::Mutation::IgnoreSentMask,
            Plant::ForgetHeardEpoch => dst::Mutation::ForgetHeardEpoch,
            Plant::LeadBeforeDurable => dst::Mutation::LeadBeforeDurable,
            Plant::SinkIgnoresLevels => dst::Mutation::SinkIgnoresLevels,
            Plant::RefreshNeverFires => dst::Mutation::RefreshNeverFires,
        },
    };
    let factory = match args.app {
        AppKind::Test => TestWorkloadFactory,
    };
    println!(
        "twinloop-sim dst: seeds {}..={} ({} seeds), {} thread(s), app {:?}",
        args.seed,
        args.seed.wrapping_add(args.seeds - 1),
        args.seeds,
        args.threads,
        args.app
    );
    let single = args.seeds == 1;
    if single {
        // One seed: print everything it decided before it runs, so that a hang or a
        // crash of the process can still be read against it.
        println!("SEED={}", args.seed);
        print!("{}", Options::draw(args.seed));
    }
    let threads = if single { 1 } else { args.threads as usize };
    let summary = dst::run_seeds(args.seed, args.seeds, threads, run, &factory, |report| {
        if !args.quiet || report.failure.is_some() {
            let verdict = report.failure.map_or("ok", |k| k.name());
            let s = &report.stats;
            println!(
                "SEED={} {} -> {verdict} (takeovers {}, switchovers {}, output gap {} frames, fenced off {}+{}+{}, {}events {}, trace {:016x})",
                report.seed,
                report.summary,
                s.takeovers,
                s.switchovers,
                s.output_gap_frames_max,
                s.exceptions.lost_deposed,
                s.exceptions.lost_orphaned_never_heard,
                s.exceptions.lost_orphaned_write_lost,
                // Copies below the sink's window of frames_buffered frames: shown when any.
                if s.too_old > 0 { format!("too old {}, ", s.too_old) } else { String::new() },
                s.events,
                report.trace_hash
            );
        }
        print_failure(args, report);
    });
    let failed = summary.failed.len();
    println!(
        "seeds {} failed {} violations {} failovers {} switchovers {} trace_hash {:016x}",
        summary.seeds, failed, summary.violations, summary.failovers, summary.switchovers, summary.trace_hash
    );
    if failed > 0 {
        println!("replay the first failing seeds:");
        for (seed, kind) in summary.failed.iter().take(10) {
            println!("  {} # {}", replay_command(args, *seed), kind.name());
        }
    }
    if args.json {
        println!("{}", summary.to_json());
    }
    summary.exit_code()
}

/// `dst --nodes 3|4` or `--witness`: the group shapes (`dst::group`).
fn dst_group_main(args: &DstArgs) -> i32 {
    let shape = dst::group::Shape {
        leaders: args.nodes,
        witness: args.witness,
        acked: args.acked,
        liveness: !args.no_liveness,
    };
    if shape.members() > 4 {
        eprintln!("twinloop-sim dst: a group has at most four members: --nodes 4 takes no --witness");
        return 2;
    }
    println!(
        "twinloop-sim dst: group of {} ({} may lead{}), seeds {}..={} ({} seeds)",
        shape.members(),
        shape.leaders,
        if shape.witness { ", a witness" } else { "" },
        args.seed,
        args.seed.wrapping_add(args.seeds - 1),
        args.seeds
    );
    let (mut redecided, mut waits) = (0u64, 0u64);
    let mut scenarios = dst::group::Scenarios::default();
    let (failed, violations, takeovers, hash) =
        dst::group::run_group_seeds(args.seed, args.seeds, shape, args.fail_fast, |r| {
            redecided += r.redecided;
            waits += r.waits_by_design;
            scenarios.add(&r.scenarios);
            if !args.quiet || !r.violations.is_empty() {
                println!(
                    "SEED={} -> {} (takeovers {}, led at end {}, redecided {}, trace {:016x})",
                    r.seed,
                    if r.violations.is_empty() { "ok" } else { "violation" },
                    r.takeovers,
                    r.led_at_end,
                    r.redecided,
                    r.trace_hash
                );
            }
            for v in &r.violations {
                println!("  {v}");
            }
        });
    println!(
        "seeds {} failed {failed} violations {violations} takeovers {takeovers} redecided {redecided} trace_hash {hash:016x}",
        args.seeds
    );
    println!(
        "scenarios: start-up partitions {} (halves {}), staggered starts {}, switchovers asked {} (judged {}), completed {}, group restarts {}, lag losses {} (member late {})",
        scenarios.startup_partitions,
        scenarios.startup_halves,
        scenarios.staggered_starts,
        scenarios.switchovers_asked,
        scenarios.switchovers_judged,
        scenarios.switchovers_completed,
        scenarios.group_restarts,
        scenarios.lag_losses,
        scenarios.lag_losses_late
    );
    if shape.liveness {
        // Invariant 5's exception, counted: no holder could win the votes by the
        // completeness rule, and the group waits for an operator.
        println!("liveness: seeds ending without a primary where none could win the votes (by design): {waits}");
    }
    if args.json {
        println!(
            "{{\"shape\":\"{}{}\",\"seeds\":{},\"failed\":{failed},\"violations\":{violations},\"takeovers\":{takeovers},\"redecided\":{redecided},\"trace_hash\":\"{hash:016x}\"}}",
            shape.leaders,
            if shape.witness { "+witness" } else { "" },
            args.seeds
        );
    }
    i32::from(failed > 0)
}
