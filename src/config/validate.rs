//! Turns a [`RawConfig`] into a checked [`Config`]: each section's own function, in the
//! order problems are listed, then the parts put together. Every problem is collected
//! with its key path instead of stopping at the first one.

use std::path::Path;

pub use super::check::Secrets;
use super::check::{Checker, Declared};
use super::notify::NotifyConfig;
use super::raw::RawConfig;
use super::rules::RuleInputs;
use super::sensor::SensorContext;
use super::{Config, Problem};
use super::{
    alarm_check, api, calibration, channel, heartbeat, influx, maintenance, modbus, monitor, mqtt, notify, output,
    quality, rules, sensor, serial, site, store, ups,
};

/// Checks everything and builds the [`Config`] the daemon runs on. `base` is the
/// directory relative paths are resolved against (the config file's).
pub fn validate(raw: &RawConfig, base: &Path) -> Result<Config, Vec<Problem>> {
    validate_with(raw, base, Secrets::Resolve)
}

/// [`validate`], resolving secrets as `secrets` says.
pub fn validate_with(raw: &RawConfig, base: &Path, secrets: Secrets) -> Result<Config, Vec<Problem>> {
    let mut c = Checker {
        secrets,
        ..Checker::default()
    };
    let declared = Declared::new(raw);

    let site = site::site(&mut c, raw.site.as_ref());
    let store = store::store(&mut c, raw.store.as_ref(), base);
    let mqtt = raw.mqtt.as_ref().and_then(|m| mqtt::mqtt(&mut c, m, base));
    let influx = raw.influx.as_ref().and_then(|i| influx::influx(&mut c, i, base));
    let heartbeat = (raw.heartbeat.as_ref()).map(|h| heartbeat::heartbeat(&mut c, h, raw.mqtt.is_some(), &declared));
    let standby = (raw.standby.as_ref())
        .map(|s| heartbeat::standby(&mut c, s, raw.mqtt.is_some(), heartbeat.as_ref(), &declared));

    let devices = modbus::devices(&mut c, raw.modbus.as_ref().map_or(&[], |m| &m.device), base);
    let serial_devices = serial::devices(&mut c, raw.serial.as_ref().map_or(&[], |s| &s.device), base);
    let mut assets = sensor::assets(&mut c, &raw.asset);
    let ups = ups::ups(&mut c, &raw.ups, base);
    let sensor_context = SensorContext {
        devices: &devices,
        serial_devices: &serial_devices,
        assets: &assets,
        ups: &declared.ups,
        mqtt: mqtt.is_some(),
    };
    let mut sensors = sensor::sensors(&mut c, &raw.sensor, &sensor_context);
    let serial_events = serial::events(
        &mut c,
        raw.serial.as_ref().map_or(&[], |s| &s.event),
        &serial_devices,
        &sensors,
    );
    monitor::check_reserved(
        &mut c,
        raw.asset.iter().map(|a| a.id.as_str()),
        raw.sensor.iter().map(|s| s.id.as_str()),
    );
    let mut calibration = calibration::calibration(&mut c, raw.calibration.as_ref(), &sensors);
    monitor::add_sensor(&mut assets, &mut sensors, raw.api.is_some());
    if let (Some(cal), Some(monitor)) = (calibration.as_mut(), calibration::monitor_asset(&assets)) {
        calibration::add_sensors(cal, &mut sensors, monitor);
    }

    let inputs = RuleInputs {
        sensors: &sensors,
        assets: &assets,
        devices: &devices,
        ups: &ups,
        sensor_idx: sensors.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect(),
        escalations: &declared.escalations,
    };
    let mut rules = rules::rules(&mut c, &raw.rule, &inputs);
    monitor::add_rule(&mut rules, &sensors);
    if let Some(cal) = &calibration {
        calibration::add_rules(cal, &mut rules, &sensors);
    }
    let maintenance = maintenance::maintenance(&mut c, &raw.maintenance, &inputs.sensor_idx);
    let test_pages = maintenance::test_pages(&mut c, &raw.test_page, &declared);

    let contacts = notify::contacts(&mut c, &raw.contact);
    let groups = notify::groups(&mut c, &raw.group, &declared);
    let schedules = notify::schedules(&mut c, &raw.schedule, &declared, &site.timezone);
    let escalations = notify::escalations(&mut c, &raw.escalation, &declared);
    let routes = notify::routes(&mut c, &raw.route, &declared);
    let channels = channel::channels(&mut c, &raw.channel, base);
    let sections = api::api(&mut c, raw.api.as_ref(), base);
    let reasons = quality::reasons(&mut c, &raw.reason);
    let quality = quality::quality(&mut c, raw.quality.as_ref(), &raw.review, &declared);
    let alarm_check = alarm_check::alarm_check(
        &mut c,
        raw.alarm_check.as_ref(),
        &raw.alarm_check_schedule,
        alarm_check::Known {
            assets: &assets,
            sensors: &sensors,
            rules: &rules,
        },
    );

    let outputs = output::outputs(&mut c, &raw.output, &devices);

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Config {
        site,
        store,
        influx,
        heartbeat,
        standby,
        mqtt,
        devices,
        serial_devices,
        serial_events,
        ups,
        assets,
        sensors,
        rules,
        maintenance,
        test_pages,
        notify: NotifyConfig {
            contacts,
            groups,
            schedules,
            escalations,
            routes,
            channels,
        },
        sections,
        reasons,
        quality,
        calibration,
        alarm_check,
        outputs,
    })
}
