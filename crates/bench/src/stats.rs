//! Latency samples and their percentiles, and rounds of concurrent timed operations.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Barrier;

/// A set of measured durations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    pub(crate) fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The nearest-rank percentile `p` (0–100); zero for an empty set.
    pub(crate) fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        // Nearest rank: the smallest sample with at least p% of the samples at or below it.
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, sorted.len()) - 1;
        sorted.get(index).copied().unwrap_or_default()
    }

    pub(crate) fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    pub(crate) fn p99(&self) -> Duration {
        self.percentile(99.0)
    }
}

/// One round of operations by concurrent clients: how long it took in all, and each operation.
#[derive(Debug)]
pub(crate) struct Round {
    pub(crate) clients: usize,
    pub(crate) wall: Duration,
    pub(crate) latency: Samples,
}

impl Round {
    /// Operations per second over the round's wall time.
    pub(crate) fn per_second(&self) -> f64 {
        self.latency.len() as f64 / self.wall.as_secs_f64().max(f64::EPSILON)
    }
}

/// `clients` tasks each run `op(client, i)` for `i` in `0..per_client`, all starting together;
/// every operation is timed.
pub(crate) async fn concurrently<F, Fut>(clients: usize, per_client: usize, op: F) -> Result<Round>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let op = Arc::clone(&op);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut latency = Samples::default();
            barrier.wait().await;
            for i in 0..per_client {
                let start = Instant::now();
                op(client, i).await?;
                latency.push(start.elapsed());
            }
            anyhow::Ok(latency)
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut latency = Samples::default();
    for task in tasks {
        latency.extend(task.await.context("a client task panicked")??);
    }
    Ok(Round {
        clients,
        wall: start.elapsed(),
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::default();
        for ms in 1..=100 {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.p50(), Duration::from_millis(50));
        assert_eq!(samples.p99(), Duration::from_millis(99));
        assert_eq!(samples.percentile(100.0), Duration::from_millis(100));
        assert_eq!(Samples::default().p99(), Duration::ZERO);
    }
}
