//! The rules every HTTP client of pgha follows (Patroni, Consul, Alertmanager): no proxies, no
//! redirects, no credentials in URLs. A followed 307/308 would re-send a write, its body and its
//! credentials (the Consul token, which reqwest does not strip) to whatever host the answer
//! names; a redirect is instead an error naming both URLs. A URL's `user:password@` would be
//! copied wherever the URL goes — plans, journals, messages — so URLs from the user are refused
//! with it, URLs from the network lose it, and messages show `***` in its place.

use reqwest::header::LOCATION;

/// A reqwest client builder with pgha's defaults: no proxies, no redirects, pgha's user agent.
/// Callers add their timeouts and TLS settings.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pgha/", env!("CARGO_PKG_VERSION")))
}

/// Where a 3xx answer pointed: pgha reports it and goes nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub status: u16,
    /// The absolute target (relative `Location`s resolved against the request's URL), or a
    /// note that the answer named none.
    pub location: String,
}

impl Redirect {
    /// The redirect `response` asks for, if it is one.
    pub(crate) fn of(response: &reqwest::Response) -> Option<Redirect> {
        let status = response.status();
        if !status.is_redirection() {
            return None;
        }
        let location = match response.headers().get(LOCATION) {
            None => "(no Location header)".to_string(),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|text| response.url().join(text).ok())
                .map_or_else(
                    || "(an unreadable Location header)".to_string(),
                    |url| shorten(&hide_userinfo(url.as_str())),
                ),
        };
        Some(Redirect {
            status: status.as_u16(),
            location,
        })
    }
}

/// Refuses a URL (or a `host:port`) from the user that carries credentials: it names the
/// text with `***` in their place and says, in `instead`, where credentials belong.
pub fn refuse_userinfo(text: &str, instead: &str) -> Result<(), String> {
    if userinfo(text).is_none() {
        return Ok(());
    }
    Err(format!(
        "{:?}: no credentials in URLs (pgha shows URLs in plans, journals and messages); {instead}",
        hide_userinfo(text)
    ))
}

/// `text` with any `user:password@` replaced by `***@`, for showing an address that may carry
/// credentials.
pub fn hide_userinfo(text: &str) -> String {
    match userinfo(text) {
        Some((start, at)) => format!("{}***{}", &text[..start], &text[at..]),
        None => text.to_string(),
    }
}

/// `text` without its `user:password@`, for a URL from the network that pgha will use: pgha
/// sends only the credentials its own settings name.
pub fn strip_userinfo(text: &str) -> String {
    match userinfo(text) {
        Some((start, at)) => format!("{}{}", &text[..start], &text[at + 1..]),
        None => text.to_string(),
    }
}

/// Where the userinfo is: from the start of the authority to the `@` that ends it. Works on text
/// that is not a valid URL too (a bad port, no scheme): when in doubt, it finds more.
fn userinfo(text: &str) -> Option<(usize, usize)> {
    let start = text.find("://").map_or(0, |index| index + 3);
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |index| start + index);
    // The last `@` ends the userinfo, as URL parsers read it (a password may contain `@`).
    text[start..end].rfind('@').map(|at| (start, start + at))
}

/// Keeps an address from the network to one readable piece of a one-line message.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 200;
    if text.chars().count() <= LIMIT {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(LIMIT).collect::<String>())
    }
}

/// rustls's process-wide crypto provider (ring), installed once: every TLS client (REST,
/// Consul, Alertmanager, PostgreSQL) needs one.
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider is installed already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::{hide_userinfo, refuse_userinfo, shorten, strip_userinfo};

    #[test]
    fn userinfo_is_hidden_even_in_text_that_is_not_a_url() {
        assert_eq!(
            hide_userinfo("http://u:s3cret@10.0.0.1:8008/x@y"),
            "http://***@10.0.0.1:8008/x@y"
        );
        assert_eq!(hide_userinfo("https://p@ss:w@rd@h"), "https://***@h");
        assert_eq!(hide_userinfo("u:s3cret@10.0.0.1:8500"), "***@10.0.0.1:8500");
        assert_eq!(
            hide_userinfo("http://u:s3cret@h:port?"),
            "http://***@h:port?"
        );
        assert_eq!(
            hide_userinfo("http://10.0.0.1:8008"),
            "http://10.0.0.1:8008"
        );
    }

    #[test]
    fn urls_from_the_network_lose_their_userinfo_and_nothing_else() {
        assert_eq!(
            strip_userinfo("http://u:s3cret@10.0.0.1:8008/patroni"),
            "http://10.0.0.1:8008/patroni"
        );
        assert_eq!(strip_userinfo("https://db1:8008"), "https://db1:8008");
    }

    #[test]
    fn a_refusal_says_where_credentials_belong_and_hides_them() {
        assert_eq!(refuse_userinfo("http://h:8008", "unused"), Ok(()));
        assert_eq!(
            refuse_userinfo("http://u@h:8008", "set them elsewhere"),
            Err("\"http://***@h:8008\": no credentials in URLs (pgha shows URLs in plans, journals and messages); set them elsewhere".to_string())
        );
    }

    #[test]
    fn long_locations_are_cut_to_one_readable_piece() {
        assert_eq!(shorten("http://a/b"), "http://a/b");
        let long = format!("http://a/{}", "x".repeat(500));
        assert_eq!(shorten(&long).chars().count(), 201);
    }
}
