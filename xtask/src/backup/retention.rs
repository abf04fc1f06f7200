//! `backups prune`: which backups a keep-last / daily / weekly / monthly policy keeps, decided by the
//! timestamp in each name (never by mtime).
//!
//! Only complete backups (data files plus manifest) count towards the policy; anything else is never
//! deleted by prune. The newest complete backup is always kept, whatever the policy says, so a policy can
//! never empty a service's directory (offen/docker-volume-backup#631 deleted all but one after missed days).

use std::collections::HashSet;

use serde::Serialize;

use super::name::Timestamp;
use crate::config::Retention;

/// One backup as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub timestamp: Timestamp,
    /// Complete (manifest present and readable). Incomplete backups are kept and never counted.
    pub complete: bool,
}

/// Why a backup is kept (empty = it is deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub keep: bool,
    pub reasons: Vec<&'static str>,
}

/// Plans a prune. Returns one decision per candidate, in the candidates' order (any order is accepted).
pub fn plan(candidates: &[Candidate], policy: &Retention) -> Vec<Decision> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    // Newest first; equal timestamps keep their input order.
    order.sort_by(|&a, &b| candidates[b].timestamp.cmp(&candidates[a].timestamp));
    let mut decisions = vec![
        Decision {
            keep: false,
            reasons: Vec::new()
        };
        candidates.len()
    ];
    let (mut days, mut weeks, mut months) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut seen_complete = 0u32;
    for &i in &order {
        let c = candidates[i];
        let d = &mut decisions[i];
        if !c.complete {
            d.reasons.push("incomplete: never pruned");
            continue;
        }
        if seen_complete == 0 {
            d.reasons.push("newest complete backup");
        }
        seen_complete += 1;
        if seen_complete <= policy.keep_last {
            d.reasons.push("last");
        }
        // The newest backup of each of the N most recent days / weeks / months that have backups.
        if days.len() < policy.keep_daily as usize && days.insert(c.timestamp.day()) {
            d.reasons.push("daily");
        }
        if weeks.len() < policy.keep_weekly as usize && weeks.insert(c.timestamp.week()) {
            d.reasons.push("weekly");
        }
        if months.len() < policy.keep_monthly as usize && months.insert(c.timestamp.month()) {
            d.reasons.push("monthly");
        }
    }
    for d in &mut decisions {
        d.keep = !d.reasons.is_empty();
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(last: u32, daily: u32, weekly: u32, monthly: u32) -> Retention {
        Retention {
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
        }
    }

    fn at(y: i64, m: u32, d: u32, h: u32) -> Candidate {
        Candidate {
            timestamp: Timestamp::from_civil(y, m, d, h, 0, 0),
            complete: true,
        }
    }

    fn kept(cands: &[Candidate], p: &Retention) -> Vec<String> {
        let mut v: Vec<String> = plan(cands, p)
            .iter()
            .zip(cands)
            .filter(|(d, _)| d.keep)
            .map(|(_, c)| c.timestamp.compact())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keep_last_counts_newest_first_whatever_the_input_order() {
        let cands = [
            at(2026, 1, 1, 0),
            at(2026, 1, 3, 0),
            at(2026, 1, 2, 0),
            at(2026, 1, 4, 0),
        ];
        assert_eq!(
            kept(&cands, &policy(2, 0, 0, 0)),
            ["20260103T000000Z", "20260104T000000Z"]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let cands = [
            at(2026, 1, 1, 1),
            at(2026, 1, 1, 23),
            at(2026, 1, 2, 5),
            at(2026, 1, 2, 6),
            at(2026, 1, 3, 0),
        ];
        assert_eq!(
            kept(&cands, &policy(1, 2, 0, 0)),
            ["20260102T060000Z", "20260103T000000Z"],
            "day 3 (also last) and the newest of day 2"
        );
        assert_eq!(
            kept(&cands, &policy(1, 3, 0, 0)),
            ["20260101T230000Z", "20260102T060000Z", "20260103T000000Z"]
        );
    }

    #[test]
    fn weekly_and_monthly_buckets() {
        // Mondays 2026-01-05, -12, -19; a Sunday 2026-01-18 belongs to the week of the 12th.
        let cands = [
            at(2026, 1, 5, 0),
            at(2026, 1, 12, 0),
            at(2026, 1, 18, 0),
            at(2026, 1, 19, 0),
            at(2025, 12, 31, 0),
        ];
        assert_eq!(
            kept(&cands, &policy(1, 0, 2, 0)),
            ["20260118T000000Z", "20260119T000000Z"],
            "the 18th is the newest of the previous week"
        );
        assert_eq!(
            kept(&cands, &policy(1, 0, 0, 2)),
            ["20251231T000000Z", "20260119T000000Z"]
        );
    }

    #[test]
    fn missed_days_do_not_wipe_older_backups() {
        // Backups stopped for a month: the daily policy still keeps the last 7 days that HAVE backups.
        let cands: Vec<Candidate> = (1..=10).map(|d| at(2026, 1, d, 2)).collect();
        let kept = kept(&cands, &policy(1, 7, 0, 0));
        assert_eq!(kept.len(), 7);
        assert_eq!(kept[0], "20260104T020000Z");
    }

    #[test]
    fn the_newest_complete_backup_is_always_kept() {
        let mut cands = vec![at(2026, 1, 1, 0), at(2026, 1, 2, 0)];
        // A zero policy (rejected by the config, but flags could try) still keeps one.
        let p = policy(0, 0, 0, 0);
        assert_eq!(kept(&cands, &p), ["20260102T000000Z"]);
        // An incomplete newer backup does not count as "the newest good one".
        cands.push(Candidate {
            timestamp: Timestamp::from_civil(2026, 1, 3, 0, 0, 0),
            complete: false,
        });
        let decisions = plan(&cands, &p);
        assert!(decisions[1].keep && decisions[1].reasons.contains(&"newest complete backup"));
        assert!(decisions[2].keep && decisions[2].reasons == vec!["incomplete: never pruned"]);
        assert!(!decisions[0].keep);
    }

    #[test]
    fn incomplete_backups_do_not_use_up_the_policy() {
        let cands = [
            Candidate {
                timestamp: Timestamp::from_civil(2026, 1, 5, 0, 0, 0),
                complete: false,
            },
            at(2026, 1, 4, 0),
            at(2026, 1, 3, 0),
            at(2026, 1, 2, 0),
        ];
        assert_eq!(
            kept(&cands, &policy(2, 0, 0, 0)),
            ["20260103T000000Z", "20260104T000000Z", "20260105T000000Z"]
        );
    }

    #[test]
    fn reasons_are_reported() {
        let cands = [at(2026, 1, 1, 0)];
        let d = &plan(&cands, &policy(7, 7, 4, 6))[0];
        assert_eq!(
            d.reasons,
            vec!["newest complete backup", "last", "daily", "weekly", "monthly"]
        );
    }

    #[test]
    fn empty_input_is_an_empty_plan() {
        assert!(plan(&[], &policy(7, 7, 4, 6)).is_empty());
    }
}
