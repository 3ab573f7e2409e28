//! The rules every HTTP client of pgha follows (Patroni, Consul, Alertmanager): no proxies, and
//! no redirects. A followed 307/308 would re-send a write, its body and its credentials (the
//! Consul token, which reqwest does not strip) to whatever host the answer names; a redirect is
//! instead an error naming both URLs.

use reqwest::header::LOCATION;

/// A reqwest client builder with pgha's defaults: no proxies, no redirects, pgha's user agent.
/// Callers add their timeouts and TLS settings.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    crate::patroni::install_crypto_provider();
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

/// `text` with any `user:password@` replaced by `***@`, for showing an address that may carry
/// credentials. Works on text that is not a valid URL too: when in doubt, it hides more.
pub fn hide_userinfo(text: &str) -> String {
    let start = text.find("://").map_or(0, |index| index + 3);
    let end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |index| start + index);
    // The last `@` ends the userinfo, as URL parsers read it (a password may contain `@`).
    match text[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::{hide_userinfo, shorten};

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
    fn long_locations_are_cut_to_one_readable_piece() {
        assert_eq!(shorten("http://a/b"), "http://a/b");
        let long = format!("http://a/{}", "x".repeat(500));
        assert_eq!(shorten(&long).chars().count(), 201);
    }
}
