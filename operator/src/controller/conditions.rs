//! kstatus conditions: set one condition and keep `lastTransitionTime` when its status did
//! not change, as Kubernetes tooling expects.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Sets `type_` in `conditions`, returning whether anything changed.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let message = truncate(message);
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let unchanged = existing.status == status
                && existing.reason == reason
                && existing.message == message
                && existing.observed_generation == generation;
            if unchanged {
                return false;
            }
            if existing.status != status {
                existing.last_transition_time = Time(now);
            }
            existing.status = status.to_string();
            existing.reason = reason.to_string();
            existing.message = message;
            existing.observed_generation = generation;
            true
        }
        None => {
            conditions.push(Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                observed_generation: generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

/// Removes `type_`, returning whether it was there.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    before != conditions.len()
}

/// The API server limits a condition message to 32768 characters.
fn truncate(message: &str) -> String {
    const LIMIT: usize = 32768;
    if message.len() <= LIMIT {
        return message.to_string();
    }
    let mut end = LIMIT - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_the_status_changes() {
        let mut conditions = Vec::new();
        assert!(set(
            &mut conditions,
            "Ready",
            "False",
            "Progressing",
            "a",
            Some(1),
            at(10)
        ));
        assert!(
            !set(
                &mut conditions,
                "Ready",
                "False",
                "Progressing",
                "a",
                Some(1),
                at(20)
            ),
            "no-op"
        );
        assert!(set(
            &mut conditions,
            "Ready",
            "False",
            "ArtifactFailed",
            "b",
            Some(1),
            at(30)
        ));
        assert_eq!(
            conditions[0].last_transition_time,
            Time(at(10)),
            "same status keeps the time"
        );
        assert!(set(
            &mut conditions,
            "Ready",
            "True",
            "ReconciliationSucceeded",
            "c",
            Some(2),
            at(40)
        ));
        assert_eq!(conditions[0].last_transition_time, Time(at(40)));
        assert!(remove(&mut conditions, "Ready") && conditions.is_empty());
    }

    #[test]
    fn long_messages_are_cut_to_the_api_limit() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "Ready",
            "False",
            "X",
            &"é".repeat(20000),
            None,
            at(0),
        );
        assert!(conditions[0].message.len() <= 32768 && conditions[0].message.ends_with("..."));
    }
}
