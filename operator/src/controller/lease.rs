//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! reconciles. The holder renews every third of the lease duration; a replica takes the lease
//! over only once it has expired. Losing it ends the controller (the process restarts and
//! queues up as a candidate again), the way controller-runtime handles it.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// Whether `holder`'s claim, last renewed at `renewed`, still stands at `now`. Pure.
pub fn is_held_by_other(
    spec: &LeaseSpec,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> bool {
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return false;
    };
    if holder == identity {
        return false;
    }
    let duration = spec
        .lease_duration_seconds
        .map_or(default_duration, |s| Duration::from_secs(s.max(1) as u64));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => {
            let expires = renewed.checked_add(duration).unwrap_or(Timestamp::MAX);
            now < expires
        }
        None => false,
    }
}

impl LeaderElection {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
        }
    }

    /// One attempt to take or renew the lease; `Ok(true)` when this replica holds it.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = self.duration.as_secs() as i32;
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let mut spec = lease.spec.take().unwrap_or_default();
                if is_held_by_other(&spec, &self.identity, now, self.duration) {
                    return Ok(false);
                }
                if spec.holder_identity.as_deref() != Some(&self.identity) {
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.holder_identity = Some(self.identity.clone());
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                lease.spec = Some(spec);
                // The resourceVersion from the read makes this a compare-and-swap: of two
                // replicas racing for an expired lease, one gets a conflict.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut announced = false;
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return;
                }
                Ok(false) if !announced => {
                    tracing::info!(lease = %self.name, "another replica leads; waiting for the lease");
                    announced = true;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, lease = %self.name, "leader election failed"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the lease until it is lost; returns then, with why.
    pub async fn hold(&self) -> String {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_hold().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => return format!("lease {} was taken by another replica", self.name),
                Err(error) => {
                    tracing::warn!(%error, lease = %self.name, "renewing the lease failed");
                    if last_renewal.elapsed() >= self.duration {
                        return format!("lease {} could not be renewed: {error}", self.name);
                    }
                }
            }
        }
    }

    /// Gives the lease up on shutdown so a successor need not wait for it to expire.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(&self.identity)
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if let Err(error) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                tracing::warn!(%error, lease = %self.name, "releasing the lease failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_by_another_until_it_expires() {
        let renewed = Timestamp::from_second(1000).unwrap();
        let spec = LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        };
        let default = Duration::from_secs(15);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(is_held_by_other(&spec, "me", at(1010), default));
        assert!(!is_held_by_other(&spec, "me", at(1016), default));
        assert!(!is_held_by_other(&spec, "other", at(1010), default));
        let released = LeaseSpec {
            holder_identity: None,
            ..spec
        };
        assert!(!is_held_by_other(&released, "me", at(1010), default));
    }
}
