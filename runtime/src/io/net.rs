//! Socket set-up with socket2 (options mio does not expose), then handed to mio.

use super::config::{FramesConfig, LinkConfig, OutputsConfig};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener};

/// An error while opening a socket, naming which one.
#[derive(Debug)]
pub struct SocketError {
    /// Which socket (`frames`, `links[0] control`, `console`…) and its address.
    pub what: String,
    /// The OS error.
    pub error: io::Error,
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cannot open the {} socket: {}", self.what, self.error)
    }
}

impl std::error::Error for SocketError {}

fn named(what: impl Into<String>) -> impl FnOnce(io::Error) -> SocketError {
    let what = what.into();
    move |error| SocketError { what, error }
}

fn udp(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn buffers(socket: &Socket, recv_bytes: u32, send_bytes: u32) -> io::Result<()> {
    // The kernel caps these at net.core.rmem_max / wmem_max without an error; the effective
    // size is logged at debug level by the caller.
    if recv_bytes > 0 {
        socket.set_recv_buffer_size(recv_bytes as usize)?;
    }
    if send_bytes > 0 {
        socket.set_send_buffer_size(send_bytes as usize)?;
    }
    Ok(())
}

/// The socket input frames arrive on: unicast, or a multicast group shared by both nodes.
pub fn frames_socket(config: &FramesConfig) -> Result<mio::net::UdpSocket, SocketError> {
    let what = format!("frames ({})", config.bind);
    let open = || -> io::Result<Socket> {
        let socket = udp(config.bind)?;
        if config.multicast_group.is_some() {
            // Both nodes of a pair on one host (tests, a demo) bind the group's port.
            socket.set_reuse_address(true)?;
        }
        buffers(&socket, config.recv_buffer_bytes, 0)?;
        socket.bind(&config.bind.into())?;
        if let Some(group) = config.multicast_group {
            socket.join_multicast_v4(&group, &config.multicast_interface)?;
            // Linux delivers every joined group to a wildcard-bound socket unless told not to.
            #[cfg(target_os = "linux")]
            socket.set_multicast_all_v4(false)?;
        }
        Ok(socket)
    };
    let socket = open().map_err(named(what))?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// The two sockets of one sync link: control (with its DSCP) and bulk.
pub fn link_sockets(
    index: usize,
    config: &LinkConfig,
) -> Result<(mio::net::UdpSocket, mio::net::UdpSocket), SocketError> {
    let control_addr = config.bind;
    let bulk_addr = config.bulk_bind_addr().unwrap_or(config.bind);
    let control = (|| -> io::Result<Socket> {
        let socket = udp(control_addr)?;
        buffers(&socket, config.recv_buffer_bytes, config.send_buffer_bytes)?;
        if config.control_dscp != 0 && control_addr.is_ipv4() {
            socket.set_tos_v4(u32::from(config.control_dscp) << 2)?;
        }
        socket.bind(&control_addr.into())?;
        Ok(socket)
    })()
    .map_err(named(format!("links[{index}] control ({control_addr})")))?;
    let bulk = (|| -> io::Result<Socket> {
        let socket = udp(bulk_addr)?;
        buffers(&socket, config.recv_buffer_bytes, config.send_buffer_bytes)?;
        socket.bind(&bulk_addr.into())?;
        Ok(socket)
    })()
    .map_err(named(format!("links[{index}] bulk ({bulk_addr})")))?;
    Ok((
        mio::net::UdpSocket::from_std(control.into()),
        mio::net::UdpSocket::from_std(bulk.into()),
    ))
}

/// The socket outputs leave from.
pub fn outputs_socket(config: &OutputsConfig) -> Result<mio::net::UdpSocket, SocketError> {
    let open = || -> io::Result<Socket> {
        let socket = udp(config.bind)?;
        buffers(&socket, 0, config.send_buffer_bytes)?;
        socket.bind(&config.bind.into())?;
        Ok(socket)
    };
    let socket = open().map_err(named(format!("outputs ({})", config.bind)))?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// The console's listening socket (`SO_REUSEADDR`, so that a restarted node can listen
/// again while old connections linger in TIME_WAIT).
pub fn console_listener(addr: SocketAddr) -> Result<mio::net::TcpListener, SocketError> {
    tcp_listener(addr, "console")
}

/// A non-blocking TCP listener on `addr`; `what` names it in the error (`metrics`).
pub fn tcp_listener(addr: SocketAddr, what: &str) -> Result<mio::net::TcpListener, SocketError> {
    let open = || -> io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(16)?;
        Ok(socket)
    };
    let socket = open().map_err(named(format!("{what} ({addr})")))?;
    let listener: TcpListener = socket.into();
    Ok(mio::net::TcpListener::from_std(listener))
}
