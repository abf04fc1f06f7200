//! When each step of `cargo xtask ci` runs: up to `--jobs` at a time, each as soon as the steps it needs have
//! passed and the earlier steps of its lane have ended.
//!
//! Most of `ci`'s time is spent waiting (cron ticks, `archive_timeout`, rolling updates, SSH nodes), so steps
//! that share nothing overlap. Steps that share something (the CI stack's compose project, this engine's
//! production project and deploy lock) name the same lane: a lane runs one step at a time, in plan order,
//! whatever `--jobs` says. With one job the steps run exactly in plan order. Pure logic: the caller says how
//! a step runs and what to show when one starts or ends.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Instant;

/// One step as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Skipped unless these steps (earlier indexes) passed.
    pub needs: Vec<usize>,
    /// Steps of one lane never overlap, and run in plan order.
    pub lane: Option<&'static str>,
    /// Runs even when a step it needs failed (clean-up).
    pub always: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// What happened to a step, for the caller to show.
#[derive(Debug)]
pub enum Event<'a> {
    Started(usize),
    Skipped(usize),
    /// Its seconds, and the failure's report (`None`: passed).
    Finished(usize, f64, Option<&'a str>),
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub outcome: Outcome,
    pub seconds: f64,
    /// When it began, in seconds from the start of the run.
    pub started_at: f64,
    /// The failure's report.
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Done(Outcome),
}

/// Runs every node once with `run(i)` (in its own thread, at most `jobs` at a time) and returns each one's
/// outcome, seconds and failure, in plan order. `show` sees every start, skip and end, from the calling thread, so
/// what it prints never interleaves.
pub fn run_all<F>(nodes: &[Node], jobs: usize, run: F, mut show: impl FnMut(Event)) -> Vec<Ran>
where
    F: Fn(usize) -> Result<(), String> + Sync,
{
    let jobs = jobs.max(1);
    let mut state = vec![State::Waiting; nodes.len()];
    let mut ran: Vec<Ran> = (0..nodes.len())
        .map(|_| Ran {
            outcome: Outcome::Skipped,
            seconds: 0.0,
            started_at: 0.0,
            failure: None,
        })
        .collect();
    let begin = Instant::now();
    let (done_tx, done_rx) = mpsc::channel::<(usize, f64, Result<(), String>)>();
    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            // Start (or skip) every step that can go, earliest first, until nothing changes.
            let mut changed = true;
            while changed {
                changed = false;
                for i in 0..nodes.len() {
                    if state[i] != State::Waiting || !ready(nodes, &state, i) {
                        continue;
                    }
                    let blocked = nodes[i].needs.iter().any(|&n| state[n] != State::Done(Outcome::Passed));
                    if blocked && !nodes[i].always {
                        state[i] = State::Done(Outcome::Skipped);
                        show(Event::Skipped(i));
                        changed = true;
                    } else if running < jobs {
                        state[i] = State::Running;
                        ran[i].started_at = begin.elapsed().as_secs_f64();
                        running += 1;
                        show(Event::Started(i));
                        let done = done_tx.clone();
                        let run = &run;
                        scope.spawn(move || {
                            let t = Instant::now();
                            // A panic is this step's failure, never a scheduler waiting for ever.
                            let result = catch_unwind(AssertUnwindSafe(|| run(i)))
                                .unwrap_or_else(|_| Err("the step panicked".to_string()));
                            let _ = done.send((i, t.elapsed().as_secs_f64(), result));
                        });
                        changed = true;
                    }
                }
            }
            if running == 0 {
                break;
            }
            let Ok((i, secs, result)) = done_rx.recv() else {
                break;
            };
            running -= 1;
            let outcome = if result.is_ok() {
                Outcome::Passed
            } else {
                Outcome::Failed
            };
            state[i] = State::Done(outcome);
            show(Event::Finished(i, secs, result.as_ref().err().map(String::as_str)));
            ran[i].outcome = outcome;
            ran[i].seconds = secs;
            ran[i].failure = result.err();
        }
    });
    // Needs only point backwards, so every step ends; one that did not (never) stays "skipped".
    ran
}

/// Every step it needs has ended, and so has every earlier step of its lane.
fn ready(nodes: &[Node], state: &[State], i: usize) -> bool {
    let ended = |n: usize| matches!(state[n], State::Done(_));
    nodes[i].needs.iter().all(|&n| ended(n))
        && (0..i).all(|n| nodes[n].lane.is_none() || nodes[n].lane != nodes[i].lane || ended(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn node(needs: &[usize], lane: Option<&'static str>, always: bool) -> Node {
        Node {
            needs: needs.to_vec(),
            lane,
            always,
        }
    }

    /// Runs `nodes` with steps that sleep `ms[i]` and fail where `fail` says; returns the outcomes, the events
    /// in order and the most steps that ran at once.
    fn simulate(nodes: &[Node], jobs: usize, ms: &[u64], fail: &[usize]) -> (Vec<Outcome>, Vec<String>, usize) {
        let live = Mutex::new((0usize, 0usize)); // (running now, most at once)
        let mut events = Vec::new();
        let outcomes = run_all(
            nodes,
            jobs,
            |i| {
                {
                    let mut l = live.lock().unwrap();
                    l.0 += 1;
                    l.1 = l.1.max(l.0);
                }
                std::thread::sleep(Duration::from_millis(ms[i]));
                live.lock().unwrap().0 -= 1;
                if fail.contains(&i) {
                    Err(format!("step {i} failed"))
                } else {
                    Ok(())
                }
            },
            |e| {
                events.push(match e {
                    Event::Started(i) => format!("start {i}"),
                    Event::Skipped(i) => format!("skip {i}"),
                    Event::Finished(i, ..) => format!("end {i}"),
                })
            },
        );
        let most = live.lock().unwrap().1;
        (outcomes.into_iter().map(|r| r.outcome).collect(), events, most)
    }

    #[test]
    fn one_job_runs_the_plan_in_order() {
        let nodes = [
            node(&[], None, false),
            node(&[0], Some("a"), false),
            node(&[], Some("a"), false),
        ];
        let (outcomes, events, most) = simulate(&nodes, 1, &[5, 5, 5], &[]);
        assert_eq!(outcomes, [Outcome::Passed; 3]);
        assert_eq!(events, ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]);
        assert_eq!(most, 1);
    }

    #[test]
    fn independent_steps_overlap_up_to_the_job_count() {
        let nodes: Vec<Node> = (0..6).map(|_| node(&[], None, false)).collect();
        // Each step waits until three run (not a sleep: a loaded machine may start threads late), so the
        // test fails only if three never run at once; a fourth would show in the count.
        let live = (Mutex::new((0usize, 0usize)), std::sync::Condvar::new()); // (running now, most at once)
        let outcomes = run_all(
            &nodes,
            3,
            |_| {
                let (count, three) = (&live.0, &live.1);
                let mut l = count.lock().unwrap();
                l.0 += 1;
                l.1 = l.1.max(l.0);
                three.notify_all();
                let (mut l, timeout) = three
                    .wait_timeout_while(l, Duration::from_secs(30), |l| l.0 < 3 && l.1 < 3)
                    .unwrap();
                l.0 -= 1;
                if timeout.timed_out() {
                    Err("three never ran at once".into())
                } else {
                    Ok(())
                }
            },
            |_| {},
        );
        assert_eq!(
            outcomes.iter().map(|r| r.outcome).collect::<Vec<_>>(),
            [Outcome::Passed; 6]
        );
        assert_eq!(live.0.lock().unwrap().1, 3, "three at once, never more");
    }

    #[test]
    fn a_lane_runs_one_step_at_a_time_in_plan_order() {
        let lane = Some("stack");
        let nodes = [node(&[], lane, false), node(&[], lane, false), node(&[], lane, false)];
        let (outcomes, _, most) = simulate(&nodes, 4, &[30, 30, 30], &[]);
        assert_eq!(outcomes, [Outcome::Passed; 3]);
        assert_eq!(most, 1);
        let order = Mutex::new(Vec::new());
        run_all(
            &nodes,
            4,
            |i| {
                order.lock().unwrap().push(i);
                Ok(())
            },
            |_| {},
        );
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    }

    #[test]
    fn a_failure_skips_what_needs_it_but_not_the_clean_up_or_the_rest() {
        let lane = Some("stack");
        let nodes = [
            node(&[], lane, false),  // 0: fails
            node(&[0], lane, false), // 1: skipped (needs 0)
            node(&[1], None, false), // 2: skipped (needs a skipped step)
            node(&[], None, false),  // 3: independent, runs
            node(&[], lane, true),   // 4: clean-up of the lane, runs after 0 and 1
        ];
        let (outcomes, events, _) = simulate(&nodes, 2, &[1; 5], &[0]);
        use Outcome::*;
        assert_eq!(outcomes, [Failed, Skipped, Skipped, Passed, Passed]);
        let at = |e: &str| events.iter().position(|x| x == e).unwrap();
        assert!(at("end 0") < at("skip 1") && at("skip 1") < at("start 4"), "{events:?}");
    }

    #[test]
    fn a_panicking_step_is_a_failure() {
        let nodes = [node(&[], None, false), node(&[0], None, false)];
        let outcomes = run_all(&nodes, 2, |i| if i == 0 { panic!("boom") } else { Ok(()) }, |_| {});
        assert_eq!(
            outcomes.iter().map(|r| r.outcome).collect::<Vec<_>>(),
            [Outcome::Failed, Outcome::Skipped]
        );
        assert_eq!(outcomes[0].failure.as_deref(), Some("the step panicked"));
    }
}
