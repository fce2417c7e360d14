//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! reconciles. The scheme is client-go's, and no replica ever compares another's wall clock
//! with its own:
//!
//! - A candidate remembers the last lease record it read and the instant, on its own
//!   monotonic clock, at which it last saw that record change. The holder's claim stands
//!   while the record keeps changing; it has expired only once the record stayed unchanged
//!   for `leaseDurationSeconds`. The `renewTime` and `acquireTime` written are for people:
//!   a holder whose wall clock is an hour off is neither taken over while it renews nor
//!   waited for once it stops.
//! - The leader renews every retry period. It stops leading when a renew finds the lease held
//!   by someone else, and when it has not renewed successfully within the renew deadline
//!   (shorter than the lease duration, so it has stopped before any candidate can take over).
//!   The deadline is checked before every write: a leader that was paused (SIGSTOP, a frozen
//!   VM) past its deadline steps down without writing again.
//! - Every write is a compare-and-swap on the `resourceVersion` read (or a create), so of two
//!   candidates racing for an expired lease only one acquires it.
//!
//! Losing the lease ends the controller (the process exits and, as a pod, restarts as a
//! candidate), the way controller-runtime handles it. The durations are in
//! [`crate::policy::leader`].

use std::{future::Future, sync::Mutex, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tokio::time::Instant;

use crate::policy;

/// How long a lease lasts, how long its leader may go without renewing, and how often it
/// renews (and a candidate retries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: policy::leader::LEASE_DURATION,
            renew_deadline: policy::leader::RENEW_DEADLINE,
            retry_period: policy::leader::RETRY_PERIOD,
        }
    }
}

impl Timing {
    /// The leader must give up before a candidate may take over, and must get several
    /// attempts at renewing within its deadline: retry period < renew deadline < lease
    /// duration, the lease a whole number of seconds (the Lease stores seconds).
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("the leader election retry period must be above zero".into());
        }
        if self.renew_deadline <= self.retry_period {
            return Err(format!(
                "the leader election renew deadline ({:?}) must be longer than the retry period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(format!(
                "the leader election lease duration ({:?}) must be longer than the renew deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.lease_duration.subsec_nanos() != 0 || self.lease_duration.as_secs() > 86_400 {
            return Err(format!(
                "the leader election lease duration ({:?}) must be whole seconds, at most a day",
                self.lease_duration
            ));
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// The fields of a Lease that election looks at; two reads with equal records mean nobody
/// wrote in between (the `resourceVersion` moves with every write).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    pub holder: Option<String>,
    pub lease_duration_seconds: Option<i32>,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub lease_transitions: Option<i32>,
    pub resource_version: Option<String>,
}

impl Record {
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.as_ref();
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            lease_duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
            acquire_time: spec.and_then(|s| s.acquire_time.as_ref()).map(|t| t.0),
            renew_time: spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
            lease_transitions: spec.and_then(|s| s.lease_transitions),
            resource_version: lease.metadata.resource_version.clone(),
        }
    }

    /// The duration its holder declared, else ours.
    fn duration(&self, default: Duration) -> Duration {
        self.lease_duration_seconds
            .map_or(default, |s| Duration::from_secs(s.max(1) as u64))
    }
}

/// What a replica remembers of the lease: the last record it read, and when (by its own
/// monotonic clock) it last saw the record change.
#[derive(Debug, Default)]
pub struct Observation {
    last: Option<(Option<Record>, Instant)>,
}

impl Observation {
    /// Notes `record` as read at `now`; returns how long the record has stayed unchanged
    /// (zero when it just changed, or on the first read).
    pub fn observe(&mut self, record: Option<&Record>, now: Instant) -> Duration {
        match &self.last {
            Some((seen, since)) if seen.as_ref() == record => now.saturating_duration_since(*since),
            _ => {
                self.last = Some((record.cloned(), now));
                Duration::ZERO
            }
        }
    }
}

/// Why a leader stops leading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepDown {
    /// No successful renew within the renew deadline (by this replica's monotonic clock).
    DeadlinePassed(Duration),
    /// The lease names another holder.
    TakenBy(String),
    /// The lease names no holder (someone released it for us).
    Released,
}

impl std::fmt::Display for StepDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepDown::DeadlinePassed(since) => write!(
                f,
                "the lease was last renewed {:.1}s ago, past the renew deadline",
                since.as_secs_f64()
            ),
            StepDown::TakenBy(holder) => write!(f, "the lease is held by {holder}"),
            StepDown::Released => write!(f, "the lease was released by someone else"),
        }
    }
}

/// What to do after reading the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// There is no lease: create it (a create is atomic).
    Create,
    /// Take the lease over: it is free, or its record stood still for a lease duration.
    Acquire,
    /// This replica holds it: renew.
    Renew,
    /// Another replica holds it; its claim stands for at least `for_at_least` more.
    Wait {
        holder: String,
        for_at_least: Duration,
    },
    /// Stop leading, without writing.
    StepDown(StepDown),
}

/// The decision, pure: `current` is the lease as just read (None: there is none),
/// `unchanged_for` how long that record has stood still by this replica's monotonic clock,
/// `since_renewed` how long ago this replica last renewed when it leads (None: a candidate).
pub fn judge(
    current: Option<&Record>,
    unchanged_for: Duration,
    identity: &str,
    since_renewed: Option<Duration>,
    timing: &Timing,
) -> Verdict {
    if let Some(since) = since_renewed
        && since > timing.renew_deadline
    {
        return Verdict::StepDown(StepDown::DeadlinePassed(since));
    }
    let Some(record) = current else {
        return Verdict::Create;
    };
    let leading = since_renewed.is_some();
    match record.holder.as_deref() {
        Some(holder) if holder == identity => {
            if leading {
                Verdict::Renew
            } else {
                // This identity's previous run (a restarted container of the same pod).
                Verdict::Acquire
            }
        }
        Some(holder) if leading => Verdict::StepDown(StepDown::TakenBy(holder.to_string())),
        None if leading => Verdict::StepDown(StepDown::Released),
        None => Verdict::Acquire,
        Some(holder) => {
            let duration = record.duration(timing.lease_duration);
            if unchanged_for >= duration {
                Verdict::Acquire
            } else {
                Verdict::Wait {
                    holder: holder.to_string(),
                    for_at_least: duration - unchanged_for,
                }
            }
        }
    }
}

/// The spec this replica writes to acquire or renew: acquire time and transitions move only
/// when the holder changes. The times are informational; nobody compares them with a clock.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    timing: &Timing,
) -> LeaseSpec {
    let mut spec = current.cloned().unwrap_or_default();
    let ours = spec.holder_identity.as_deref() == Some(identity);
    if !ours {
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(match current {
            // A brand-new lease starts at 0; each change of holder after that counts.
            None => 0,
            Some(s) => s.lease_transitions.unwrap_or(0).saturating_add(1),
        });
        spec.holder_identity = Some(identity.to_string());
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(timing.lease_seconds());
    spec
}

/// The result of one attempt.
enum Attempt {
    /// This replica holds the lease (acquired or renewed).
    Held,
    /// Another replica holds it, or a write lost a race; try again later.
    NotYet(Option<String>),
    /// The leader must stop.
    Lost(StepDown),
}

#[derive(Default)]
struct State {
    observation: Observation,
    /// When the last successful acquire or renew was sent (set while leading).
    renewed_at: Option<Instant>,
    /// The lease as this replica last wrote it (for a release that is itself a CAS).
    written: Option<Lease>,
}

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    state: Mutex<State>,
}

impl LeaderElection {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: Timing,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // No code panics while holding the lock; a poisoned one still holds valid state.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long ago this replica last renewed, while it believes it leads.
    fn since_renewed(&self, now: Instant) -> Option<Duration> {
        self.state()
            .renewed_at
            .map(|at| now.saturating_duration_since(at))
    }

    /// Whether this replica leads right now: it renewed within the renew deadline.
    pub fn is_leading(&self) -> bool {
        self.since_renewed(Instant::now())
            .is_some_and(|since| since <= self.timing.renew_deadline)
    }

    fn step_down(&self) {
        let mut state = self.state();
        state.renewed_at = None;
        state.written = None;
    }

    /// One read, one decision and at most one compare-and-swap write.
    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let started = Instant::now();
        let current = self.api.get_opt(&self.name).await?;
        let record = current.as_ref().map(Record::of);
        let now = Instant::now();
        let (unchanged_for, since_renewed) = {
            let mut state = self.state();
            let unchanged = state.observation.observe(record.as_ref(), now);
            let since = state.renewed_at.map(|at| now.saturating_duration_since(at));
            (unchanged, since)
        };
        let verdict = judge(
            record.as_ref(),
            unchanged_for,
            &self.identity,
            since_renewed,
            &self.timing,
        );
        let spec = next_spec(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            Timestamp::now(),
            &self.timing,
        );
        let written = match verdict {
            Verdict::StepDown(why) => return Ok(Attempt::Lost(why)),
            Verdict::Wait { holder, .. } => return Ok(Attempt::NotYet(Some(holder))),
            Verdict::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Verdict::Acquire | Verdict::Renew => {
                let Some(mut lease) = current else {
                    return Ok(Attempt::NotYet(None));
                };
                // Keep the resourceVersion of the read: the replace is a compare-and-swap.
                lease.spec = Some(spec);
                lease.metadata.managed_fields = None;
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(lease) => {
                let mut state = self.state();
                let record = Record::of(&lease);
                state.observation.observe(Some(&record), started);
                state.renewed_at = Some(started);
                state.written = Some(lease);
                Ok(Attempt::Held)
            }
            // Someone wrote between our read and our write; the next read tells who.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::NotYet(None)),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut waiting_for: Option<String> = None;
        loop {
            let attempt = tokio::time::timeout(self.timing.renew_deadline, self.attempt()).await;
            match attempt {
                Ok(Ok(Attempt::Held)) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(Ok(Attempt::NotYet(Some(holder)))) => {
                    if waiting_for.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.name, %holder, "another replica leads; waiting for the lease");
                        waiting_for = Some(holder);
                    }
                }
                Ok(Ok(Attempt::NotYet(None))) => {}
                // A candidate holds nothing to lose.
                Ok(Ok(Attempt::Lost(why))) => {
                    tracing::debug!(lease = %self.name, %why, "not acquired");
                    self.step_down();
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, lease = %self.name, "leader election failed")
                }
                Err(_elapsed) => {
                    tracing::warn!(lease = %self.name, "leader election timed out")
                }
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease every retry period until this replica stops leading; returns then,
    /// with why (after logging "stopped leading"). Never writes once the renew deadline has
    /// passed.
    pub async fn hold(&self) -> String {
        let why = loop {
            tokio::time::sleep(self.timing.retry_period).await;
            // Checked before any request: after a long pause the first thing done is this.
            let Some(since) = self.since_renewed(Instant::now()) else {
                break format!("lease {} is not held", self.name);
            };
            if since > self.timing.renew_deadline {
                break StepDown::DeadlinePassed(since).to_string();
            }
            let remaining = self.timing.renew_deadline - since;
            match tokio::time::timeout(remaining, self.attempt()).await {
                Ok(Ok(Attempt::Held)) => {
                    tracing::debug!(lease = %self.name, "lease renewed")
                }
                Ok(Ok(Attempt::Lost(why))) => break why.to_string(),
                Ok(Ok(Attempt::NotYet(_))) => {
                    tracing::warn!(lease = %self.name, "renewing the lease lost a race; retrying")
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, lease = %self.name, "renewing the lease failed; retrying")
                }
                Err(_elapsed) => {
                    tracing::warn!(lease = %self.name, "renewing the lease timed out")
                }
            }
        };
        self.step_down();
        tracing::warn!(lease = %self.name, identity = %self.identity, reason = %why, "stopped leading");
        format!("lease {}: {why}", self.name)
    }

    /// Runs `work` while this replica leads; returns its output, or why leadership was lost.
    /// `work` is not polled once the renew deadline has passed (a resumed process runs no
    /// more of it before the renew loop has stepped down), and is dropped when it is lost.
    pub async fn lead<F: Future>(&self, work: F) -> Result<F::Output, String> {
        let mut work = std::pin::pin!(work);
        let fenced = std::future::poll_fn(|cx| {
            if self.is_leading() {
                work.as_mut().poll(cx)
            } else {
                // The renew loop wakes within a retry period and ends this.
                std::task::Poll::Pending
            }
        });
        tokio::select! {
            biased;
            lost = self.hold() => Err(lost),
            output = fenced => Ok(output),
        }
    }

    /// Gives the lease up on shutdown so a successor need not wait for it to expire. Only
    /// while this replica still leads, and as a compare-and-swap on the lease it last wrote:
    /// if anyone wrote since, nothing is written.
    pub async fn release(&self) {
        if !self.is_leading() {
            return;
        }
        let Some(mut lease) = self.state().written.take() else {
            return;
        };
        self.step_down();
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
            spec.acquire_time = None;
        }
        lease.metadata.managed_fields = None;
        let params = PostParams::default();
        let replace = self.api.replace(&self.name, &params, &lease);
        match tokio::time::timeout(self.timing.retry_period, replace).await {
            Ok(Ok(_)) => tracing::info!(lease = %self.name, "released the lease"),
            Ok(Err(error)) => {
                tracing::warn!(%error, lease = %self.name, "releasing the lease failed")
            }
            Err(_elapsed) => tracing::warn!(lease = %self.name, "releasing the lease timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn record(holder: &str, renewed: Timestamp, version: u32) -> Record {
        Record {
            holder: (!holder.is_empty()).then(|| holder.to_string()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(renewed),
            renew_time: Some(renewed),
            lease_transitions: Some(3),
            resource_version: Some(version.to_string()),
        }
    }

    fn seconds(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_timing_is_valid_and_bad_orders_are_refused() {
        assert_eq!(Timing::default().validate(), Ok(()));
        assert_eq!(timing().validate(), Ok(()));
        let bad = [
            Timing {
                renew_deadline: seconds(15),
                ..timing()
            },
            Timing {
                retry_period: seconds(10),
                ..timing()
            },
            Timing {
                retry_period: Duration::ZERO,
                ..timing()
            },
            Timing {
                lease_duration: Duration::from_millis(15_500),
                ..timing()
            },
        ];
        for timing in bad {
            assert!(timing.validate().is_err(), "{timing:?}");
        }
    }

    #[test]
    fn a_record_that_keeps_changing_is_not_taken_over_whatever_its_renew_time_says() {
        let start = Instant::now();
        let now = Timestamp::now();
        // Holders whose wall clocks are an hour ahead, an hour behind, and a year behind.
        for skew in [3600i64, -3600, -365 * 86_400] {
            let mut observation = Observation::default();
            for tick in 0..60u32 {
                // Renewed every 2 s (by its clock, skewed) for two minutes.
                let renewed = now
                    .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(
                        skew + 2 * i64::from(tick),
                    ))
                    .unwrap();
                let at = start + seconds(2 * u64::from(tick));
                let current = record("other", renewed, tick);
                let unchanged = observation.observe(Some(&current), at);
                assert_eq!(unchanged, Duration::ZERO);
                let verdict = judge(Some(&current), unchanged, "me", None, &timing());
                assert_eq!(
                    verdict,
                    Verdict::Wait {
                        holder: "other".into(),
                        for_at_least: seconds(15)
                    },
                    "skew {skew}s, tick {tick}"
                );
            }
        }
    }

    #[test]
    fn a_record_that_stands_still_for_a_lease_duration_is_taken_over_whatever_its_renew_time_says()
    {
        let start = Instant::now();
        let now = Timestamp::now();
        for skew in [3600i64, -3600, 0] {
            let renewed = now
                .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(skew))
                .unwrap();
            let current = record("other", renewed, 7);
            let mut observation = Observation::default();
            let mut verdict_at = |elapsed: Duration| {
                let unchanged = observation.observe(Some(&current), start + elapsed);
                judge(Some(&current), unchanged, "me", None, &timing())
            };
            // First seen now: a new candidate waits a whole lease duration from here.
            assert!(matches!(verdict_at(seconds(0)), Verdict::Wait { .. }));
            assert_eq!(
                verdict_at(seconds(14)),
                Verdict::Wait {
                    holder: "other".into(),
                    for_at_least: seconds(1)
                },
                "skew {skew}s"
            );
            assert_eq!(verdict_at(seconds(15)), Verdict::Acquire, "skew {skew}s");
            assert_eq!(verdict_at(seconds(600)), Verdict::Acquire, "skew {skew}s");
        }
    }

    #[test]
    fn a_change_restarts_the_wait_and_the_holders_declared_duration_counts() {
        let start = Instant::now();
        let now = Timestamp::now();
        let mut observation = Observation::default();
        let first = record("other", now, 1);
        observation.observe(Some(&first), start);
        // Changed at 14 s: the holder renewed; the wait starts over.
        let second = record("other", now, 2);
        assert_eq!(
            observation.observe(Some(&second), start + seconds(14)),
            Duration::ZERO
        );
        let unchanged = observation.observe(Some(&second), start + seconds(28));
        assert!(matches!(
            judge(Some(&second), unchanged, "me", None, &timing()),
            Verdict::Wait { .. }
        ));
        // A holder that declared 40 s is waited for 40 s, not our 15.
        let long = Record {
            lease_duration_seconds: Some(40),
            ..second.clone()
        };
        assert!(matches!(
            judge(Some(&long), seconds(39), "me", None, &timing()),
            Verdict::Wait { .. }
        ));
        assert_eq!(
            judge(Some(&long), seconds(40), "me", None, &timing()),
            Verdict::Acquire
        );
    }

    #[test]
    fn a_candidate_creates_a_missing_lease_and_takes_a_free_one_at_once() {
        let t = timing();
        assert_eq!(judge(None, Duration::ZERO, "me", None, &t), Verdict::Create);
        let free = record("", Timestamp::now(), 4);
        assert_eq!(
            judge(Some(&free), Duration::ZERO, "me", None, &t),
            Verdict::Acquire
        );
        // Its own identity (a restarted container of the same pod): no wait.
        let own = record("me", Timestamp::now(), 4);
        assert_eq!(
            judge(Some(&own), Duration::ZERO, "me", None, &t),
            Verdict::Acquire
        );
    }

    #[test]
    fn a_leader_renews_within_its_deadline_and_steps_down_past_it_or_when_taken() {
        let t = timing();
        let own = record("me", Timestamp::now(), 4);
        assert_eq!(
            judge(Some(&own), seconds(100), "me", Some(seconds(2)), &t),
            Verdict::Renew
        );
        assert_eq!(
            judge(Some(&own), Duration::ZERO, "me", Some(seconds(10)), &t),
            Verdict::Renew
        );
        // Paused past its deadline: steps down whatever the lease says, without writing.
        for current in [Some(&own), None] {
            assert_eq!(
                judge(current, Duration::ZERO, "me", Some(seconds(11)), &t),
                Verdict::StepDown(StepDown::DeadlinePassed(seconds(11)))
            );
        }
        let taken = record("other", Timestamp::now(), 5);
        assert_eq!(
            judge(Some(&taken), Duration::ZERO, "me", Some(seconds(2)), &t),
            Verdict::StepDown(StepDown::TakenBy("other".into()))
        );
        let released = record("", Timestamp::now(), 6);
        assert_eq!(
            judge(Some(&released), Duration::ZERO, "me", Some(seconds(2)), &t),
            Verdict::StepDown(StepDown::Released)
        );
        // A deleted lease is created again (a create cannot race another one through).
        assert_eq!(
            judge(None, Duration::ZERO, "me", Some(seconds(2)), &t),
            Verdict::Create
        );
    }

    #[test]
    fn acquiring_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let t = timing();
        let then = Timestamp::from_second(1000).unwrap();
        let now = Timestamp::from_second(2000).unwrap();
        let created = next_spec(None, "me", now, &t);
        assert_eq!(created.holder_identity.as_deref(), Some("me"));
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.lease_duration_seconds, Some(15));
        let theirs = LeaseSpec {
            holder_identity: Some("other".into()),
            acquire_time: Some(MicroTime(then)),
            renew_time: Some(MicroTime(then)),
            lease_transitions: Some(2),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        };
        let taken = next_spec(Some(&theirs), "me", now, &t);
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        let later = Timestamp::from_second(2002).unwrap();
        let renewed = next_spec(Some(&taken), "me", later, &t);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
    }

    #[tokio::test]
    async fn work_is_not_polled_once_the_renew_deadline_has_passed() {
        // A client that reaches nothing: the election only looks at its own state here.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let fast = Timing {
            lease_duration: seconds(1),
            renew_deadline: Duration::from_millis(200),
            retry_period: Duration::from_millis(10),
        };
        let election = LeaderElection::new(client, "ns", "lease", "me", fast);
        assert!(!election.is_leading());
        election.state().renewed_at = Some(Instant::now());
        assert!(election.is_leading());
        // As after a SIGSTOP of a second: the last renew is past the deadline.
        election.state().renewed_at = Instant::now().checked_sub(seconds(1));
        assert!(!election.is_leading());
        let polled = std::sync::atomic::AtomicBool::new(false);
        let work = std::future::poll_fn(|_| {
            polled.store(true, std::sync::atomic::Ordering::SeqCst);
            std::task::Poll::Ready(())
        });
        let result = tokio::time::timeout(seconds(5), election.lead(work))
            .await
            .expect("stepped down at once");
        assert!(
            result
                .as_ref()
                .is_err_and(|why| why.contains("past the renew deadline")),
            "{result:?}"
        );
        assert!(!polled.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!election.is_leading());
    }
}
