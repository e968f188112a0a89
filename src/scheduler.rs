//! Scheduling: tokio-cron-scheduler drives every probe of every target. A run never overlaps
//! the previous run of the same probe, and start times of targets are spread.
//!
//! Interval probes do not use the crate's repeated jobs: those compute their next tick from
//! the previous one and stop for good once the runtime falls an interval behind. Instead a
//! per-second cron job (whose next tick is computed from the current time) asks each runner
//! whether its probe is due, and a runner realigns after a stall.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tracing::{debug, info, warn};

use crate::config::{ProbeConfig, Schedule};
use crate::metrics;
use crate::probe::{Failure, FailureReason, ProbeKind, ProbeOutcome, SkipReason};
use crate::ratelimit::unix_seconds;
use crate::target::{LastResult, Target, lock};

const EVERY_SECOND: &str = "* * * * * *";

#[derive(Debug, thiserror::Error)]
#[error("scheduler: {0}")]
pub struct SchedulerError(#[from] JobSchedulerError);

/// Runs one probe of one target when it is due.
pub struct ProbeRunner {
    target: Arc<Target>,
    probe: ProbeConfig,
    in_flight: AtomicBool,
    /// Delay of the first run after the scheduler's first tick, to spread targets.
    start_offset: Duration,
    /// Set at the first tick, so that start-up time does not bunch the spread runs together.
    next_due: Mutex<Option<Instant>>,
    healthy: Mutex<Option<bool>>,
}

impl ProbeRunner {
    pub fn new(target: Arc<Target>, probe: ProbeConfig, start_offset: Duration) -> Self {
        ProbeRunner {
            target,
            probe,
            in_flight: AtomicBool::new(false),
            start_offset,
            next_due: Mutex::new(None),
            healthy: Mutex::new(None),
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.probe.kind
    }

    /// Called by the scheduler's job: starts a run if one is due and none is in flight.
    pub fn tick(self: &Arc<Self>) {
        if let Schedule::Every(interval) = self.probe.schedule
            && !self.take_due(interval)
        {
            return;
        }
        if self.in_flight.swap(true, Ordering::SeqCst) {
            self.record(&ProbeOutcome::Skipped(SkipReason::Overlap), Duration::ZERO);
            return;
        }

        let runner = self.clone();
        tokio::spawn(async move {
            let _in_flight = InFlight(&runner.in_flight);
            runner.run_once().await;
        });
    }

    fn take_due(&self, interval: Duration) -> bool {
        let now = Instant::now();
        let mut next_due = lock(&self.next_due);
        let due = next_due.get_or_insert(now + self.start_offset);
        take_due(due, now, interval)
    }

    /// One run within the probe's timeout, recorded as metrics.
    pub async fn run_once(&self) -> ProbeOutcome {
        let started = Instant::now();
        let run = self.probe.kind.run(&self.target);
        let outcome = match tokio::time::timeout(self.probe.timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => {
                let limit = humantime::format_duration(self.probe.timeout);
                let detail = format!("no answer within the probe timeout of {limit}");
                ProbeOutcome::Failed(Failure::new(FailureReason::Timeout, detail))
            }
        };
        self.record(&outcome, started.elapsed());
        outcome
    }

    fn record(&self, outcome: &ProbeOutcome, duration: Duration) {
        let (name, kind) = (self.target.name(), self.probe.kind);
        let m = &self.target.metrics;
        let labels = metrics::probe_labels(name, kind);
        let now = SystemTime::now();
        m.probe_last_run
            .get_or_create(&labels)
            .set(unix_seconds(now));

        match outcome {
            ProbeOutcome::Success => {
                m.probe_success.get_or_create(&labels).set(1);
                m.probe_duration
                    .get_or_create(&labels)
                    .observe(duration.as_secs_f64());
            }
            ProbeOutcome::Failed(failure) => {
                m.probe_success.get_or_create(&labels).set(0);
                m.probe_duration
                    .get_or_create(&labels)
                    .observe(duration.as_secs_f64());
                let reason = metrics::reason_labels(name, kind, failure.reason.as_str());
                m.probe_failures.get_or_create(&reason).inc();
            }
            ProbeOutcome::Skipped(reason) => {
                let reason = metrics::reason_labels(name, kind, reason.as_str());
                m.probe_skipped.get_or_create(&reason).inc();
            }
        }

        self.log(outcome, duration);
        let result = LastResult {
            at: now,
            outcome: outcome.clone(),
            duration,
        };
        self.target.set_last_result(kind, result);
    }

    /// Debug for every run; warn when a probe starts failing, info when it recovers.
    fn log(&self, outcome: &ProbeOutcome, duration: Duration) {
        let (name, probe) = (self.target.name(), self.probe.kind.as_str());
        let seconds = duration.as_secs_f64();
        let healthy = match outcome {
            ProbeOutcome::Success => true,
            ProbeOutcome::Failed(_) => false,
            ProbeOutcome::Skipped(reason) => {
                debug!(
                    target_name = name,
                    probe,
                    reason = reason.as_str(),
                    "probe skipped"
                );
                return;
            }
        };
        let previous = lock(&self.healthy).replace(healthy);
        match outcome {
            ProbeOutcome::Failed(failure) => {
                let (reason, error) = (failure.reason.as_str(), failure.detail.as_str());
                if previous != Some(false) {
                    warn!(target_name = name, probe, reason, error, "probe failing");
                }
                debug!(
                    target_name = name,
                    probe,
                    reason,
                    error,
                    duration_seconds = seconds,
                    "probe failed"
                );
            }
            _ => {
                if previous == Some(false) {
                    info!(target_name = name, probe, "probe recovered");
                }
                debug!(
                    target_name = name,
                    probe,
                    duration_seconds = seconds,
                    "probe succeeded"
                );
            }
        }
    }
}

/// True when the interval has come round; moves the due time on, and after a stall restarts
/// the rhythm from now rather than replaying the missed runs.
fn take_due(due: &mut Instant, now: Instant, interval: Duration) -> bool {
    if now < *due {
        return false;
    }
    *due += interval;
    if *due <= now {
        *due = now + interval;
    }
    true
}

/// Clears the in-flight flag however the run ends, a panic included.
struct InFlight<'a>(&'a AtomicBool);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Builds a runner for every probe of every target, spreading each probe's first run over
/// its interval by the target's position.
pub fn runners(targets: &[Arc<Target>]) -> Vec<Arc<ProbeRunner>> {
    let count = targets.len().max(1) as u32;
    let mut runners = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        for probe in &target.config.probes {
            let offset = probe.schedule.period() * index as u32 / count;
            runners.push(Arc::new(ProbeRunner::new(
                target.clone(),
                probe.clone(),
                offset,
            )));
        }
    }
    runners
}

/// Adds the jobs and starts the scheduler: one per-second job ticks every interval probe
/// (one job per probe would flood the crate's 200-slot activation channel at 100 targets),
/// and each cron-scheduled probe gets a job of its own.
pub async fn start(runners: &[Arc<ProbeRunner>]) -> Result<JobScheduler, SchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let (interval, cron): (Vec<_>, Vec<_>) = runners
        .iter()
        .cloned()
        .partition(|r| matches!(r.probe.schedule, Schedule::Every(_)));

    if !interval.is_empty() {
        let interval = Arc::new(interval);
        scheduler.add(job(EVERY_SECOND, interval)?).await?;
    }
    for runner in cron {
        if let Schedule::Cron { expression, .. } = &runner.probe.schedule {
            scheduler
                .add(job(expression, Arc::new(vec![runner.clone()]))?)
                .await?;
        }
    }
    scheduler.start().await?;
    Ok(scheduler)
}

fn job(expression: &str, runners: Arc<Vec<Arc<ProbeRunner>>>) -> Result<Job, JobSchedulerError> {
    Job::new_async(expression, move |_, _| {
        let runners = runners.clone();
        Box::pin(async move {
            for runner in runners.iter() {
                runner.tick();
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn due_times_keep_their_rhythm_and_realign_after_a_stall() {
        let interval = Duration::from_secs(10);
        let mut due = Instant::now();
        let mut take = || take_due(&mut due, Instant::now(), interval);

        assert!(take());
        assert!(!take());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(take());
        tokio::time::advance(Duration::from_secs(95)).await;
        assert!(take(), "runs once after a stall");
        assert!(!take(), "does not replay the missed runs");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(take(), "and keeps going");
    }
}
