//! What each `[sensor.ups] variable` means in terms of NUT variables. Pure: a map of
//! the UPS's variables in, a number or the reason there is none out.

use std::collections::HashMap;

/// A point a sensor can read from a UPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    /// 1 while `ups.status` has the flag `OB` (running on battery), else 0.
    OnBattery,
    /// 1 while `ups.status` has the flag `LB` (battery low), else 0.
    LowBattery,
    /// `battery.runtime`, seconds.
    Runtime,
    /// `battery.charge`, percent.
    Charge,
    /// `input.voltage`, volts.
    InputVoltage,
}

/// Why a variable gave no value although upsd answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The UPS does not report the NUT variable at all.
    Absent(&'static str),
    /// It reports it, but not as a number.
    NotANumber(&'static str, String),
}

/// Whether the driver has not delivered data yet: until it does, upsd lists only
/// `ups.status` with the value `WAIT`. Reading that as "on line" would clear an
/// on-battery alarm whenever the driver restarts during a power cut.
pub fn driver_waiting(vars: &HashMap<String, String>) -> bool {
    vars.get("ups.status").is_some_and(|s| s.trim() == "WAIT")
}

impl Missing {
    /// The NUT variable concerned.
    pub fn variable(&self) -> &'static str {
        match self {
            Missing::Absent(v) | Missing::NotANumber(v, _) => v,
        }
    }
}

impl Variable {
    /// The name used in `[sensor.ups] variable`.
    pub fn parse(name: &str) -> Option<Variable> {
        Some(match name {
            "on_battery" => Variable::OnBattery,
            "low_battery" => Variable::LowBattery,
            "runtime" => Variable::Runtime,
            "charge" => Variable::Charge,
            "input_voltage" => Variable::InputVoltage,
            _ => return None,
        })
    }

    /// The NUT variable it is read from.
    pub fn nut_name(self) -> &'static str {
        match self {
            Variable::OnBattery | Variable::LowBattery => "ups.status",
            Variable::Runtime => "battery.runtime",
            Variable::Charge => "battery.charge",
            Variable::InputVoltage => "input.voltage",
        }
    }

    /// The value from a `LIST VAR` answer.
    pub fn value(self, vars: &HashMap<String, String>) -> Result<f64, Missing> {
        let name = self.nut_name();
        let raw = vars.get(name).ok_or(Missing::Absent(name))?;
        let flag = |f: &str| {
            if raw.split_whitespace().any(|w| w == f) {
                1.0
            } else {
                0.0
            }
        };
        match self {
            Variable::OnBattery => Ok(flag("OB")),
            Variable::LowBattery => Ok(flag("LB")),
            _ => match raw.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(Missing::NotANumber(name, raw.clone())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn status_flags_are_whole_words() {
        let ob_lb = vars(&[("ups.status", "OB LB")]);
        assert_eq!(Variable::OnBattery.value(&ob_lb), Ok(1.0));
        assert_eq!(Variable::LowBattery.value(&ob_lb), Ok(1.0));
        let ol = vars(&[("ups.status", "OL CHRG")]);
        assert_eq!(Variable::OnBattery.value(&ol), Ok(0.0));
        assert_eq!(Variable::LowBattery.value(&ol), Ok(0.0));
        // "OBX" or "LBYPASS"-like words are not the flags.
        let lookalike = vars(&[("ups.status", "OBX ALB")]);
        assert_eq!(Variable::OnBattery.value(&lookalike), Ok(0.0));
        assert_eq!(Variable::LowBattery.value(&lookalike), Ok(0.0));
    }

    #[test]
    fn numbers_are_read_from_their_nut_variables() {
        let v = vars(&[
            ("battery.runtime", "3600"),
            ("battery.charge", "97.5"),
            ("input.voltage", " 230.0 "),
        ]);
        assert_eq!(Variable::Runtime.value(&v), Ok(3600.0));
        assert_eq!(Variable::Charge.value(&v), Ok(97.5));
        assert_eq!(Variable::InputVoltage.value(&v), Ok(230.0));
    }

    #[test]
    fn absent_or_non_numeric_variables_give_no_value() {
        let v = vars(&[("battery.charge", "n/a"), ("input.voltage", "NaN")]);
        assert_eq!(Variable::Runtime.value(&v), Err(Missing::Absent("battery.runtime")));
        assert_eq!(Variable::OnBattery.value(&v), Err(Missing::Absent("ups.status")));
        assert_eq!(
            Variable::Charge.value(&v),
            Err(Missing::NotANumber("battery.charge", "n/a".into()))
        );
        assert!(Variable::InputVoltage.value(&v).is_err());
    }

    #[test]
    fn a_status_of_wait_means_no_data_yet() {
        assert!(driver_waiting(&vars(&[("ups.status", "WAIT")])));
        assert!(!driver_waiting(&vars(&[("ups.status", "OL")])));
        assert!(!driver_waiting(&vars(&[("battery.charge", "100")])));
    }

    #[test]
    fn every_configurable_name_parses() {
        for name in ["on_battery", "low_battery", "runtime", "charge", "input_voltage"] {
            assert!(Variable::parse(name).is_some(), "{name}");
        }
        assert_eq!(Variable::parse("temperature"), None);
    }
}
