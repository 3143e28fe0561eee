//! Which nodes to talk to, and with which key: from `--config` (the nodes' own TOML
//! files: `console.bind`, `console.key_file`) and `--node ADDR`, and `--key-file`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use twinloop::node_main::config::NodeFile;
use twinloop::node_main::AnyAppSettings;

/// One node's console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The console address to connect to.
    pub addr: SocketAddr,
    /// The node's name from its configuration file, until the node says its own.
    pub name: Option<String>,
    /// `console.key_file` from its configuration file.
    pub key_file: Option<PathBuf>,
}

/// Resolves `--config` files (first, in order) then `--node` addresses (in order).
pub fn resolve(configs: &[PathBuf], nodes: &[String]) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for path in configs {
        targets.push(from_config(path)?);
    }
    for text in nodes {
        targets.push(Target {
            addr: parse_addr(text)?,
            name: None,
            key_file: None,
        });
    }
    if targets.is_empty() {
        return Err(
            "no node given: use --node ADDR or --config FILE, once per node (e.g. --config configs/node-a.toml \
             --config configs/node-b.toml)"
                .into(),
        );
    }
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|u| u.addr == t.addr) {
            return Err(format!("node {} is given twice", t.addr));
        }
    }
    Ok(targets)
}

/// `ip:port` or `host:port`.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !text.contains(':') {
        return Err(format!(
            "--node {text:?}: expected ip:port or host:port (e.g. 127.0.0.1:7401)"
        ));
    }
    text.to_socket_addrs()
        .map_err(|e| format!("--node {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--node {text:?}: the name has no address"))
}

fn from_config(path: &Path) -> Result<Target, String> {
    // Any program's node: its `[app]` table is the program's business, not read here.
    let file = NodeFile::<AnyAppSettings>::load(path, &[]).map_err(|e| format!("{}: {e}", path.display()))?;
    if !file.console.enabled {
        return Err(format!(
            "{}: the node's console is off (console.enabled = false)",
            path.display()
        ));
    }
    let name = (!file.node.name.is_empty()).then(|| file.node.name.clone());
    Ok(Target {
        addr: connect_addr(file.console.bind),
        name,
        key_file: file.console.key_file,
    })
}

/// The address to connect to for a listener bound to `bind`: a node listening on every
/// interface (`0.0.0.0`, `::`) is reached on loopback.
pub fn connect_addr(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// Reads a key file as the node does: its contents, whitespace trimmed, not empty.
pub fn read_key(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(format!("key file {} is empty", path.display()));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_shipped_configs_gives_console_and_key() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let targets = resolve(&[dir.join("node-a.toml"), dir.join("node-b.toml")], &[]).unwrap();
        assert_eq!(targets[0].addr, "127.0.0.1:7401".parse().unwrap());
        assert_eq!(targets[1].addr, "127.0.0.1:7402".parse().unwrap());
        assert_eq!(targets[0].name.as_deref(), Some("node-a"));
        let key_file = targets[0].key_file.as_ref().unwrap();
        assert!(key_file.is_absolute() && key_file.ends_with("configs/console.key"));
        assert!(!read_key(key_file).unwrap().contains('\n'));
    }

    #[test]
    fn resolve_config_of_another_program_reads_its_console() {
        // The conveyor's [app] table means nothing to twinctl (nor to the tank's loader).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let targets = resolve(&[dir.join("conveyor-a.toml")], &[]).unwrap();
        assert_eq!(targets[0].addr, "127.0.0.1:7431".parse().unwrap());
        assert_eq!(targets[0].name.as_deref(), Some("conveyor-a"));
    }

    #[test]
    fn resolve_rejects_nothing_and_duplicates() {
        assert!(resolve(&[], &[]).unwrap_err().starts_with("no node given"));
        let twice = ["127.0.0.1:7401".to_string(), "127.0.0.1:7401".to_string()];
        assert!(resolve(&[], &twice).unwrap_err().contains("twice"));
        assert!(resolve(&[], &["7401".to_string()]).unwrap_err().contains("ip:port"));
        let missing = resolve(&[PathBuf::from("/nonexistent/node.toml")], &[]).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn connect_addr_maps_unspecified_to_loopback() {
        assert_eq!(
            connect_addr("0.0.0.0:7401".parse().unwrap()),
            "127.0.0.1:7401".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            connect_addr("[::]:7401".parse().unwrap()),
            "[::1]:7401".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            connect_addr("10.0.0.5:7401".parse().unwrap()),
            "10.0.0.5:7401".parse::<SocketAddr>().unwrap()
        );
    }
}
