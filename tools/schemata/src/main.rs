//! `twinloop-schemata`: mutation testing of twinloop's core with every mutant in one build.
//!
//! cargo-mutants builds the simulator once per mutant; on this project's 2-core machine
//! that build is most of a mutant's cost, and the whole core (2,402 mutants) needs some
//! 13 hours that way. This tool takes cargo-mutants' own list of mutants
//! (`cargo mutants --list --json`, the same `.cargo/mutants.toml`), rewrites a copy of
//! the tree so that each mutant is a branch switched on by the environment variable
//! `TWINLOOP_MUTANT=<id>` (`rewrite.rs`), builds the simulator and the core's unit tests
//! once, and runs for each mutant what `tools/mutants.sh` runs: the DST's shapes one
//! after another with `--fail-fast`, then, if the DST passed, the unit tests. A mutant
//! the compiler rejects inside the schema is left out and named; so are those in a
//! constant context: `tools/mutants.sh --re` runs those the old way.
//!
//! Usage (from the repository root; docs/DST.md, "Mutation testing"):
//!
//! ```text
//! tools/mutants.sh schemata [OPTIONS] [-- CARGO-MUTANTS LIST OPTIONS]
//! ```
//!
//! The output directory (`mutants.schemata/` unless `--out`) holds `outcomes.tsv` (one
//! line per mutant run: id, verdict, name; a run that stops goes on where it stopped),
//! `left-out.tsv` (id, why, name), a log per mutant that was not killed by the DST at its
//! first shape under `log/`, and the report `report.txt`.

// A tool, not the core: it times its own runs to bound the mutants' (the workspace's
// clippy.toml keeps the clock out of the core).
#![allow(clippy::disallowed_methods)]

mod rewrite;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use rewrite::Mutant;

const USAGE: &str = "usage: twinloop-schemata [--out DIR] [--seeds N] [--threads N] [--shapes 'S1;S2;...']
                         [--timeout-factor K] [--jobs N] [--build-only] [--only ID,ID,...] [-- CARGO-MUTANTS OPTIONS]
Run from the repository root (tools/mutants.sh schemata does). See docs/DST.md, \"Mutation testing\".";

/// The function appended to the core's crate root: the switch every branch calls.
const SWITCH_CODE: &str = "
/// The mutant this process runs (`TWINLOOP_MUTANT`, 0 for none): added by
/// tools/schemata to its scratch copy of the tree, never in the project's source.
#[doc(hidden)]
#[inline]
pub fn __twinloop_mutant(id: u32) -> bool {
    static ACTIVE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    id == *ACTIVE.get_or_init(|| {
        std::env::var(\"TWINLOOP_MUTANT\").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
    })
}
";

struct Options {
    out: PathBuf,
    seeds: u32,
    threads: u32,
    shapes: Vec<String>,
    timeout_factor: u32,
    jobs: u32,
    build_only: bool,
    only: Option<HashSet<u32>>,
    list_args: Vec<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        out: PathBuf::from("mutants.schemata"),
        seeds: 200,
        threads: 2,
        shapes: ";--acks;--acked;--nodes 3;--nodes 3 --witness".split(';').map(str::to_owned).collect(),
        timeout_factor: 10,
        jobs: 1,
        build_only: false,
        only: None,
        list_args: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--seeds" => o.seeds = value("--seeds")?.parse().map_err(|e| format!("--seeds: {e}"))?,
            "--threads" => o.threads = value("--threads")?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--shapes" => o.shapes = value("--shapes")?.split(';').map(str::to_owned).collect(),
            "--timeout-factor" => {
                o.timeout_factor = value("--timeout-factor")?
                    .parse()
                    .map_err(|e| format!("--timeout-factor: {e}"))?
            }
            "--jobs" => o.jobs = value("--jobs")?.parse().map_err(|e| format!("--jobs: {e}"))?,
            "--build-only" => o.build_only = true,
            "--only" => {
                let ids = value("--only")?
                    .split(',')
                    .map(|s| s.trim().parse::<u32>().map_err(|e| format!("--only {s}: {e}")))
                    .collect::<Result<HashSet<_>, _>>()?;
                o.only = Some(ids);
            }
            "--" => o.list_args.extend(args.by_ref()),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("twinloop-schemata: {e}");
            ExitCode::from(2)
        }
    }
}

fn sh(command: &mut Command) -> Result<std::process::Output, String> {
    command.output().map_err(|e| format!("{command:?}: {e}"))
}

/// The files git knows (tracked, or new and not ignored), relative to `root`.
fn tree_files(root: &Path) -> Result<Vec<String>, String> {
    let out = sh(Command::new("git").current_dir(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))?;
    if !out.status.success() {
        return Err(format!("git ls-files: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// Writes `bytes` to `path` unless it holds them already (an unchanged file keeps its
/// time, and cargo does not rebuild for it).
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

struct Schema {
    /// Each rewritten file's rewrite, by path.
    rewrites: BTreeMap<String, rewrite::Rewrite>,
    /// Mutants the compiler rejected inside the schema, with the first error.
    rejected: BTreeMap<u32, String>,
}

/// Copies the tree to `tree` with every mutant not in `excluded` rewritten in.
fn write_schema(
    root: &Path,
    tree: &Path,
    files: &[String],
    by_file: &BTreeMap<String, Vec<(u32, &Mutant)>>,
    excluded: &HashSet<u32>,
) -> Result<BTreeMap<String, rewrite::Rewrite>, String> {
    let mut rewrites = BTreeMap::new();
    for file in files {
        let from = root.join(file);
        if !from.is_file() {
            continue; // deleted but not yet staged
        }
        let bytes = fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        let mut bytes = match by_file.get(file) {
            Some(mutants) => {
                let text = String::from_utf8(bytes).map_err(|_| format!("{file}: not UTF-8"))?;
                let r = rewrite::rewrite(&text, mutants, excluded).map_err(|e| format!("{file}: {e}"))?;
                let text = r.text.clone();
                rewrites.insert(file.clone(), r);
                text.into_bytes()
            }
            None => bytes,
        };
        if file == "runtime/src/lib.rs" {
            bytes.extend_from_slice(SWITCH_CODE.as_bytes());
        }
        write_if_changed(&tree.join(file), &bytes)?;
    }
    Ok(rewrites)
}

/// Builds the simulator and the core's unit tests in `tree`; the unit tests' executable,
/// or the compiler's errors as (file, line, column, message).
#[allow(clippy::type_complexity)]
fn build(tree: &Path, target: &Path) -> Result<Result<PathBuf, Vec<(String, usize, usize, String)>>, String> {
    let mut errors = Vec::new();
    let mut executable = None;
    for args in [
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            "twinloop-sim",
            "--message-format",
            "json",
        ][..],
        &[
            "test",
            "--release",
            "--locked",
            "-p",
            "twinloop",
            "--lib",
            "--no-run",
            "--message-format",
            "json",
        ][..],
    ] {
        let out = sh(Command::new("cargo")
            .current_dir(tree)
            .args(args)
            .env("CARGO_TARGET_DIR", target)
            // The checks of the dev profile, in which cargo-mutants and tools/mutants.sh
            // build: an overflow a mutant causes panics, as it would there.
            .env("CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS", "true")
            .env("CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS", "true")
            .env("CARGO_PROFILE_RELEASE_DEBUG", "0")
            .stderr(Stdio::inherit()))?;
        for line in out.stdout.split(|b| *b == b'\n') {
            let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            match message["reason"].as_str() {
                Some("compiler-message") if message["message"]["level"] == "error" => {
                    let m = &message["message"];
                    let text = m["rendered"]
                        .as_str()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    let mut primary = m["spans"]
                        .as_array()
                        .and_then(|s| s.iter().find(|s| s["is_primary"] == true));
                    // An error inside a macro's expansion (`vec!`): where the macro was called.
                    while let Some(s) = primary {
                        let in_tree = s["file_name"]
                            .as_str()
                            .is_some_and(|f| !f.starts_with('/') || f.starts_with(&*tree.to_string_lossy()));
                        match &s["expansion"]["span"] {
                            serde_json::Value::Object(_) if !in_tree => primary = Some(&s["expansion"]["span"]),
                            _ => break,
                        }
                    }
                    match primary {
                        Some(s) => errors.push((
                            s["file_name"].as_str().unwrap_or("").to_owned(),
                            s["line_start"].as_u64().unwrap_or(0) as usize,
                            s["column_start"].as_u64().unwrap_or(0) as usize,
                            text,
                        )),
                        None if text.starts_with("error: aborting") || text.contains("could not compile") => {}
                        None => errors.push((String::new(), 0, 0, text)),
                    }
                }
                Some("compiler-artifact")
                    if message["profile"]["test"] == true && message["target"]["name"] == "twinloop" =>
                {
                    executable = message["executable"].as_str().map(PathBuf::from);
                }
                _ => {}
            }
        }
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        if !out.status.success() {
            return Err(format!(
                "cargo {} failed with no error message of the compiler",
                args.join(" ")
            ));
        }
    }
    executable
        .map(Ok)
        .ok_or_else(|| "the unit tests' executable was not in cargo's messages".to_owned())
        .map(Ok)?
}

fn build_schema(
    root: &Path,
    tree: &Path,
    target: &Path,
    mutants: &[Mutant],
    out: &Path,
) -> Result<(Schema, PathBuf), String> {
    let files = tree_files(root)?;
    let mut by_file: BTreeMap<String, Vec<(u32, &Mutant)>> = BTreeMap::new();
    for (i, m) in mutants.iter().enumerate() {
        by_file.entry(m.file.clone()).or_default().push((i as u32 + 1, m));
    }
    // The mutants an earlier run of this directory found rejected (by name): a resumed
    // run builds at once.
    let ids: HashMap<&str, u32> = mutants
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.as_str(), i as u32 + 1))
        .collect();
    let rejected_path = out.join("rejected.tsv");
    let mut rejected: BTreeMap<u32, String> = fs::read_to_string(&rejected_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter_map(|(name, why)| ids.get(name).map(|id| (*id, why.to_owned())))
        .collect();
    // Each round leaves out the mutants the compiler blamed; rustc reports the errors of
    // a crate at once, so a few rounds do.
    for round in 1..=12 {
        let excluded: HashSet<u32> = rejected.keys().copied().collect();
        let rewrites = write_schema(root, tree, &files, &by_file, &excluded)?;
        let placed: usize = rewrites.values().map(|r| r.placed.len()).sum();
        eprintln!("twinloop-schemata: round {round}: building the schema of {placed} mutants");
        let started = Instant::now();
        match build(tree, target)? {
            Ok(executable) => {
                eprintln!("twinloop-schemata: built in {:.0} s", started.elapsed().as_secs_f64());
                let mut text = String::new();
                for (id, why) in &rejected {
                    let _ = writeln!(
                        text,
                        "{}\t{}",
                        mutants[*id as usize - 1].name,
                        why.replace(['\t', '\n'], " ")
                    );
                }
                write_if_changed(&rejected_path, text.as_bytes())?;
                return Ok((Schema { rewrites, rejected }, executable));
            }
            Err(errors) => {
                let before = rejected.len();
                for (file, line, column, message) in &errors {
                    let file = file.strip_prefix(&format!("{}/", tree.display())).unwrap_or(file);
                    let blamed = rewrites.get(file).and_then(|r| {
                        let text = &r.text;
                        rewrite::compiler_offset(text, *line, *column).map(|at| r.blame(at))
                    });
                    match blamed {
                        Some(ids) if !ids.is_empty() => {
                            for id in ids {
                                rejected
                                    .entry(id)
                                    .or_insert_with(|| format!("{file}:{line}:{column}: {message}"));
                            }
                        }
                        _ => {
                            return Err(format!(
                            "the schema does not build at {file}:{line}:{column} ({message}), outside every mutant: \
                                 the rewrite is wrong there (tools/schemata/src/rewrite.rs)"
                        ))
                        }
                    }
                }
                eprintln!(
                    "twinloop-schemata: {} errors, {} mutants left out of the schema",
                    errors.len(),
                    rejected.len() - before
                );
            }
        }
    }
    Err("the schema still does not build after 12 rounds".to_owned())
}

/// Runs `command` for at most `limit`; its exit code, or `None` when it ran out of time.
fn run_bounded(command: &mut Command, limit: Duration, log: &mut fs::File) -> Result<Option<i32>, String> {
    let _ = writeln!(log, "+ {command:?}");
    let out = log.try_clone().map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    // GNU timeout signals the whole process group it made.
    let mut bounded = Command::new("timeout");
    bounded
        .arg("-k")
        .arg("5")
        .arg(format!("{}", limit.as_secs().max(1)))
        .arg(command.get_program());
    bounded.args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => bounded.env(k, v),
            None => bounded.env_remove(k),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        bounded.current_dir(dir);
    }
    let status = bounded.stdout(out).stderr(err).status().map_err(|e| {
        format!(
            "timeout {:?}: {e} (GNU coreutils' timeout is needed)",
            command.get_program()
        )
    })?;
    Ok(match status.code() {
        Some(124) | Some(137) | None => None,
        Some(code) => Some(code),
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    DstKilled,
    DstTimeout,
    UnitKilled,
    UnitTimeout,
    Survived,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::DstKilled => "dst-killed",
            Verdict::DstTimeout => "dst-timeout",
            Verdict::UnitKilled => "unit-killed",
            Verdict::UnitTimeout => "unit-timeout",
            Verdict::Survived => "survived",
        }
    }
}

struct Runner<'a> {
    sim: PathBuf,
    unit: &'a Path,
    tree: &'a Path,
    options: &'a Options,
    /// Each shape's bound and the unit tests' bound, from the baseline's times.
    dst_limits: Vec<Duration>,
    unit_limit: Duration,
}

impl Runner<'_> {
    fn dst(&self, shape: &str, id: u32) -> Command {
        let mut c = Command::new(&self.sim);
        c.args([
            "dst",
            "--seeds",
            &self.options.seeds.to_string(),
            "--threads",
            &self.options.threads.to_string(),
        ]);
        c.args(["--quiet", "--fail-fast"]);
        c.args(shape.split_whitespace());
        c.env("TWINLOOP_MUTANT", id.to_string());
        c
    }

    fn unit(&self, id: u32) -> Command {
        let mut c = Command::new(self.unit);
        c.arg("-q")
            .current_dir(self.tree.join("runtime"))
            .env("TWINLOOP_MUTANT", id.to_string());
        c
    }

    /// One mutant: the DST's shapes until one fails, then the unit tests.
    fn verdict(&self, id: u32, log: &mut fs::File) -> Result<(Verdict, String), String> {
        for (shape, limit) in self.options.shapes.iter().zip(&self.dst_limits) {
            match run_bounded(&mut self.dst(shape, id), *limit, log)? {
                Some(0) => {}
                Some(2) | Some(126) | Some(127) => {
                    return Err(format!(
                        "the DST exited with a usage error or did not start (shape {shape:?}): see the log"
                    ))
                }
                Some(code) => return Ok((Verdict::DstKilled, format!("exit {code}{}", shape_note(shape)))),
                None => {
                    return Ok((
                        Verdict::DstTimeout,
                        format!("past {} s{}", limit.as_secs(), shape_note(shape)),
                    ))
                }
            }
        }
        match run_bounded(&mut self.unit(id), self.unit_limit, log)? {
            Some(0) => Ok((Verdict::Survived, String::new())),
            Some(code) => Ok((Verdict::UnitKilled, format!("exit {code}"))),
            None => Ok((Verdict::UnitTimeout, format!("past {} s", self.unit_limit.as_secs()))),
        }
    }
}

/// One mutant judged, its log kept unless the DST killed it.
fn judge(runner: &Runner, options: &Options, id: u32, name: &str) -> Result<(Verdict, String), String> {
    let log_path = options.out.join(format!("log/{id}.txt"));
    let mut log = fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let _ = writeln!(log, "{name}");
    let verdict = runner.verdict(id, &mut log)?;
    drop(log);
    if verdict.0 == Verdict::DstKilled {
        // The kill's exit code is in outcomes.tsv; the DST's report of it is short.
        let _ = fs::remove_file(&log_path);
    }
    Ok(verdict)
}

fn shape_note(shape: &str) -> String {
    if shape.trim().is_empty() {
        String::new()
    } else {
        format!(", {}", shape.trim())
    }
}

fn run(options: &Options) -> Result<u8, String> {
    let root = std::env::current_dir().map_err(|e| e.to_string())?;
    if !root.join(".cargo/mutants.toml").is_file() {
        return Err("run from the repository root (no .cargo/mutants.toml here)".to_owned());
    }
    let work = root.join("target/schemata");
    let tree = work.join("tree");
    let target = work.join("target");
    fs::create_dir_all(options.out.join("log")).map_err(|e| format!("{}: {e}", options.out.display()))?;

    let listed = sh(Command::new("cargo")
        .current_dir(&root)
        .args(["mutants", "--list", "--json"])
        .args(&options.list_args)
        .stderr(Stdio::inherit()))?;
    if !listed.status.success() {
        return Err("cargo mutants --list failed: is cargo-mutants installed? \
                    (cargo install cargo-mutants --locked --version 27.1.0)"
            .to_owned());
    }
    let mutants: Vec<Mutant> =
        serde_json::from_slice(&listed.stdout).map_err(|e| format!("cargo mutants --list --json: {e}"))?;
    eprintln!("twinloop-schemata: {} mutants listed", mutants.len());

    let (schema, unit) = build_schema(&root, &tree, &target, &mutants, &options.out)?;
    let mut placed: Vec<u32> = schema
        .rewrites
        .values()
        .flat_map(|r| r.placed.iter().copied())
        .collect();
    placed.retain(|id| !schema.rejected.contains_key(id));
    placed.sort_unstable();
    let mut left_out: BTreeMap<u32, String> = schema
        .rewrites
        .values()
        .flat_map(|r| r.left_out.iter().cloned())
        .collect();
    for (id, why) in &schema.rejected {
        left_out.insert(*id, format!("does not build in the schema: {why}"));
    }
    let mut text = String::new();
    for (id, why) in &left_out {
        let _ = writeln!(
            text,
            "{id}\t{}\t{}",
            why.replace('\t', " "),
            mutants[*id as usize - 1].name
        );
    }
    write_if_changed(&options.out.join("left-out.tsv"), text.as_bytes())?;
    // A mutant whose file is not in the tree (cannot happen with cargo-mutants' list).
    let accounted = placed.len() + left_out.len();
    if accounted != mutants.len() {
        return Err(format!(
            "{} mutants listed, {accounted} placed or left out",
            mutants.len()
        ));
    }
    eprintln!(
        "twinloop-schemata: {} mutants in the schema, {} left out (left-out.tsv: run them with tools/mutants.sh --re)",
        placed.len(),
        left_out.len()
    );
    if options.build_only {
        return Ok(0);
    }

    // The baseline: no mutant. Its times bound each mutant's runs.
    let mut runner = Runner {
        sim: target.join("release/twinloop-sim"),
        unit: &unit,
        tree: &tree,
        options,
        dst_limits: Vec::new(),
        unit_limit: Duration::from_secs(600),
    };
    let mut log = fs::File::create(options.out.join("log/baseline.txt")).map_err(|e| e.to_string())?;
    for shape in &options.shapes {
        let started = Instant::now();
        let code = run_bounded(&mut runner.dst(shape, 0), Duration::from_secs(600), &mut log)?;
        if code != Some(0) {
            return Err(format!(
                "the DST fails without a mutant (shape {shape:?}): see {}/log/baseline.txt",
                options.out.display()
            ));
        }
        let took = started.elapsed();
        runner
            .dst_limits
            .push((took * options.timeout_factor).max(Duration::from_secs(10)));
        eprintln!(
            "twinloop-schemata: baseline DST{} {:.1} s",
            shape_note(shape),
            took.as_secs_f64()
        );
    }
    let started = Instant::now();
    if run_bounded(&mut runner.unit(0), Duration::from_secs(600), &mut log)? != Some(0) {
        return Err(format!(
            "the unit tests fail without a mutant: see {}/log/baseline.txt",
            options.out.display()
        ));
    }
    runner.unit_limit = (started.elapsed() * options.timeout_factor).max(Duration::from_secs(20));
    eprintln!(
        "twinloop-schemata: baseline unit tests {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Resume: the mutants already judged (by name: ids follow the listing).
    let outcomes_path = options.out.join("outcomes.tsv");
    let mut done: HashMap<String, String> = HashMap::new();
    if let Ok(old) = fs::read_to_string(&outcomes_path) {
        for line in old.lines() {
            let parts: Vec<&str> = line.splitn(4, '\t').collect();
            if let [_, verdict, _, name] = parts[..] {
                done.insert(name.to_owned(), verdict.to_owned());
            }
        }
    }
    let outcomes = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&outcomes_path)
        .map_err(|e| format!("{}: {e}", outcomes_path.display()))?;
    // Round-robin over the files: a run stopped early has measured every file alike.
    let mut queues: BTreeMap<&str, std::collections::VecDeque<u32>> = BTreeMap::new();
    for id in placed
        .iter()
        .copied()
        .filter(|id| options.only.as_ref().is_none_or(|only| only.contains(id)))
        .filter(|id| !done.contains_key(&mutants[*id as usize - 1].name))
    {
        queues
            .entry(mutants[id as usize - 1].file.as_str())
            .or_default()
            .push_back(id);
    }
    let mut todo = Vec::new();
    while queues.values().any(|q| !q.is_empty()) {
        todo.extend(queues.values_mut().filter_map(|q| q.pop_front()));
    }
    // `--jobs` workers take the mutants in turn; each line of outcomes.tsv is written
    // whole under the lock.
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let shared = std::sync::Mutex::new((outcomes, done, 0usize));
    let failure: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(id) = todo.get(n) else { return };
                if failure.lock().map_or(true, |f| f.is_some()) {
                    return;
                }
                let result = judge(&runner, options, *id, &mutants[*id as usize - 1].name);
                let Ok(mut shared) = shared.lock() else { return };
                let (outcomes, done, finished) = &mut *shared;
                match result {
                    Ok(verdict) => {
                        let name = &mutants[*id as usize - 1].name;
                        if let Err(e) = writeln!(outcomes, "{id}\t{}\t{}\t{name}", verdict.0.word(), verdict.1) {
                            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                            return;
                        }
                        done.insert(name.clone(), verdict.0.word().to_owned());
                        *finished += 1;
                        if *finished % 25 == 0 || *finished == todo.len() {
                            let rate = started.elapsed().as_secs_f64() / *finished as f64;
                            eprintln!(
                                "twinloop-schemata: {}/{} run ({:.1} s a mutant, about {:.0} min left)",
                                finished,
                                todo.len(),
                                rate,
                                rate * (todo.len() - *finished) as f64 / 60.0
                            );
                        }
                    }
                    Err(e) => {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let (_, done, _) = shared.into_inner().map_err(|_| "a worker panicked".to_owned())?;

    let report = report(&mutants, &placed, &done, &left_out);
    print!("{report}");
    write_if_changed(&options.out.join("report.txt"), report.as_bytes())?;
    Ok(if report.contains("\nsurvived:") { 2 } else { 0 })
}

/// The figures and the lists, in the form of `tools/mutants.sh report`.
fn report(
    mutants: &[Mutant],
    placed: &[u32],
    done: &HashMap<String, String>,
    left_out: &BTreeMap<u32, String>,
) -> String {
    let mut counts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for id in placed {
        let name = mutants[*id as usize - 1].name.as_str();
        let verdict = done.get(name).map(String::as_str).unwrap_or("not run");
        counts.entry(verdict).or_default().push(name);
    }
    let n = |k: &str| counts.get(k).map_or(0, Vec::len);
    let mut out = format!(
        "mutants {}: in the schema {}, killed by the DST {}, by the unit tests only {}, timeouts {}, survived {}, \
         not run {}; left out of the schema {} (tools/mutants.sh --re runs them)\n",
        mutants.len(),
        placed.len(),
        n("dst-killed"),
        n("unit-killed"),
        n("dst-timeout") + n("unit-timeout"),
        n("survived"),
        n("not run"),
        left_out.len()
    );
    for (title, keys) in [
        ("survived", &["survived"][..]),
        ("killed by the unit tests only", &["unit-killed"][..]),
        ("timeouts", &["dst-timeout", "unit-timeout"][..]),
        ("not run", &["not run"][..]),
    ] {
        let names: Vec<&&str> = keys.iter().flat_map(|k| counts.get(k).into_iter().flatten()).collect();
        if !names.is_empty() {
            let _ = writeln!(out, "{title}:");
            for name in names {
                let _ = writeln!(out, "  {name}");
            }
        }
    }
    if !left_out.is_empty() {
        let _ = writeln!(out, "left out of the schema:");
        for (id, why) in left_out {
            let _ = writeln!(out, "  {} ({why})", mutants[*id as usize - 1].name);
        }
    }
    out
}
