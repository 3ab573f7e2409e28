//! The double's background work: HTTP health checks run on their interval (GET, Consul's
//! headers and verdicts, redirects not followed), sessions expired at 2 × TTL, and the reaper
//! removing services critical for longer than `DeregisterCriticalServiceAfter`. One ticker
//! drives it all; each probe runs in its own task so a slow member never delays another's check
//! or a session's expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::App;
use crate::store::Status;

/// Sessions expire and checks start within this of their due time.
const TICK: Duration = Duration::from_millis(100);
/// Consul keeps at most this much of a check's output.
const OUTPUT_LIMIT: usize = 4096;

pub(crate) async fn run(app: Arc<App>, reap_interval: Duration) {
    let client = match check_client() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!("cannot build the HTTP client for checks: {error}");
            return;
        }
    };
    let mut next_reap = Instant::now() + reap_interval;
    let mut ticker = tokio::time::interval(TICK);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let (expired, reaped, due) = {
            let mut store = app.store();
            let expired = store.expire_sessions(now);
            let reaped = if now >= next_reap {
                next_reap = now + reap_interval;
                store.reap(now)
            } else {
                false
            };
            (expired, reaped, store.due_checks(now))
        };
        if expired || reaped {
            app.changed();
        }
        for (id, url, timeout) in due {
            tokio::spawn(probe(Arc::clone(&app), client.clone(), id, url, timeout));
        }
    }
}

/// The checks' HTTP client. Like every HTTP client pgha ships, it follows no redirects: the
/// double behaves like a Consul check with `disable_redirects: true`, for which a 3xx is
/// critical like any answer outside 2xx and 429.
fn check_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

async fn probe(app: Arc<App>, client: reqwest::Client, id: String, url: String, timeout: Duration) {
    let (status, output) = http_check(&client, &url, timeout).await;
    let changed = app
        .store()
        .check_result(&id, status, output, Instant::now());
    if changed {
        tracing::info!("check {id}: {}", status.as_str());
        app.changed();
    }
}

/// Consul's HTTP check: 2xx passing, 429 warning, anything else (or no answer) critical.
async fn http_check(client: &reqwest::Client, url: &str, timeout: Duration) -> (Status, String) {
    let request = client
        .get(url)
        .header("User-Agent", "Consul Health Check")
        .header("Accept", "text/plain, text/*, */*")
        .timeout(timeout);
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return (Status::Critical, format!("Get \"{url}\": {error}")),
    };
    let code = response.status();
    let body = response.text().await.unwrap_or_default();
    let mut cut = body.len().min(OUTPUT_LIMIT);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    let status = if code.is_success() {
        Status::Passing
    } else if code.as_u16() == 429 {
        Status::Warning
    } else {
        Status::Critical
    };
    let output = format!(
        "HTTP GET {url}: {} {} Output: {}",
        code.as_u16(),
        code.canonical_reason().unwrap_or(""),
        &body[..cut]
    );
    (status, output)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::{Status, check_client, http_check};

    #[tokio::test]
    async fn a_redirecting_check_is_critical_and_the_other_host_hears_nothing() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let other = MockServer::start().await;
        let member = MockServer::start().await;
        Mock::given(path("/primary"))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("Location", format!("{}/primary", other.uri())),
            )
            .mount(&member)
            .await;
        let url = format!("{}/primary", member.uri());
        let (status, output) =
            http_check(&check_client().unwrap(), &url, Duration::from_secs(2)).await;
        assert_eq!(status, Status::Critical, "{output}");
        assert!(
            output.starts_with(&format!("HTTP GET {url}: 307")),
            "{output}"
        );
        assert!(other.received_requests().await.unwrap().is_empty());
    }
}
