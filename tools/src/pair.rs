//! The nodes twinctl was pointed at, each with its console client.

use crate::client::Client;
use crate::health::{recent_alarm, NodeView};
use crate::targets::Target;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One node: its client and what its configuration file said.
pub struct Member {
    /// The console client.
    pub client: Client,
    /// `node.name` from `--config`, used until the node says its own name.
    pub config_name: Option<String>,
    /// `console.key_file` from `--config`.
    pub key_file: Option<PathBuf>,
}

impl Member {
    /// The node's name as best known: from the node, its file, or its address.
    pub fn label(&self) -> String {
        match (self.client.hello(), &self.config_name) {
            (Some(hello), _) => hello.name.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => self.client.addr().to_string(),
        }
    }
}

/// The nodes, in the order given.
pub struct Pair {
    /// One per node.
    pub members: Vec<Member>,
}

impl Pair {
    /// Clients for `targets` (nothing is connected yet).
    pub fn new(targets: Vec<Target>, timeout: Duration) -> Pair {
        Pair {
            members: targets
                .into_iter()
                .map(|t| Member {
                    client: Client::new(t.addr, timeout),
                    config_name: t.name,
                    key_file: t.key_file,
                })
                .collect(),
        }
    }

    /// Gives each client its node's console key (`key_file`, else the node's
    /// `console.key_file` from its `--config`), read best effort: with a key, connections
    /// authenticate, so that a node whose other console slots are all taken still
    /// answers on the slot it keeps for an operator.
    pub fn use_keys(&mut self, key_file: Option<&Path>) {
        for member in &mut self.members {
            let file = key_file.map(Path::to_path_buf).or_else(|| member.key_file.clone());
            member
                .client
                .set_key(file.and_then(|f| crate::targets::read_key(&f).ok()));
        }
    }

    /// Asks every node for its status. With `alarm_window_ms`, also reads the journal of
    /// a node that has raised alarms, to tell whether one is recent (see
    /// [`recent_alarm`]).
    pub fn observe(&mut self, alarm_window_ms: Option<u64>) -> Vec<NodeView> {
        self.members
            .iter_mut()
            .map(|m| {
                let addr = m.client.addr();
                match m.client.status_with_raw() {
                    Ok((status, raw)) => {
                        let mut view = NodeView::answered(addr, status, raw);
                        if let (Some(window), Some(status)) = (alarm_window_ms, view.status.as_ref()) {
                            view.recent_alarm = match recent_alarm(&mut m.client, status, window) {
                                Ok(alarm) => alarm,
                                Err(e) => Some(format!("unknown (the journal could not be read: {e})")),
                            };
                        }
                        view
                    }
                    Err(e) => NodeView::failed(addr, m.label(), e.to_string()),
                }
            })
            .collect()
    }
}
