//! The memory one process spends on uploaded bytes in flight, shared by every request and worker.
//!
//! A request that carries a file reserves what it will hold before it reads its body: the body,
//! plus the copies made while it is checked (the multipart parser's buffer and the stripped
//! original). When the budget is spent, further uploads wait for their turn instead of growing
//! the process: 150 concurrent 5 MiB uploads cost [`BODY_BUDGET`], not 150 times 15 MiB.
//!
//! Together with the decode budget (`media::limits::DECODE_BUDGET`) and the front door's
//! per-connection head buffer, this is what bounds a local server's memory by design (see
//! ARCHITECTURE.md, "Memory").

use tokio::sync::{Semaphore, SemaphorePermit};

/// Bytes of uploads all requests and workers of a process may hold at once: room for one
/// presigned upload of the largest size with its copy, or seven direct uploads of the largest
/// size with theirs.
pub const BODY_BUDGET: usize = 112 << 20;

/// Permits are KiB, so that the count fits the semaphore's range with room to spare.
static BODIES: Semaphore = Semaphore::const_new(BODY_BUDGET >> 10);

/// A reservation of upload memory, given back when dropped.
#[derive(Debug)]
pub struct BodyPermit {
    _permit: SemaphorePermit<'static>,
}

/// Reserves `bytes` of the budget, waiting while other uploads hold it. A reservation larger
/// than the whole budget takes the whole budget.
pub async fn reserve(bytes: usize) -> BodyPermit {
    let kib = bytes.div_ceil(1024).clamp(1, BODY_BUDGET >> 10);
    let kib = u32::try_from(kib).unwrap_or(u32::MAX);
    // The semaphore is a static that is never closed, so acquiring cannot fail.
    let permit = match BODIES.acquire_many(kib).await {
        Ok(p) => p,
        Err(_) => unreachable!("the body budget's semaphore is never closed"),
    };
    BodyPermit { _permit: permit }
}

/// Bytes of the budget free now (for tests and metrics).
pub fn available() -> usize {
    BODIES.available_permits() << 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reservation_waits_until_the_budget_has_room() {
        // Given most of the budget reserved,
        let big = reserve(BODY_BUDGET - (1 << 20)).await;
        // when another reservation needs more than is left, it waits;
        let waiting = tokio::spawn(reserve(2 << 20));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // and when the first is given back, it goes ahead.
        drop(big);
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert!(available() <= BODY_BUDGET - (2 << 20));
        drop(second);
    }
}
