//! Setting a shell up: the configuration checked, the state file read, every socket
//! opened and registered, the console, the hook runner and the node created
//! ([`Shell::new`](super::Shell::new)). Nothing runs until `Shell::run`.

use super::*;

impl<A: App> Shell<A> {
    /// Opens every socket and file and creates the node. Nothing runs until [`Shell::run`].
    pub fn new(config: ShellConfig, runtime: Config, app: A) -> Result<Self, ShellError> {
        runtime.validate().map_err(ShellError::Core)?;
        config.validate(runtime.links_total()).map_err(ShellError::Config)?;
        let name = if config.name.is_empty() {
            format!("node-{}", runtime.node_id)
        } else {
            config.name.clone()
        };
        // Before any thread starts (the state-file writer below): every thread inherits
        // the mask, so SIGHUP waits for the loop's signalfd instead of stopping the node.
        if let Err(e) = signals::block_hangup() {
            log::warn(format_args!("cannot block SIGHUP ({e}): it will stop the node"));
        }

        // The same checks as `--check` (node_main), in one function.
        let files = preflight::check_files(&config)?;
        for warning in &files.warnings {
            log::warn(format_args!("{warning}"));
        }
        let stored = files.stored;
        let epoch_file = EpochFile::new(&config.state_file);
        let state_error = |problem: String| ShellError::StateFile {
            path: config.state_file.clone(),
            problem,
        };
        // Write it back now: a state file that cannot be written must stop the node at
        // start, not at its first takeover.
        epoch_file
            .store(stored)
            .map_err(|e| state_error(format!("cannot write: {e}")))?;
        let state_file =
            StateWriter::start(epoch_file).map_err(|e| state_error(format!("cannot start its writer: {e}")))?;

        // The journal of the runs before this one, and its file for this run.
        let mut journal = Journal::new(config.console.events_max as usize);
        let journal_path = config.console.journal_file.clone().unwrap_or_else(|| {
            let mut name = config.state_file.as_os_str().to_owned();
            name.push(".journal");
            PathBuf::from(name)
        });
        let journal_file = if config.console.journal_bytes_max > 0 {
            let journal_error = |problem: String| ShellError::KeyFile {
                key: "console.journal_file",
                path: journal_path.clone(),
                problem: format!("{problem} (or set console.journal_bytes_max = 0 to keep the journal in memory only)"),
            };
            let loaded = journal::load(
                &journal_path,
                config.console.events_max as usize,
                config.console.journal_bytes_max,
            )
            .map_err(|e| journal_error(format!("cannot read: {e}")))?;
            if loaded.skipped > 0 {
                log::warn(format_args!(
                    "journal file {}: {} line(s) that are not events skipped (a line torn by a crash, or a damaged file)",
                    journal_path.display(),
                    loaded.skipped
                ));
            }
            journal.restore(loaded.events);
            Some(
                journal::JournalFile::open(&journal_path, config.console.journal_bytes_max)
                    .map_err(|e| journal_error(format!("cannot open for appending: {e}")))?,
            )
        } else {
            None
        };

        let console_key = files.console_key;
        let sync_key = files.sync_key.as_deref().map(crate::wire::AuthKey::derive);

        let poll = Poll::new().map_err(ShellError::Poll)?;
        let waker = Arc::new(Waker::new(poll.registry(), TOKEN_WAKER).map_err(ShellError::Poll)?);
        let timer = match timer::PreciseTimer::new(poll.registry(), TOKEN_TIMER) {
            Ok(timer) => Some(timer),
            Err(e) => {
                log::warn(format_args!("no precise timer ({e}): deadlines fire up to 1 ms late"));
                None
            }
        };
        let signals = match signals::Signals::new(poll.registry(), TOKEN_SIGNALS) {
            Ok(signals) => Some(signals),
            // SIGINT and SIGTERM blocked for the loop and not read: nothing would stop the node.
            Err(e) if signals::stop_signals_blocked() => {
                return Err(ShellError::Signal(format!(
                    "cannot read SIGINT and SIGTERM on the loop: {e}"
                )));
            }
            Err(e) => {
                log::warn(format_args!("cannot read SIGHUP on the loop ({e})"));
                None
            }
        };
        let mut frames = net::frames_socket(&config.frames)?;
        poll.registry()
            .register(&mut frames, TOKEN_FRAMES, Interest::READABLE)
            .map_err(ShellError::Poll)?;
        let mut links = Vec::with_capacity(config.links.len());
        for (i, link_config) in config.links.iter().enumerate() {
            let (mut control, mut bulk) = net::link_sockets(i, link_config)?;
            let registry = poll.registry();
            registry
                .register(&mut control, Token(TOKEN_LINKS + 2 * i), Interest::READABLE)
                .map_err(ShellError::Poll)?;
            registry
                .register(&mut bulk, Token(TOKEN_LINKS + 2 * i + 1), Interest::READABLE)
                .map_err(ShellError::Poll)?;
            links.push(Link {
                name: if link_config.name.is_empty() {
                    format!("link{i}")
                } else {
                    link_config.name.clone()
                },
                control,
                bulk,
                peer_control: link_config.peer,
                peer_bulk: link_config.bulk_peer_addr().unwrap_or(link_config.peer),
                ready: [false; 2],
                counters: LinkCounters::default(),
            });
        }
        let mut outputs = net::outputs_socket(&config.outputs)?;
        if config.outputs.acks {
            // The sinks' acks come back to the socket the outputs leave from.
            poll.registry()
                .register(&mut outputs, TOKEN_OUTPUTS, Interest::READABLE)
                .map_err(ShellError::Poll)?;
        }
        let metrics = match config.metrics.bind {
            Some(addr) => Some(
                metrics::MetricsServer::new(net::tcp_listener(addr, "metrics")?, poll.registry())
                    .map_err(ShellError::Poll)?,
            ),
            None => None,
        };
        let hmi = match config.hmi.listen {
            Some(addr) => Some(
                hmi_server::HmiServer::new(net::tcp_listener(addr, "hmi")?, poll.registry())
                    .map_err(ShellError::Poll)?,
            ),
            None => None,
        };
        if hmi.is_some() {
            // The register map comes from the program's declaration: a bad one is the
            // program's to fix, said before the node starts.
            crate::hmi::validate(app.hmi_tags()).map_err(|e| {
                ShellError::Config(ShellConfigError {
                    key: "hmi.listen".into(),
                    problem: format!("the program's HMI tags cannot be served: {e}"),
                })
            })?;
        }
        let console = if config.console.enabled {
            let listener = net::console_listener(config.console.bind)?;
            Some(
                Console::new(
                    listener,
                    poll.registry(),
                    TOKEN_CONSOLE,
                    console::Limits {
                        connections_max: config.console.connections_max as usize,
                        requests_per_s: config.console.requests_per_s,
                        idle_timeout: Duration::from_millis(config.console.idle_timeout_ms),
                        slow_reader_timeout: Duration::from_millis(config.console.slow_reader_timeout_ms),
                    },
                )
                .map_err(ShellError::Poll)?,
            )
        } else {
            None
        };

        let boot_id = clock::unix_ns();
        let seed = if config.seed == 0 { random_seed() } else { config.seed };
        // The core's time begins at the clock's start, which comes once the node is
        // built: `Node::new` writes its state buffer in full (`state_bytes_max`, 65 MiB
        // for a 64 MiB state), and a start-up wait counted from before that was spent by
        // the time the loop first listened — a node joining a running primary under load
        // decided it had heard nobody and started cold beside it (issue 20, `bench join
        // --state-mib 64`).
        let boot = Boot {
            now: Clock::START,
            seed,
            epoch_persisted: stored.epoch,
            epoch_reserved: stored.reserved,
        };
        let node_id = runtime.node_id;
        let mut node = Node::new(runtime, app, boot).map_err(ShellError::Core)?;
        let clock = Clock::start();
        if let Some(key) = sync_key {
            // The session must grow from one start to the next: the wall clock does.
            node = node.with_auth(key, boot_id);
        }
        if let Some(path) = &config.outputs.ack_key_file {
            let secret = preflight::read_key_file("outputs.ack_key_file", path)?;
            node = node.with_ack_key(crate::io_protocol::AckKey::derive(&secret));
        }
        let hooks = HookRunner::new(
            config.hook.command.clone(),
            Duration::from_millis(config.hook.timeout_ms),
            config.hook.queue_max as usize,
        );
        let notifier = systemd::Notifier::from_env(clock.now());
        let mut shell = Shell {
            node,
            name,
            poll,
            clock,
            boot_id,
            frames,
            frames_ready: false,
            frame_sources: config.frames.parsed_sources(),
            links,
            outputs,
            console,
            console_key,
            journal,
            journal_file,
            state_file,
            stored,
            hooks,
            hook_outcomes: Vec::new(),
            stop_requests: Arc::new(AtomicU32::new(0)),
            stop_seen: 0,
            waker,
            timer,
            signals,
            stopping: Stopping::Running,
            exit: None,
            previous_role: Role::Starting,
            notifier,
            metrics,
            hmi,
            lateness: metrics::Histogram::lateness(),
            frame_handling: metrics::Histogram::frame_handling(),
            counters: IoCounters::default(),
            frame_rates: FrameRates::default(),
            console_budget_ns: 0,
            console_budget_at: Instant::ZERO,
            buf: batch::RecvBatch::new(),
            sends: batch::SendBatch::new(),
            config,
        };
        let console_text = match shell.console_addr() {
            Some(addr) => format!("console {addr}"),
            None => "console off".into(),
        };
        let console_text = match shell.config.metrics.bind {
            Some(addr) => format!("{console_text}, metrics {addr}"),
            None => console_text,
        };
        let message = format!(
            "started: node {node_id}, persisted epoch {} (reserved {}), frames {}, {} link(s), {} sink(s), {console_text}{}",
            crate::EpochText(stored.epoch),
            crate::EpochText(stored.reserved),
            shell.config.frames.bind,
            shell.links.len(),
            shell.config.outputs.sinks.len(),
            if shell.node_has_auth() { ", sync MAC on" } else { "" },
        );
        log::info(format_args!("{message}"));
        let mut event = schema::Event::new(EventKind::Shell.into(), "started", &message);
        event.epoch_persisted = Some(stored.epoch);
        event.epoch_reserved = Some(stored.reserved);
        shell.journal_push(event);
        Ok(shell)
    }

    pub(super) fn node_has_auth(&self) -> bool {
        self.config.sync_key_file.is_some()
    }
}
