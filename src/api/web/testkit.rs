//! What the pages' unit tests share: a configuration and an alarm whose every outside
//! string is hostile (a script element, then a quote that would end an attribute and
//! start an event handler), and the check that each comes out escaped, never as markup.

use crate::config::Config;
use crate::model::{AlarmState, Severity};
use crate::store::alarms::AlarmRow;

/// The hostile text put into the outside field `field` (which it names, so a test can
/// tell that this very field was shown).
pub fn hostile(field: &str) -> String {
    format!("<script>alert(1)</script>\"onmouseover={field}")
}

/// Asserts that `html` shows each of `fields`' hostile text escaped, and no hostile
/// text anywhere as markup (neither the script element nor the quote that would break
/// out of an attribute value).
pub fn assert_escaped(html: &str, fields: &[&str]) {
    assert!(!html.contains("<script>alert"), "a script element got through:\n{html}");
    assert!(!html.contains("\"onmouseover"), "a quote got through:\n{html}");
    for f in fields {
        let shown = format!("&lt;script&gt;alert(1)&lt;/script&gt;&quot;onmouseover={f}");
        assert!(html.contains(&shown), "{f} is not shown escaped:\n{html}");
    }
}

/// A site with one asset, its sensor and a high-threshold rule, every name, id and
/// label of them hostile: `site-name`, `asset-id`, `asset-name`, `asset-location`,
/// `sensor-id`, `quantity`, `unit` and `rule-id`. The ids are set after the
/// configuration was checked, as the renderers must not rely on that check.
pub fn config() -> Config {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("c.toml");
    let text = "[site]\nname = \"t\"\ntimezone = \"UTC\"\n[store]\npath = \"s.db\"\n\
                [mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nclient_id = \"t\"\n\
                [[asset]]\nid = \"d1\"\nname = \"Dewar\"\nkind = \"ln2_dewar\"\nlocation = \"Room\"\n\
                [[sensor]]\nid = \"d1.temp\"\nasset = \"d1\"\nquantity = \"temperature\"\nunit = \"degC\"\n\
                [sensor.mqtt]\ntopic = \"t\"\n\
                [[rule]]\nid = \"warm\"\nsensor = \"d1.temp\"\nkind = \"high\"\nthreshold = -150.0\nseverity = \"critical\"\n";
    std::fs::write(&path, text).expect("write");
    let mut cfg = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    cfg.site.name = hostile("site-name");
    let asset = &mut cfg.assets[0];
    asset.id = hostile("asset-id");
    asset.name = hostile("asset-name");
    asset.location = hostile("asset-location");
    let sensor = cfg.sensors.iter_mut().find(|s| s.id == "d1.temp").expect("sensor");
    sensor.id = hostile("sensor-id");
    sensor.quantity = hostile("quantity");
    sensor.unit = hostile("unit");
    let rule = cfg.rules.iter_mut().find(|r| r.id == "warm").expect("rule");
    rule.id = hostile("rule-id");
    cfg
}

/// An alarm of [`config`]'s rule, raised at `raised_at`: active, or acknowledged with a
/// hostile `acked-by`, `ack-path` and `comment`; suppressed with a hostile `suppressed`.
pub fn alarm(raised_at: i64, acknowledged: bool) -> AlarmRow {
    let acked = |field: &str| acknowledged.then(|| hostile(field));
    AlarmRow {
        id: 7,
        rule: hostile("rule-id"),
        sensor: hostile("sensor-id"),
        asset: hostile("asset-id"),
        severity: Severity::Critical,
        state: if acknowledged {
            AlarmState::Acknowledged
        } else {
            AlarmState::Active
        },
        raised_at,
        since: raised_at,
        value: Some(-120.0),
        latching: false,
        firing: String::new(),
        returned: false,
        suppressed: Some(hostile("suppressed")),
        incident: None,
        acked_by: acked("acked-by"),
        acked_at: acknowledged.then_some(raised_at + 60_000),
        ack_comment: acked("comment"),
        ack_path: acked("ack-path"),
        cleared_at: None,
    }
}
