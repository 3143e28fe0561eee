//! The console's requests turned into the node's answers and commands: what each
//! [`Request`] of the schema does, who may ask for a change (the console key, by MAC or
//! in clear on a loopback console), and the response line it gets.
//!
//! `super::console` frames lines and bounds what clients cost; `super::status` builds
//! the status and configuration the answers carry; this module sits between them and
//! the core (`Node::handle_command`). Every answer is one of the schema's types
//! (`super::schema`), so the wire is what docs/CONSOLE.md says.

use super::console::{self, ErrorCode, Request};
use super::journal::EventKind;
use super::schema::{self, AuthProof, AuthReply, CommandReply, CommandResult, EventsPage, Hello, StatusReply};
use super::{log, names, ShellError};
use crate::app::App;
use crate::node::{Command, CommandReply as CoreReply};
use serde_json::Value;

impl<A: App> super::Shell<A> {
    /// Answers one request line of the console (or says why it cannot).
    pub(super) fn console_request(&mut self, line: console::Line) -> Result<(), ShellError> {
        self.counters.console_requests += 1;
        let Some(console) = &mut self.console else {
            return Ok(());
        };
        let registry = self.poll.registry();
        let now = self.clock.now();
        let Some(text) = line.text.clone() else {
            let reply = console::error_line(
                &Value::Null,
                ErrorCode::LineTooLong,
                &format!("request line longer than {} bytes", console::LINE_BYTES_MAX),
            );
            console.reply(line.slot, &reply, now, registry);
            console.close_after_flush(line.slot, now, registry);
            return Ok(());
        };
        let (id, request) = match console::parse(&text) {
            Ok(parsed) => parsed,
            Err((id, code, message)) => {
                let reply = console::error_line(&id, code, &message);
                console.reply(line.slot, &reply, now, registry);
                return Ok(());
            }
        };
        if console.awaits_auth(line.slot) && !matches!(request, Request::Hello | Request::Auth { .. }) {
            let reply = console::error_line(
                &id,
                ErrorCode::AuthRequired,
                "console busy: this connection holds the slot kept for an operator with the console key; \
                 send `auth` first (docs/CONSOLE.md), or close idle clients",
            );
            console.reply(line.slot, &reply, now, registry);
            return Ok(());
        }
        let cmd = request.cmd();
        let reply = match request {
            Request::Hello => {
                let hello = Hello {
                    protocol: console::PROTOCOL_VERSION,
                    software: concat!("twinloop ", env!("CARGO_PKG_VERSION")).to_string(),
                    node_id: self.node.config().node_id.into(),
                    name: self.name.clone(),
                    boot_id: self.boot_id,
                    challenge: console.challenge(line.slot).map(|c| console::hex(&c)),
                };
                console::ok_line(&id, cmd, hello)
            }
            Request::Status => console::ok_line(&id, cmd, StatusReply { status: self.status() }),
            Request::Config => console::ok_line(&id, cmd, self.config_reply()),
            Request::Events { since, limit } => {
                let limit = limit.unwrap_or(console::EVENTS_LIMIT_MAX);
                let page = self.journal.since(
                    since.unwrap_or(0),
                    usize::try_from(limit).unwrap_or(usize::MAX),
                    console::EVENTS_PAGE_BYTES_MAX,
                );
                let page = EventsPage {
                    events: page.events,
                    next_since: page.next_since,
                    first_seq: page.first_seq,
                    truncated: page.truncated,
                    more: page.more,
                    boot_id: self.boot_id,
                };
                console::ok_line(&id, cmd, page)
            }
            Request::Auth { auth } => match self.authorize(None, Some(&auth), "auth", &line) {
                Err((code, message)) => console::error_line(&id, code, message),
                Ok(()) => {
                    if let Some(console) = &mut self.console {
                        console.set_authenticated(line.slot);
                    }
                    console::ok_line(&id, cmd, AuthReply { authenticated: true })
                }
            },
            Request::Switchover(proof) | Request::ForcePrimary(proof) | Request::Rejoin(proof) => {
                // `to` (switchover --to): a node id, or absent; other commands ignore it.
                let to = match (cmd, proof.to) {
                    ("switchover", Some(to)) => u8::try_from(to).ok().filter(|&t| t != 0).ok_or(()),
                    _ => Ok(0),
                };
                let subject = console::mac_subject(cmd, to.ok().filter(|&t| t != 0));
                match to {
                    Err(()) => console::error_line(
                        &id,
                        ErrorCode::BadRequest,
                        "`to` must be a node id, 1..=255 (or absent: the backup)",
                    ),
                    Ok(to) => match self.authorize(proof.key.as_deref(), proof.auth.as_ref(), &subject, &line) {
                        Err((code, message)) => console::error_line(&id, code, message),
                        Ok(()) => {
                            let command = match cmd {
                                "switchover" if to != 0 => Command::SwitchoverTo(to),
                                "switchover" => Command::Switchover,
                                "rejoin" => Command::Rejoin,
                                _ => Command::ForcePrimary,
                            };
                            self.operator_command(&id, &line, cmd, command)?
                        }
                    },
                }
            }
        };
        if let Some(console) = &mut self.console {
            console.reply(line.slot, &reply, self.clock.now(), self.poll.registry());
        }
        Ok(())
    }

    /// Carries out an authenticated operator's command (`switchover`, `force-primary`,
    /// `rejoin`): the core's reply, one log line, a journal event and the console's answer
    /// (`result`, `reason`, `message`).
    fn operator_command(
        &mut self,
        id: &Value,
        line: &console::Line,
        cmd: &'static str,
        command: Command,
    ) -> Result<String, ShellError> {
        let switchover = matches!(command, Command::Switchover | Command::SwitchoverTo(_));
        let reply = self.node.handle_command(self.clock.now(), command);
        self.drain()?;
        let (result, reason) = match reply {
            CoreReply::Started => (CommandResult::Started, None),
            CoreReply::Forwarded if switchover => (CommandResult::Forwarded, None),
            CoreReply::Forwarded => (CommandResult::Started, None),
            CoreReply::Refused(r) => (CommandResult::Refused, Some(r)),
        };
        let message = match (reason, switchover) {
            (Some(r), _) => format!("{cmd} refused: {}", names::refuse_text(r)),
            (None, true) if result == CommandResult::Started => "switchover started".to_string(),
            (None, true) => "switchover forwarded to the primary".to_string(),
            (None, false) => format!("{cmd} done"),
        };
        // A switchover is routine; force-primary and rejoin override the node's own judgement.
        if switchover {
            log::info(format_args!("console {}: {message}", line.peer));
        } else {
            log::warn(format_args!("console {}: {message}", line.peer));
        }
        let reply = CommandReply {
            result,
            reason: reason.map(schema::Refusal::from),
            message,
        };
        let name = if switchover {
            "switchover_command"
        } else {
            "operator_command"
        };
        let mut event = schema::Event::new(EventKind::Shell.into(), name, &reply.message);
        event.result = Some(reply.result);
        event.reason = Some(reply.reason.map(|r| r.name().to_string()));
        event.client = Some(line.peer.to_string());
        self.journal_push(event);
        Ok(console::ok_line(id, cmd, reply))
    }

    /// Checks the authentication of the command `cmd`, which changes state (or is
    /// `auth`): a MAC over the connection's challenge with a fresh sequence number (the
    /// MAC covers `cmd`), or, on a loopback console only, the key itself.
    fn authorize(
        &mut self,
        key: Option<&str>,
        auth: Option<&AuthProof>,
        cmd: &str,
        line: &console::Line,
    ) -> Result<(), (ErrorCode, &'static str)> {
        let Some(configured) = &self.console_key else {
            return Err((
                ErrorCode::NoKeyConfigured,
                "no console.key_file is configured: commands that change state are disabled",
            ));
        };
        let Some(console) = &mut self.console else {
            return Err((ErrorCode::BadKey, "no console"));
        };
        let mut problem = "wrong or missing key";
        match (auth, key) {
            (Some(AuthProof { seq, mac }), _) => {
                let expected = console
                    .challenge(line.slot)
                    .map(|c| console::hex(&console::request_mac(configured, &c, *seq, cmd)));
                if expected.is_some_and(|e| console::key_matches(e.as_bytes(), mac.to_ascii_lowercase().as_bytes())) {
                    if console.advance_auth_seq(line.slot, *seq) {
                        return Ok(());
                    }
                    problem = "replayed request: auth.seq must increase on a connection";
                }
            }
            (None, Some(k)) if console::key_matches(configured, k.as_bytes()) => {
                if self.config.console.bind.ip().is_loopback() {
                    return Ok(());
                }
                problem = "the key in clear is accepted on a loopback console only: use auth";
            }
            (None, _) => {}
        }
        self.counters.console_bad_key += 1;
        let message = format!("console {}: {cmd} refused: {problem}", line.peer);
        log::warn(format_args!("{message}"));
        let mut event = schema::Event::new(EventKind::Shell.into(), "console_bad_key", &message);
        event.client = Some(line.peer.to_string());
        self.journal_push(event);
        Err((ErrorCode::BadKey, problem))
    }
}
