//! Who is asking, from where: recorded with sessions and audit rows, and compared by
//! anomaly detection (device and location).

use crate::error::ServiceError;
use crate::identity::sha256_hex;
use crate::input::plain_text;
use std::net::IpAddr;

/// The longest user agent kept; the rest is cut, since the header is client-controlled
/// metadata and refusing a request over it would help nobody.
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// The longest device fingerprint accepted (it is hashed, never stored as given).
pub const MAX_DEVICE_FINGERPRINT_CHARS: usize = 1024;
/// The longest city name kept.
pub const MAX_CITY_CHARS: usize = 100;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestMeta {
    pub ip_address: Option<IpAddr>,
    user_agent: Option<String>,
    device_hash: Option<String>,
    location: Option<Location>,
}

/// A coarse location as a CDN reports it (Cloudflare's `CF-IPCountry`, `cf-ipcity`,
/// `cf-iplatitude`, `cf-iplongitude`, or the like); no GeoIP database is involved.
#[derive(Clone, Debug, PartialEq)]
pub struct Location {
    country: Option<String>,
    city: Option<String>,
    coordinates: Option<(f64, f64)>,
}

impl Location {
    /// Parses what the headers said. A country is two ASCII letters (stored upper
    /// case; `XX` and `T1`, Cloudflare's "unknown" and Tor, count as none); coordinates
    /// are degrees, latitude within ±90 and longitude within ±180.
    ///
    /// # Errors
    /// `Validation` naming the field.
    pub fn parse(
        country: Option<&str>,
        city: Option<&str>,
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Result<Self, ServiceError> {
        let country = match country.map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                let upper = c.to_ascii_uppercase();
                (upper != "XX" && upper != "T1").then_some(upper)
            }
            Some(_) => {
                return Err(ServiceError::validation(
                    "country",
                    "expected an ISO 3166-1 alpha-2 code such as JP",
                ));
            }
        };
        let city = city
            .filter(|c| !c.trim().is_empty())
            .map(|c| plain_text("city", c, MAX_CITY_CHARS))
            .transpose()?;
        let coordinates = match (latitude, longitude) {
            (None, None) => None,
            (Some(lat), Some(lng))
                if lat.is_finite()
                    && lng.is_finite()
                    && (-90.0..=90.0).contains(&lat)
                    && (-180.0..=180.0).contains(&lng) =>
            {
                Some((lat, lng))
            }
            _ => {
                return Err(ServiceError::validation(
                    "coordinates",
                    "expected both latitude (-90 to 90) and longitude (-180 to 180)",
                ));
            }
        };
        Ok(Self {
            country,
            city,
            coordinates,
        })
    }

    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    pub fn city(&self) -> Option<&str> {
        self.city.as_deref()
    }

    /// (latitude, longitude) in degrees.
    pub fn coordinates(&self) -> Option<(f64, f64)> {
        self.coordinates
    }
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
            device_hash: None,
            location: None,
        }
    }

    /// For work no client asked for (jobs, the seeder).
    pub fn system() -> Self {
        Self::default()
    }

    /// The device fingerprint the application computed (a cookie id, a client-side
    /// fingerprint): kept only as its SHA-256, to recognise the device next time.
    ///
    /// # Errors
    /// `Validation` for an empty or overlong fingerprint.
    pub fn with_device(mut self, fingerprint: &str) -> Result<Self, ServiceError> {
        let fingerprint = fingerprint.trim();
        if fingerprint.is_empty() || fingerprint.chars().count() > MAX_DEVICE_FINGERPRINT_CHARS {
            return Err(ServiceError::validation(
                "device fingerprint",
                "expected 1 to 1024 characters",
            ));
        }
        self.device_hash = Some(sha256_hex(fingerprint));
        Ok(self)
    }

    pub fn with_location(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// Hex SHA-256 of the device fingerprint, if the application supplied one.
    pub fn device_hash(&self) -> Option<&str> {
        self.device_hash.as_deref()
    }

    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    pub(crate) fn ip_string(&self) -> Option<String> {
        self.ip_address.map(|ip| ip.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_checked_and_unknown_countries_dropped() {
        let tokyo = Location::parse(Some("jp"), Some(" 東京 "), Some(35.68), Some(139.69)).unwrap();
        assert_eq!(tokyo.country(), Some("JP"));
        assert_eq!(tokyo.city(), Some("東京"));
        assert_eq!(
            Location::parse(Some("XX"), None, None, None)
                .unwrap()
                .country(),
            None
        );
        assert!(Location::parse(Some("JPN"), None, None, None).is_err());
        assert!(Location::parse(None, None, Some(91.0), Some(0.0)).is_err());
        assert!(Location::parse(None, None, Some(f64::NAN), Some(0.0)).is_err());
        assert!(Location::parse(None, None, Some(1.0), None).is_err());
        assert!(Location::parse(None, Some("a\nb"), None, None).is_err());
        assert!(RequestMeta::system().with_device(" ").is_err());
        let meta = RequestMeta::system().with_device("device-1").unwrap();
        assert_eq!(meta.device_hash().map(str::len), Some(64));
        assert!(!format!("{meta:?}").contains("device-1"));
    }
}
