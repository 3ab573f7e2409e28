//! A run's lock in etcd: one runbook at a time per cluster across machines, where the file
//! lock in the run store only covers one machine. A key `<namespace>/pgha-locks/<scope>` is
//! created only if absent (a transaction on its create revision being 0) with a lease of
//! `LOCK_TTL`, kept alive in the background; its value names the holder. If pgha dies the lease
//! expires and the key goes with it. A lease that cannot be kept is reported as lost, and the
//! executor stops before its next change. The key lives outside Patroni's tree: Patroni reads
//! that tree, and a tree delete must not take the lock with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{EtcdClient, EtcdError};
use crate::dcs::LockHolder;
use crate::ui::printable;

/// Kept alive every TTL/3; etcd ends the lease TTL after the last keep-alive.
pub const LOCK_TTL: Duration = Duration::from_secs(15);

/// Held while a run executes. `release` revokes the lease at once; dropping it stops the
/// keep-alives and lets etcd end it within the TTL.
pub struct EtcdLock {
    client: EtcdClient,
    lease: i64,
    key: String,
    lost: Arc<AtomicBool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl EtcdLock {
    /// Takes the cluster's lock at `key`, or says who holds it.
    pub async fn acquire(
        client: &EtcdClient,
        key: String,
        holder: &LockHolder,
    ) -> Result<Self, EtcdError> {
        let lease = client.grant_lease(LOCK_TTL).await?;
        let value = serde_json::to_vec(holder).unwrap_or_default();
        let mut taken = match client.create_if_absent(&key, &value, lease).await {
            Ok(taken) => taken,
            Err(error) => {
                let _ = client.revoke_lease(lease).await;
                return Err(error);
            }
        };
        if let Err(current) = &taken
            && current.lease != 0
            && LockHolder::left_by_dead_process(&current.value, holder)
        {
            // Ending its lease deletes the dead holder's key; then try once more.
            tracing::info!("taking over {key}, left by a pgha that died on this machine");
            client.revoke_lease(current.lease).await?;
            taken = client.create_if_absent(&key, &value, lease).await?;
        }
        if let Err(current) = taken {
            let _ = client.revoke_lease(lease).await;
            return Err(EtcdError::LockHeld {
                key,
                holder: LockHolder::describe(&current.value),
            });
        }
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = tokio::spawn(keep_alive(client.clone(), lease, Arc::clone(&lost)));
        Ok(EtcdLock {
            client: client.clone(),
            lease,
            key,
            lost,
            keeper,
        })
    }

    /// Set when the lease could not be kept: another run may take the cluster now.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lost)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Revokes the lease; etcd deletes the key with it.
    pub async fn release(self) {
        self.keeper.abort();
        if let Err(error) = self.client.revoke_lease(self.lease).await {
            tracing::warn!(
                "could not release the etcd lock {} ({}); it ends by itself within {}",
                self.key,
                printable(&error.to_string()),
                humantime::format_duration(LOCK_TTL)
            );
        }
    }
}

impl Drop for EtcdLock {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Keeps the lease alive every TTL/3. A lease etcd no longer has is lost at once; an etcd that
/// does not answer is lost once the lease may have expired (TTL since the last keep-alive).
async fn keep_alive(client: EtcdClient, lease: i64, lost: Arc<AtomicBool>) {
    let mut last_kept = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(LOCK_TTL / 3).await;
        match client.keep_alive(lease).await {
            Ok(true) => last_kept = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!("the run's etcd lease {lease:x} is gone: the lock is lost");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                tracing::warn!(
                    "cannot keep the run's etcd lock: {}",
                    printable(&error.to_string())
                );
                if last_kept.elapsed() >= LOCK_TTL {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}
