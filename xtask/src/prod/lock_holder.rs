//! Who holds a deploy lock, and whether that holder is provably gone.
//!
//! A holder is proved dead only where this machine can see it: the same operator machine, the same kernel boot
//! (`/proc/sys/kernel/random/boot_id`) and the same pid namespace (containers on one host share the boot id but
//! not their pids) — and then either its checkout's lock file is the one this process now holds (the kernel
//! released it: the process ended) or its pid is gone or is another process now (a different start time). A
//! holder on another machine is never judged: its process cannot be seen from here.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::prod::audit::Who;
use crate::term::human_age;
use crate::time::Timestamp;

/// What a deploy lock says about its holder (the local lock file's JSON, the engine object's labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    #[serde(flatten)]
    pub who: Who,
    pub pid: u32,
    pub since: String,
    pub action: String,
    pub tag: String,
    /// Where: the engine the holder acts on, as its operator named it (`local engine`, `ssh://user@host:port`).
    #[serde(default)]
    pub engine: String,
    /// Why (`--message`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The holder's local lock file (its checkout's `.drydock/lock-<target>`).
    #[serde(default)]
    pub record: String,
    /// The kernel boot of the holder's machine.
    #[serde(default)]
    pub boot: String,
    /// The holder's pid namespace (`pid:[4026531836]`).
    #[serde(default)]
    pub pidns: String,
    /// When the holder's process started (clock ticks after boot: tells a reused pid from the holder).
    #[serde(default)]
    pub started: u64,
}

/// This process's place: where a holder's pid can be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Here {
    pub machine: String,
    pub boot: String,
    pub pidns: String,
}

impl Here {
    pub fn now(machine: &str) -> Here {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|t| t.trim().to_string())
                .unwrap_or_default()
        };
        Here {
            machine: machine.to_string(),
            boot: read("/proc/sys/kernel/random/boot_id"),
            pidns: std::fs::read_link("/proc/self/ns/pid")
                .map(|l| l.display().to_string())
                .unwrap_or_default(),
        }
    }
}

/// When process `pid` started (field 22 of `/proc/<pid>/stat`), or `None` when there is no such process.
pub fn start_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// What can be said about a holder from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Gone, and why that is certain.
    Dead(String),
    /// Still running on this machine.
    Alive(String),
    /// On another machine (or namespace): nothing can be proved from here.
    Unproven,
}

impl Holder {
    /// `alice (Alice <a@x>) on laptop-a, pid 42, since …: prod-deploy sha-1 on ssh://…, "why"`.
    pub fn describe(&self) -> String {
        if self.pid == 0 && self.who.user.is_empty() {
            // An object of that name that drydock did not make (or made by hand).
            return "an unknown holder (its lock object carries no drydock.deploy-lock labels)".into();
        }
        let mut text = format!(
            "{} ({}) on {}, pid {}, since {}: {} {} on {}",
            self.who.user,
            self.who.git,
            self.who.machine,
            self.pid,
            self.since,
            self.action,
            self.tag,
            if self.engine.is_empty() {
                "local engine"
            } else {
                &self.engine
            }
        );
        if !self.message.is_empty() {
            text.push_str(&format!(", \"{}\"", self.message));
        }
        text
    }

    /// How long it has held the lock (`3m`, `2h 5m`), by this machine's clock; `?` when `since` does not parse.
    pub fn age(&self, now: Timestamp) -> String {
        Timestamp::parse_rfc3339(&self.since).map_or_else(|_| "?".into(), |t| human_age(now.0 - t.0))
    }

    /// Whether this holder is provably gone (see the module docs). `mine` is the lock file this process holds
    /// (none when `--force` went past a live holder of it); `start_of` answers for a pid of this machine.
    pub fn judge(&self, here: &Here, mine: Option<&Path>, start_of: impl Fn(u32) -> Option<u64>) -> Verdict {
        let same_place = !here.boot.is_empty()
            && !here.pidns.is_empty()
            && self.who.machine == here.machine
            && self.boot == here.boot
            && self.pidns == here.pidns;
        if !same_place {
            return Verdict::Unproven;
        }
        if mine.is_some_and(|m| Path::new(&self.record) == m) {
            return Verdict::Dead(format!(
                "its lock file {} is free again: pid {} ended without releasing it",
                self.record, self.pid
            ));
        }
        match start_of(self.pid) {
            None => Verdict::Dead(format!("pid {} no longer runs on this machine", self.pid)),
            Some(started) if self.started != 0 && started != self.started => {
                Verdict::Dead(format!("pid {} is another process now: the holder ended", self.pid))
            }
            Some(_) => Verdict::Alive(format!("pid {} still runs on this machine", self.pid)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> Holder {
        Holder {
            who: Who {
                user: "alice".into(),
                git: "Alice <a@example.com>".into(),
                machine: "laptop-a".into(),
            },
            pid: 4242,
            since: "2026-01-01T10:00:00Z".into(),
            action: "prod-deploy".into(),
            tag: "sha-1".into(),
            engine: "ssh://deploy@web1:22".into(),
            message: "hotfix".into(),
            record: "/home/alice/drydock/.drydock/lock-drydock-prod@web".into(),
            boot: "b-1".into(),
            pidns: "pid:[1]".into(),
            started: 777,
        }
    }

    fn here(machine: &str, boot: &str, pidns: &str) -> Here {
        Here {
            machine: machine.into(),
            boot: boot.into(),
            pidns: pidns.into(),
        }
    }

    #[test]
    fn only_a_holder_of_this_machine_boot_and_pid_namespace_is_judged() {
        let h = holder();
        let other = Some(Path::new("/elsewhere/.drydock/lock-x"));
        let running = |_| Some(777);
        let gone = |_| None;
        assert!(
            matches!(h.judge(&here("laptop-a", "b-1", "pid:[1]"), other, running), Verdict::Alive(w) if w.contains("pid 4242 still runs"))
        );
        assert!(
            matches!(h.judge(&here("laptop-a", "b-1", "pid:[1]"), other, gone), Verdict::Dead(w) if w.contains("pid 4242 no longer runs"))
        );
        assert!(
            matches!(h.judge(&here("laptop-a", "b-1", "pid:[1]"), other, |_| Some(9)), Verdict::Dead(w) if w.contains("another process"))
        );
        // Its own checkout's lock file, held by this process now: the kernel released it, the holder ended.
        let mine = Some(Path::new(&h.record));
        assert!(
            matches!(h.judge(&here("laptop-a", "b-1", "pid:[1]"), mine, running), Verdict::Dead(w) if w.contains("is free again"))
        );
        // --force went past a live holder of this checkout (its file is not ours): its pid decides.
        assert!(matches!(
            h.judge(&here("laptop-a", "b-1", "pid:[1]"), None, running),
            Verdict::Alive(_)
        ));
        // Another machine, another boot (a reboot, or the same hostname elsewhere), another container: unproven.
        for place in [
            here("laptop-b", "b-1", "pid:[1]"),
            here("laptop-a", "b-2", "pid:[1]"),
            here("laptop-a", "b-1", "pid:[2]"),
            here("laptop-a", "", ""),
        ] {
            assert_eq!(h.judge(&place, mine, gone), Verdict::Unproven, "{place:?}");
        }
        // An older holder without a start time: a running pid counts as alive.
        let old = Holder { started: 0, ..holder() };
        assert!(matches!(
            old.judge(&here("laptop-a", "b-1", "pid:[1]"), other, |_| Some(9)),
            Verdict::Alive(_)
        ));
    }

    #[test]
    fn describe_names_everything_and_age_is_human() {
        let h = holder();
        assert_eq!(
            h.describe(),
            "alice (Alice <a@example.com>) on laptop-a, pid 4242, since 2026-01-01T10:00:00Z: prod-deploy sha-1 on ssh://deploy@web1:22, \"hotfix\""
        );
        let now = Timestamp::parse_rfc3339("2026-01-01T12:05:00Z").unwrap();
        assert_eq!(h.age(now), "2h 5m");
        assert_eq!(
            Holder {
                since: "x".into(),
                ..holder()
            }
            .age(now),
            "?"
        );
        let unknown = crate::prod::engine_lock::holder_of(&Default::default());
        assert!(
            unknown.describe().starts_with("an unknown holder"),
            "{}",
            unknown.describe()
        );
    }

    #[test]
    fn this_process_has_a_start_time_and_a_place() {
        let me = std::process::id();
        assert!(start_of(me).is_some_and(|t| t > 0));
        assert_eq!(start_of(me), start_of(me));
        assert_eq!(start_of(u32::MAX), None);
        let place = Here::now("m");
        assert!(!place.boot.is_empty() && place.pidns.starts_with("pid:["), "{place:?}");
    }
}
