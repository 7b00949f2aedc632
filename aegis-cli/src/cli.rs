//! Command-line definitions.

use std::ffi::OsString;
use std::path::PathBuf;

use aegis_core::calendar::Per;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Aegis: long-term, searchable memory of fail2ban's bans.
#[derive(Debug, Parser)]
#[command(name = "aegis", version = aegis_core::VERSION, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub globals: Globals,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// This process's command line. fail2ban's action line (`aegis ban|unban
    /// …`) is parsed by a command that knows only those two: the call fail2ban
    /// waits on then builds none of the other subcommands' arguments, most of
    /// the parser's start-up. A global option before the subcommand takes the
    /// full parser, with the same result.
    pub fn from_env() -> Self {
        let args: Vec<OsString> = std::env::args_os().collect();
        if matches!(args.get(1).and_then(|a| a.to_str()), Some("ban" | "unban")) {
            let line = ActionLine::parse_from(args);
            return Cli {
                globals: line.globals,
                command: Command::Action(line.action),
            };
        }
        Cli::parse_from(args)
    }
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Globals {
    /// Configuration file (default: /etc/aegis/aegis.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Storage URL, e.g. sqlite:///var/lib/aegis/aegis.db (overrides config and AEGIS_STORAGE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub storage: Option<String>,
    /// Geolocation databases.
    #[command(flatten)]
    pub geo: GeoArgs,
}

/// [`Cli`] cut down to fail2ban's action line.
#[derive(Debug, Parser)]
#[command(name = "aegis", version = aegis_core::VERSION, about, after_help = EXIT_CODES)]
struct ActionLine {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    action: Action,
}

const EXIT_CODES: &str = "Exit codes: 0 success (a ban that could only be spooled is a success), \
1 storage or I/O failure, 2 invalid input or usage, 3 configuration error, \
4 an event could be neither stored nor spooled.";

/// What fail2ban's actions call.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Record a ban (called by fail2ban's actionban).
    Ban(EventArgs),
    /// Record an unban (called by fail2ban's actionunban).
    Unban(EventArgs),
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// `ban` and `unban`.
    #[command(flatten)]
    Action(Action),
    /// Store every spooled event now (after any writer at work finishes).
    Flush,
    /// Headline figures, bans per day and top offenders.
    Stats(StatsArgs),
    /// Rank addresses, countries, jails, hosts, ASNs or networks.
    Top(TopArgs),
    /// Everything known about one address.
    Ip {
        /// The address.
        ip: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List events.
    Events(EventsArgs),
    /// Delete events older than a given age.
    Prune {
        /// Age, e.g. 365d or 52w.
        #[arg(long, value_name = "AGE")]
        older_than: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ban, unban or allow an address or a network on every host (or some).
    Decide(DecideArgs),
    /// List the decisions, or revoke one.
    Decisions(DecisionsArgs),
    /// Apply the store's decisions to this host's fail2ban (a service), or show how it does.
    Agent(AgentArgs),
    /// Import fail2ban's history.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Geolocation: look addresses up, show the sources, backfill stored events.
    #[command(subcommand)]
    Geo(GeoCommand),
    /// Set up fail2ban to report to Aegis.
    #[command(subcommand)]
    Fail2ban(Fail2banCommand),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// The tags of one fail2ban ban, by name or in the positional form
/// `IP PROTOCOL PORT FAILURES TIME`. Tags fail2ban left literal (such as `<port>`) count as absent.
///
/// Values are taken as given, invalid UTF-8 and leading dashes included: an
/// attacker picks some of them, and none may cost the ban its record.
#[derive(Debug, Args, Default)]
pub struct EventArgs {
    /// Positional form: IP PROTOCOL PORT FAILURES TIME.
    #[arg(value_name = "TAG", num_args = 0..=5)]
    pub positional: Vec<OsString>,
    /// The address (fail2ban tag ip).
    #[arg(long, allow_hyphen_values = true)]
    pub ip: Option<OsString>,
    /// The jail (fail2ban tag name; default "unknown").
    #[arg(long, allow_hyphen_values = true)]
    pub jail: Option<OsString>,
    /// Protocol (fail2ban tag protocol).
    #[arg(long, allow_hyphen_values = true)]
    pub protocol: Option<OsString>,
    /// Port as given: 22, ssh, http,https, 0:65535 (fail2ban tag port).
    #[arg(long, allow_hyphen_values = true)]
    pub port: Option<OsString>,
    /// Failures that led to the ban (fail2ban tag failures).
    #[arg(long, allow_hyphen_values = true)]
    pub failures: Option<OsString>,
    /// Epoch seconds of the last failure (fail2ban tag time; default: now).
    #[arg(long, allow_hyphen_values = true)]
    pub time: Option<OsString>,
    /// Ban length in seconds, -1 for permanent (fail2ban tag bantime).
    #[arg(long, allow_hyphen_values = true)]
    pub bantime: Option<OsString>,
    /// How often fail2ban banned this address (fail2ban tag bancount).
    #[arg(long, allow_hyphen_values = true)]
    pub bancount: Option<OsString>,
    /// 1 when fail2ban re-applies a ban on restart (fail2ban tag restored).
    #[arg(long, allow_hyphen_values = true)]
    pub restored: Option<OsString>,
    /// Matched log lines, newline-separated (fail2ban tag matches).
    #[arg(long, allow_hyphen_values = true)]
    pub matches: Option<OsString>,
    /// The user name the filter captured (fail2ban tag F-USER).
    #[arg(long, allow_hyphen_values = true)]
    pub user: Option<OsString>,
    /// Reporting host (default: config `host`, else this machine's name).
    #[arg(long, allow_hyphen_values = true)]
    pub host: Option<OsString>,
}

/// The scope of a statistic.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Start: an age (7d, 24h, 2w), a date (2026-11-01) or RFC 3339 time.
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// End (default: now), same forms as --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this reporting host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only this jail.
    #[arg(long)]
    pub jail: Option<String>,
    /// Only addresses in this country (two-letter code).
    #[arg(long)]
    pub country: Option<String>,
}

/// `aegis stats`
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The range.
    #[command(flatten)]
    pub range: RangeArgs,
    /// Bans per day, week, month or year (default: per day up to 90 days, per
    /// week up to 26 weeks, then per month, then per year; JSON: per day).
    #[arg(long, value_enum)]
    pub per: Option<Per>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `aegis top` ranks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TopKey {
    /// Addresses.
    Ip,
    /// Countries.
    Country,
    /// Jails.
    Jail,
    /// Reporting hosts.
    Host,
    /// Autonomous systems.
    Asn,
    /// /24 and /64 networks.
    Network,
}

/// `aegis top`
#[derive(Debug, Args)]
pub struct TopArgs {
    /// What to rank.
    #[arg(long, value_enum, default_value = "ip")]
    pub by: TopKey,
    /// Rows to show.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// The range.
    #[command(flatten)]
    pub range: RangeArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `aegis events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this address.
    #[arg(long)]
    pub ip: Option<String>,
    /// Only addresses in this network (CIDR).
    #[arg(long, value_name = "CIDR")]
    pub network: Option<String>,
    /// Only this jail.
    #[arg(long)]
    pub jail: Option<String>,
    /// Only this reporting host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only this country (two-letter code).
    #[arg(long)]
    pub country: Option<String>,
    /// Only bans or only unbans.
    #[arg(long, value_parser = ["ban", "unban"])]
    pub kind: Option<String>,
    /// Start, as for `stats --since` (default: everything).
    #[arg(long)]
    pub since: Option<String>,
    /// End, as for `stats --until`.
    #[arg(long)]
    pub until: Option<String>,
    /// Rows to show.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Rows to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Oldest first.
    #[arg(long)]
    pub asc: bool,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV.
    #[arg(long)]
    pub csv: bool,
}

/// What a person decides.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecideAction {
    /// Ban in every host's shared jail.
    Ban,
    /// Unban from every jail of every host.
    Unban,
    /// Never ban: an ignoreip on every jail of every host.
    Allow,
}

/// `aegis decide`
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// What to do.
    #[arg(value_enum)]
    pub action: DecideAction,
    /// An address or a network (CIDR).
    pub target: String,
    /// How long a ban or allow lasts, e.g. 5s, 1h, 7d (default: permanent).
    #[arg(long = "for", value_name = "AGE")]
    pub duration: Option<String>,
    /// Only these hosts, comma-separated (default: every host).
    #[arg(long, value_delimiter = ',', value_name = "HOST,…")]
    pub hosts: Vec<String>,
    /// Why, for the history and the other operators.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Decide even what is refused as unsafe (wider than /16 or /48, private or
    /// reserved ranges, a reporting host's own address).
    #[arg(long)]
    pub force: bool,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `aegis decisions`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DecisionsArgs {
    /// Revoke one instead of listing.
    #[command(subcommand)]
    pub command: Option<DecisionsCommand>,
    /// Only the bans and allows in force now.
    #[arg(long)]
    pub active: bool,
    /// The latest this many (default 100).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `aegis decisions …`
#[derive(Debug, Subcommand)]
pub enum DecisionsCommand {
    /// End a ban or an allow before its time, on every host it applies to.
    Revoke {
        /// The decision's id.
        id: u64,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print the new decision as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `aegis agent`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentArgs {
    /// Show what the agents did instead of running one.
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Apply what is decided, then stop (instead of following the store).
    #[arg(long)]
    pub once: bool,
}

/// `aegis agent …`
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Every host's agent: when it last reported, what it applied, refused and failed.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `aegis import …`
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import fail2ban's SQLite database (`bans` table).
    #[command(name = "fail2ban-db")]
    Fail2banDb {
        /// The database.
        #[arg(default_value = aegis_core::fail2ban::DEFAULT_DB)]
        path: PathBuf,
        /// Host the bans happened on (default: this machine).
        #[arg(long)]
        host: Option<String>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import fail2ban.log files (rotated .gz ones too).
    Log {
        /// Log files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Time zone the log was written in (default: the system's, else config `timezone`).
        #[arg(long)]
        timezone: Option<String>,
        /// Host the bans happened on (default: this machine).
        #[arg(long)]
        host: Option<String>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `aegis geo …`
#[derive(Debug, Subcommand)]
pub enum GeoCommand {
    /// Show what each source says about addresses, and which answer is stored.
    Lookup {
        /// Addresses.
        #[arg(required = true)]
        ips: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the sources in use, their data dates and the attribution.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// (Re)locate every stored address, e.g. after adding or updating a database.
    Backfill {
        /// Also ask the online provider for what local data lacks (or set online = true in the geo section).
        #[arg(long)]
        online: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `aegis fail2ban …`
#[derive(Debug, Subcommand)]
pub enum Fail2banCommand {
    /// Install the `aegis` action into fail2ban's action.d.
    Install {
        /// fail2ban's action directory.
        #[arg(long, default_value = "/etc/fail2ban/action.d")]
        dir: PathBuf,
        /// Show what would be written without writing.
        #[arg(long)]
        dry_run: bool,
        /// Replace existing, different files.
        #[arg(long)]
        force: bool,
        /// Also install the jail shared bans are applied in and the agent's systemd unit.
        #[arg(long)]
        share: bool,
        /// fail2ban's jail directory, for --share (default: jail.d beside --dir).
        #[arg(long, value_name = "DIR")]
        jail_dir: Option<PathBuf>,
        /// systemd's unit directory, for --share.
        #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
    },
}

/// Geolocation databases, for every command that locates addresses.
#[derive(Debug, Args, Default)]
pub struct GeoArgs {
    /// MaxMind-format city database (overrides city_db in the geo section).
    #[arg(long, global = true, value_name = "FILE")]
    pub city_db: Option<PathBuf>,
    /// MaxMind-format ASN database (overrides asn_db in the geo section).
    #[arg(long, global = true, value_name = "FILE")]
    pub asn_db: Option<PathBuf>,
}

/// `aegis config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print an example configuration file.
    Example,
    /// Print the effective settings (passwords hidden).
    Show,
}
