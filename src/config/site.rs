//! `[site]`: the name and time zone of the site.

use super::check::Checker;
use super::raw;

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: String,
    pub timezone: jiff::tz::TimeZone,
}

/// Checks `[site]`, which every configuration needs.
pub(super) fn site(c: &mut Checker, s: Option<&raw::Site>) -> SiteConfig {
    let Some(s) = s else {
        c.err("site", "missing section [site] (name, timezone)");
        return SiteConfig {
            name: String::new(),
            timezone: jiff::tz::TimeZone::UTC,
        };
    };
    let tz_name = s.timezone.as_deref().unwrap_or("UTC");
    let timezone = jiff::tz::TimeZone::get(tz_name).unwrap_or_else(|_| {
        c.err("site.timezone", format!("unknown IANA time zone {tz_name:?}"));
        jiff::tz::TimeZone::UTC
    });
    c.printable("site.name", &s.name);
    SiteConfig {
        name: s.name.clone(),
        timezone,
    }
}
