//! A run's lock in Consul: one runbook at a time per cluster across machines, where the file
//! lock in the run store only covers one machine. A session with a TTL (renewed in the
//! background, behavior `delete`) holds `pgha/locks/<scope>`; the value names the holder. If
//! pgha dies the session expires (2 × TTL after the last renewal) and the key goes with it. A
//! lock that cannot be renewed is reported as lost, and the executor stops before its next
//! change. The key lives outside Patroni's prefix: Patroni reads that tree, and a tree delete
//! must not take the lock with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{ConsulClient, ConsulError};
use crate::dcs::LockHolder;
use crate::ui::printable;

/// Renewed every TTL/2; Consul ends the session 2 × TTL after the last renewal.
pub const LOCK_TTL: Duration = Duration::from_secs(15);

/// Held while a run executes. `release` ends it at once; dropping it stops the renewals and
/// lets Consul end it within 2 × TTL.
pub struct ConsulLock {
    client: ConsulClient,
    session: String,
    key: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

pub fn lock_key(scope: &str) -> String {
    format!("pgha/locks/{scope}")
}

impl ConsulLock {
    /// Takes the cluster's lock, or says who holds it.
    pub async fn acquire(
        client: &ConsulClient,
        scope: &str,
        holder: &LockHolder,
    ) -> Result<Self, ConsulError> {
        let key = lock_key(scope);
        let session = client
            .create_session(&format!("pgha {}", holder.run_id), LOCK_TTL)
            .await?;
        let value = serde_json::to_vec(holder).unwrap_or_default();
        let mut acquired = match client.acquire(&key, &session, &value).await {
            Ok(acquired) => acquired,
            Err(error) => {
                let _ = client.destroy_session(&session).await;
                return Err(error);
            }
        };
        if !acquired {
            let current = client.get(&key).await.ok().flatten();
            let held = current
                .as_ref()
                .and_then(|entry| entry.value.clone())
                .unwrap_or_default();
            let dead_session = current
                .and_then(|entry| entry.session)
                .filter(|_| LockHolder::left_by_dead_process(&held, holder));
            if let Some(dead) = dead_session {
                // Ending its session deletes the dead holder's key; then try once more.
                tracing::info!("taking over {key}, left by a pgha that died on this machine");
                client.destroy_session(&dead).await?;
                acquired = client.acquire(&key, &session, &value).await?;
            }
            if !acquired {
                let _ = client.destroy_session(&session).await;
                return Err(ConsulError::LockHeld {
                    key,
                    holder: LockHolder::describe(&held),
                });
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = tokio::spawn(renew(client.clone(), session.clone(), Arc::clone(&lost)));
        Ok(ConsulLock {
            client: client.clone(),
            session,
            key,
            lost,
            renewer,
        })
    }

    /// Set when the session could not be kept: another run may take the cluster now.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lost)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Ends the session; Consul deletes the key with it.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(error) = self.client.destroy_session(&self.session).await {
            tracing::warn!(
                "could not release the Consul lock {} ({}); it ends by itself within {}",
                self.key,
                printable(&error.to_string()),
                humantime::format_duration(LOCK_TTL * 2)
            );
        }
    }
}

impl Drop for ConsulLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews every TTL/2. A session Consul no longer knows is lost at once; an agent that does not
/// answer is lost once the session may have expired (2 × TTL since the last renewal).
async fn renew(client: ConsulClient, session: String, lost: Arc<AtomicBool>) {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(LOCK_TTL / 2).await;
        match client.renew_session(&session).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!(
                    "the run's Consul session {} is gone: the lock is lost",
                    printable(&session)
                );
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(error) => {
                tracing::warn!(
                    "cannot renew the run's Consul lock: {}",
                    printable(&error.to_string())
                );
                if last_renewed.elapsed() >= LOCK_TTL * 2 {
                    lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }
}
