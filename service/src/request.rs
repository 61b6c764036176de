//! Who is asking, from where: recorded with sessions and audit rows.

use std::net::IpAddr;

/// The longest user agent kept; the rest is cut, since the header is client-controlled
/// metadata and refusing a request over it would help nobody.
pub const MAX_USER_AGENT_CHARS: usize = 512;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub ip_address: Option<IpAddr>,
    user_agent: Option<String>,
}

impl RequestMeta {
    pub fn new(ip_address: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(str::trim)
            .filter(|ua| !ua.is_empty())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
        Self {
            ip_address,
            user_agent,
        }
    }

    /// For work no client asked for (jobs, the seeder).
    pub fn system() -> Self {
        Self::default()
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    pub(crate) fn ip_string(&self) -> Option<String> {
        self.ip_address.map(|ip| ip.to_string())
    }
}
