//! fail2ban's control socket, spoken directly: what `fail2ban-client` does,
//! without a Python process per command (one process per address takes over a
//! minute for 1,000 addresses; one connection, well under a second plus the
//! ban action's own time).
//!
//! A request is a pickled list of strings followed by `<F2B_END_COMMAND>`; the
//! reply is a pickled `(code, value)` (0 ok, 1 error) with the same end. One
//! connection carries any number of commands. fail2ban checks nothing it is
//! given (`banip` bans any string, `addignoreip` accepts any), so this client
//! takes addresses and networks as types and jail names it has checked.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_pickle::{DeOptions, SerOptions, Value};

use crate::decision::{canonical, target_text};
use crate::error::{Error, Result};

/// Where fail2ban's server listens unless its configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/fail2ban/fail2ban.sock";

/// Addresses per `banip` or `unbanip` command. fail2ban runs each ban's
/// action inside its single socket thread, so one long command makes every
/// other client (`fail2ban-client status`, other agents) wait for all of it.
pub const ADDRESSES_PER_COMMAND: usize = 100;

const END: &[u8] = b"<F2B_END_COMMAND>";
/// Replies larger than this are refused (a `banned` list of a million
/// addresses is about 20 MB).
const MAX_REPLY: usize = 64 << 20;

/// A connection to one fail2ban server's control socket.
#[derive(Debug)]
pub struct Control {
    stream: UnixStream,
    socket: PathBuf,
}

impl Control {
    /// Connects to the socket at `socket`; every later read and write waits
    /// at most `timeout` (a ban action that runs longer makes its command fail).
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self> {
        let shown = socket.display();
        let stream = UnixStream::connect(socket).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    "is fail2ban running, and is this its `socket` (fail2ban.local)?"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "the socket is root's: run as root, as fail2ban's own client must"
                }
                _ => "check that fail2ban is running",
            };
            Error::Fail2ban(format!("cannot connect to {shown} ({e}): {hint}"))
        })?;
        for set in [UnixStream::set_read_timeout, UnixStream::set_write_timeout] {
            set(&stream, Some(timeout))
                .map_err(|e| Error::Fail2ban(format!("{shown}: cannot set a timeout: {e}")))?;
        }
        Ok(Control {
            stream,
            socket: socket.to_owned(),
        })
    }

    /// Sends one command and returns its reply's value, or fail2ban's error.
    pub fn call(&mut self, command: &[&str]) -> Result<Value> {
        let request = serde_pickle::to_vec(&command, SerOptions::new())
            .map_err(|e| Error::Fail2ban(format!("cannot encode {command:?}: {e}")))?;
        if request.windows(END.len()).any(|w| w == END) {
            return Err(Error::Invalid(format!(
                "a fail2ban command cannot contain {}",
                String::from_utf8_lossy(END)
            )));
        }
        let io = |e: std::io::Error| {
            Error::Fail2ban(format!(
                "{}: {} failed: {e}",
                self.socket.display(),
                command.join(" ")
            ))
        };
        self.stream.write_all(&request).map_err(io)?;
        self.stream.write_all(END).map_err(io)?;
        let mut reply = Vec::new();
        let mut chunk = [0; 64 * 1024];
        while !reply.ends_with(END) {
            let n = self.stream.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            if reply.len() + n > MAX_REPLY {
                return Err(Error::Fail2ban(format!(
                    "{}: the reply to {} is larger than {MAX_REPLY} bytes",
                    self.socket.display(),
                    command.join(" ")
                )));
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        reply.truncate(reply.len() - END.len());
        // fail2ban pickles addresses and exceptions as calls of Python
        // classes: kept as the tuples of their arguments, not resolved.
        let value =
            serde_pickle::value_from_slice(&reply, DeOptions::new().keep_restore_state())
                .map_err(|e| Error::Fail2ban(format!("unreadable reply to {command:?}: {e}")))?;
        match value {
            Value::Tuple(mut parts) if parts.len() == 2 => {
                let value = parts.pop().unwrap_or(Value::None);
                match parts.pop() {
                    Some(Value::I64(0)) => Ok(value),
                    _ => Err(Error::Fail2ban(format!(
                        "refused {}: {}",
                        command.join(" "),
                        text(&value)
                    ))),
                }
            }
            other => Err(Error::Fail2ban(format!(
                "unexpected reply to {command:?}: {other:?}"
            ))),
        }
    }

    /// Checks that the server answers.
    pub fn ping(&mut self) -> Result<()> {
        match self.call(&["ping"])? {
            Value::String(s) if s == "pong" => Ok(()),
            other => Err(Error::Fail2ban(format!("ping answered {other:?}"))),
        }
    }

    /// The server's jails.
    pub fn jails(&mut self) -> Result<Vec<String>> {
        // [('Number of jail', n), ('Jail list', 'a, b')]
        let status = self.call(&["status"])?;
        let list = pairs(&status)
            .find(|(k, _)| k == "Jail list")
            .map(|(_, v)| text(v))
            .unwrap_or_default();
        Ok(list
            .split(',')
            .map(str::trim)
            .filter(|j| !j.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Bans `targets` (addresses, or networks for a firewall action that takes
    /// them) in `jail`, [`ADDRESSES_PER_COMMAND`] at a time; returns how many
    /// were not banned there already. fail2ban gives every one the jail's
    /// `bantime` and does not check its `ignoreip`: the caller must.
    pub fn ban(&mut self, jail: &str, targets: &[IpNetwork]) -> Result<u64> {
        self.per_address(&["set", checked(jail)?, "banip"], targets)
    }

    /// Unbans `targets` from `jail` (a network: every address banned inside
    /// it); returns how many bans ended.
    pub fn unban(&mut self, jail: &str, targets: &[IpNetwork]) -> Result<u64> {
        self.per_address(&["set", checked(jail)?, "unbanip"], targets)
    }

    /// Unbans addresses from every jail; returns how many bans ended.
    pub fn unban_everywhere(&mut self, ips: &[IpAddr]) -> Result<u64> {
        let targets: Vec<IpNetwork> = ips
            .iter()
            .map(|ip| IpNetwork::from(ip.to_canonical()))
            .collect();
        self.per_address(&["unban"], &targets)
    }

    /// The addresses banned in `jail` now.
    pub fn banned(&mut self, jail: &str) -> Result<Vec<IpAddr>> {
        let reply = self.call(&["get", checked(jail)?, "banned"])?;
        Ok(list(&reply)
            .iter()
            .filter_map(|v| text(v).parse().ok())
            .collect())
    }

    /// Adds `networks` to `jail`'s `ignoreip` until fail2ban reloads or restarts.
    pub fn ignore(&mut self, jail: &str, networks: &[IpNetwork]) -> Result<()> {
        let jail = checked(jail)?;
        for chunk in networks.chunks(ADDRESSES_PER_COMMAND) {
            let shown: Vec<String> = chunk.iter().copied().map(target_text).collect();
            let mut command = vec!["set", jail, "addignoreip"];
            command.extend(shown.iter().map(String::as_str));
            self.call(&command)?;
        }
        Ok(())
    }

    /// Takes `network` out of `jail`'s `ignoreip`; false when it was not there.
    pub fn unignore(&mut self, jail: &str, network: IpNetwork) -> Result<bool> {
        let jail = checked(jail)?;
        let shown = target_text(network);
        if !self.ignored(jail)?.contains(&shown) {
            return Ok(false);
        }
        self.call(&["set", jail, "delignoreip", &shown])?;
        Ok(true)
    }

    /// `jail`'s bantime in seconds (-1: permanent).
    pub fn bantime(&mut self, jail: &str) -> Result<i64> {
        match self.call(&["get", checked(jail)?, "bantime"])? {
            Value::I64(n) => Ok(n),
            other => Err(Error::Fail2ban(format!(
                "get {jail} bantime answered {other:?}"
            ))),
        }
    }

    /// `jail`'s `ignoreip`, as fail2ban shows it.
    pub fn ignored(&mut self, jail: &str) -> Result<Vec<String>> {
        let reply = self.call(&["get", checked(jail)?, "ignoreip"])?;
        Ok(list(&reply).iter().map(text).collect())
    }

    fn per_address(&mut self, command: &[&str], targets: &[IpNetwork]) -> Result<u64> {
        let mut changed = 0;
        for chunk in targets.chunks(ADDRESSES_PER_COMMAND) {
            let shown: Vec<String> = chunk
                .iter()
                .map(|net| target_text(canonical(*net)))
                .collect();
            let mut full = command.to_vec();
            full.extend(shown.iter().map(String::as_str));
            changed += match self.call(&full)? {
                Value::I64(n) => u64::try_from(n).unwrap_or(0),
                other => {
                    return Err(Error::Fail2ban(format!(
                        "{} answered {other:?}, not a count",
                        command.join(" ")
                    )))
                }
            };
        }
        Ok(changed)
    }
}

/// A jail name fail2ban's configuration accepts and a command cannot be
/// confused by.
fn checked(jail: &str) -> Result<&str> {
    let fine = !jail.is_empty()
        && jail.len() <= 64
        && jail
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(jail)
    } else {
        Err(Error::Invalid(format!(
            "jail name {jail:?} is not usable: use 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A value as text: strings as they are, an address (pickled as a call of
/// its class with the text as argument) as its text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Tuple(items) | Value::List(items) if items.len() == 1 => text(&items[0]),
        Value::I64(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// The items of a list or tuple reply.
fn list(v: &Value) -> &[Value] {
    match v {
        Value::List(items) | Value::Tuple(items) => items,
        _ => &[],
    }
}

/// The `(key, value)` pairs of a status reply.
fn pairs(v: &Value) -> impl Iterator<Item = (String, &Value)> {
    list(v).iter().filter_map(|pair| match list(pair) {
        [key, value] => Some((text(key), value)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jail_names_that_could_confuse_a_command_are_refused() {
        assert_eq!(checked("sshd").unwrap(), "sshd");
        assert_eq!(checked("aegis-shared_2.x").unwrap(), "aegis-shared_2.x");
        for bad in ["", "a b", "x<F2B_END_COMMAND>", "ü", &"j".repeat(65)] {
            assert!(matches!(checked(bad), Err(Error::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn replies_read_as_fail2ban_pickles_them() {
        // `get J banned` with one address: [IPAddr('198.51.100.201')] as
        // fail2ban 1.0.2 sends it (a class call, kept unresolved).
        let v = Value::List(vec![Value::Tuple(vec![Value::String(
            "198.51.100.201".into(),
        )])]);
        assert_eq!(text(&list(&v)[0]), "198.51.100.201");
        let status = Value::List(vec![
            Value::Tuple(vec![Value::String("Number of jail".into()), Value::I64(2)]),
            Value::Tuple(vec![
                Value::String("Jail list".into()),
                Value::String("sshd, aegis".into()),
            ]),
        ]);
        assert_eq!(pairs(&status).count(), 2);
    }
}
