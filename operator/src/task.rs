//! Work moved off the async runtime: unpacking, parsing, rendering, cache reads.

/// A blocking task that panicked (or was canceled at shutdown). A panic is a bug; it fails
/// the reconcile that ran into it, with the panic's message, instead of ending the process.
#[derive(Debug, thiserror::Error)]
#[error("the {what} task {detail}")]
pub struct Lost {
    pub what: &'static str,
    pub detail: String,
}

/// Runs `work` on a blocking thread; a panic in it comes back as [`Lost`].
pub async fn off_runtime<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Lost> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        let detail = if error.is_panic() {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text payload".into());
            format!("panicked: {message}")
        } else {
            "was canceled".into()
        };
        tracing::error!(task = what, %detail, "blocking task lost");
        Lost { what, detail }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_an_error_with_its_message_and_the_runtime_goes_on() {
        let lost = off_runtime("render", || -> u8 { panic!("index out of bounds") })
            .await
            .unwrap_err();
        assert_eq!(
            lost.to_string(),
            "the render task panicked: index out of bounds"
        );
        let formatted = off_runtime("parse", || -> u8 { panic!("bad {}", 7) })
            .await
            .unwrap_err();
        assert_eq!(formatted.detail, "panicked: bad 7");
        assert_eq!(off_runtime("sum", || 2 + 2).await.unwrap(), 4);
    }
}
