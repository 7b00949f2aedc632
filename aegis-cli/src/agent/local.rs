//! This host's fail2ban, as the agent drives it: bans in the shared jail,
//! unbans from every jail, allows as every jail's ignoreip, and the checks
//! fail2ban does not make before a ban.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use aegis_core::decision::{target_text, Change, Decision, PERSON_PREFIX};
use aegis_core::fail2ban::control::Control;
use aegis_core::geo::overlap;
use aegis_core::{Error, IpNetwork, Result};

/// How long one command may take: a ban action runs inside it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to this host's fail2ban, with what the checks need.
pub struct Local {
    control: Control,
    jail: String,
    jails: Vec<String>,
    /// Every jail's ignoreip that is an address or a network.
    ignored: Vec<IpNetwork>,
    /// This host's own addresses.
    own: Vec<IpNetwork>,
}

/// What applying some changes did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Commands that changed something, or would have had it not been so already.
    pub applied: u64,
    /// Bans not applied, each with why.
    pub refused: Vec<String>,
    /// Changes fail2ban refused, each with its answer.
    pub failed: Vec<String>,
}

impl Outcome {
    /// The decision's outcome on this host, and why when it was not applied.
    pub fn verdict(&self) -> (aegis_core::decision::Outcome, Option<String>) {
        use aegis_core::decision::Outcome::{Applied, Failed, Refused};
        // Kept short and on one line: fail2ban's answers can be neither.
        let shown = |why: &String| {
            why.chars()
                .take(300)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        };
        match (self.failed.first(), self.refused.first()) {
            (Some(why), _) => (Failed, Some(shown(why))),
            (None, Some(why)) => (Refused, Some(shown(why))),
            (None, None) => (Applied, None),
        }
    }
}

impl Local {
    /// Connects and checks that the shared jail exists.
    pub fn connect(socket: &Path, jail: &str, own: Vec<IpNetwork>) -> Result<Self> {
        let mut control = Control::connect(socket, COMMAND_TIMEOUT)?;
        control.ping()?;
        let mut local = Local {
            control,
            jail: jail.to_owned(),
            jails: Vec::new(),
            ignored: Vec::new(),
            own,
        };
        local.refresh()?;
        if !local.jails.contains(&local.jail) {
            return Err(Error::Fail2ban(format!(
                "fail2ban has no jail {jail:?} to apply shared bans in: `aegis fail2ban install --share` adds it (then `fail2ban-client reload`)"
            )));
        }
        Ok(local)
    }

    /// The shared jail's bantime, which should be -1 (the agent ends bans itself).
    pub fn shared_bantime(&mut self) -> Result<i64> {
        let jail = self.jail.clone();
        self.control.bantime(&jail)
    }

    /// Reads the jails and their ignoreip again.
    pub fn refresh(&mut self) -> Result<()> {
        self.jails = self.control.jails()?;
        let mut ignored = Vec::new();
        for jail in self.jails.clone() {
            ignored.extend(
                self.control
                    .ignored(&jail)?
                    .iter()
                    .filter_map(|entry| entry.parse::<IpNetwork>().ok()),
            );
        }
        self.ignored = ignored;
        Ok(())
    }

    /// Applies `changes` in order. A command fail2ban refuses is counted and
    /// the rest go on; a lost connection is an error, and the caller applies
    /// the same changes again once connected (each is harmless twice).
    pub fn apply(&mut self, changes: &[Change]) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let mut bans: Vec<&Decision> = Vec::new();
        for change in changes {
            match change {
                Change::Ban(d) => match self.refusal(d.target) {
                    Some(why) => {
                        outcome
                            .refused
                            .push(format!("#{} {}: {why}", d.id, d.target_text()))
                    }
                    None => bans.push(d),
                },
                Change::Refused(d, why) => {
                    outcome
                        .refused
                        .push(format!("#{} {}: {why}", d.id, d.target_text()));
                }
                other => {
                    // Bans gathered so far go first: the order of changes holds.
                    self.ban(&mut bans, &mut outcome)?;
                    self.apply_one(other, &mut outcome)?;
                }
            }
        }
        self.ban(&mut bans, &mut outcome)?;
        Ok(outcome)
    }

    /// Why this host must not ban `target`, if it must not.
    fn refusal(&self, target: IpNetwork) -> Option<String> {
        let (v4, v6) = PERSON_PREFIX;
        if target.prefix() < if target.is_ipv4() { v4 } else { v6 } {
            return Some(format!(
                "wider than a /{v4} or /{v6}: an agent bans no more at once"
            ));
        }
        if let Some(own) = self.own.iter().find(|own| overlap(**own, target)) {
            return Some(format!(
                "holds this host's own address {}",
                target_text(*own)
            ));
        }
        self.ignored
            .iter()
            .find(|ignored| overlap(**ignored, target))
            .map(|ignored| format!("in this host's ignoreip ({})", target_text(*ignored)))
    }

    fn ban(&mut self, bans: &mut Vec<&Decision>, outcome: &mut Outcome) -> Result<()> {
        if bans.is_empty() {
            return Ok(());
        }
        let targets: Vec<IpNetwork> = bans.iter().map(|d| d.target).collect();
        let jail = self.jail.clone();
        let result = self.control.ban(&jail, &targets).map(drop);
        self.count(result, bans.len() as u64, "ban", outcome)?;
        bans.clear();
        Ok(())
    }

    fn apply_one(&mut self, change: &Change, outcome: &mut Outcome) -> Result<()> {
        let result = match change {
            Change::Unban {
                target,
                everywhere: false,
            } => {
                let jail = self.jail.clone();
                self.control.unban(&jail, &[*target]).map(drop)
            }
            Change::Unban {
                target,
                everywhere: true,
            } => self.unban_everywhere(*target),
            Change::Allow(target) => self.each_jail(|c, jail| c.ignore(jail, &[*target])),
            Change::Disallow(target) => {
                self.each_jail(|c, jail| c.unignore(jail, *target).map(drop))
            }
            Change::Ban(_) | Change::Refused(..) => Ok(()),
        };
        let touched_ignoreip = matches!(change, Change::Allow(_) | Change::Disallow(_));
        self.count(result, 1, "change", outcome)?;
        if touched_ignoreip {
            self.refresh()?;
        }
        Ok(())
    }

    fn unban_everywhere(&mut self, target: IpNetwork) -> Result<()> {
        match single(target) {
            Some(ip) => self.control.unban_everywhere(&[ip]).map(drop),
            // `unban` takes addresses; a jail's `unbanip` also takes a network.
            None => self.each_jail(|c, jail| c.unban(jail, &[target]).map(drop)),
        }
    }

    fn each_jail(&mut self, mut f: impl FnMut(&mut Control, &str) -> Result<()>) -> Result<()> {
        for jail in self.jails.clone() {
            f(&mut self.control, &jail)?;
        }
        Ok(())
    }

    /// Counts a command's result; tells a refusal from a lost connection by asking again.
    fn count(
        &mut self,
        result: Result<()>,
        n: u64,
        what: &str,
        outcome: &mut Outcome,
    ) -> Result<()> {
        match result {
            Ok(()) => {
                outcome.applied += n;
                Ok(())
            }
            Err(e) => {
                self.control.ping()?;
                outcome.failed.push(format!("{what}: {e}"));
                Ok(())
            }
        }
    }

    /// Puts every allowed network back into every jail's ignoreip where it is
    /// missing (fail2ban forgets them on reload and restart); returns how many.
    pub fn restore_allows(&mut self, allowed: &[IpNetwork]) -> Result<u64> {
        let mut added = 0;
        for jail in self.jails.clone() {
            let present = self.control.ignored(&jail)?;
            let missing: Vec<IpNetwork> = allowed
                .iter()
                .filter(|a| !present.contains(&target_text(**a)))
                .copied()
                .collect();
            if !missing.is_empty() {
                self.control.ignore(&jail, &missing)?;
                added += missing.len() as u64;
            }
        }
        if added > 0 {
            self.refresh()?;
        }
        Ok(added)
    }
}

fn single(net: IpNetwork) -> Option<IpAddr> {
    (net.prefix() == if net.is_ipv4() { 32 } else { 128 }).then(|| net.ip())
}
