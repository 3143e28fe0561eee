//! twinctl's console client is the library's ([`twinloop::io::client`]): one place for
//! the connection, `hello`, the challenge/MAC authentication and typed requests.

pub use twinloop::io::client::{Client, ClientError, ErrorKind};
