//! Scenario math with a controlled clock.

use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn parse_and_display_round_trip() {
    for s in [
        "steady",
        "warmup:2.0",
        "warmup:-0.5",
        "lid-open",
        "power-loss",
        "probe-fault",
        "silent",
    ] {
        let sc: Scenario = s.parse().unwrap();
        assert_eq!(sc.to_string(), s);
    }
    assert_eq!("warmup".parse::<Scenario>(), Ok(Scenario::Warmup { c_per_min: 1.0 }));
    assert_eq!("warmup:3".parse::<Scenario>(), Ok(Scenario::Warmup { c_per_min: 3.0 }));
    assert!("warmup:fast".parse::<Scenario>().is_err());
    assert!("warmup:NaN".parse::<Scenario>().is_err());
    assert!("steady:1".parse::<Scenario>().is_err());
    assert!("melt".parse::<Scenario>().is_err());
}

#[test]
fn steady_values_are_exact_nominal_constants() {
    let t0 = Instant::now();
    let dewar = State::new(Kind::Dewar, t0);
    let r = dewar.reading(t0 + secs(3600), Noise::default());
    assert_eq!(
        r,
        Reading::Dewar {
            temp_c: Some(-190.5),
            level_pct: 85.3,
            lid_open: false,
            fill_valve: false
        }
    );
    let freezer = State::new(Kind::Freezer, t0);
    assert_eq!(
        freezer.reading(t0, Noise::default()),
        Reading::Freezer {
            temp_c: Some(-80.0),
            door_open: false,
            compressor: true
        }
    );
    let ups = State::new(Kind::Ups, t0);
    assert_eq!(
        ups.reading(t0 + secs(100), Noise::default()),
        Reading::Ups {
            on_battery: false,
            low_battery: false,
            generator: false,
            ats_on_generator: false,
            charge_pct: 100,
            runtime_s: 3600,
            input_v: 230.0,
            since_power_loss_s: 0
        }
    );
}

#[test]
fn warmup_rises_linearly_from_the_current_value() {
    let t0 = Instant::now();
    let mut s = State::new(Kind::Dewar, t0);
    s.switch(Scenario::Warmup { c_per_min: 2.0 }, t0 + secs(5));
    assert_eq!(s.physical(t0 + secs(5)).temp_c, -190.5);
    assert_eq!(s.physical(t0 + secs(5 + 90)).temp_c, -187.5);
    // Switching to another warm-up continues from where the first one got to.
    s.switch(Scenario::Warmup { c_per_min: 1.0 }, t0 + secs(5 + 600));
    assert_eq!(s.physical(t0 + secs(5 + 600)).temp_c, -170.5);
    assert_eq!(s.physical(t0 + secs(5 + 600 + 120)).temp_c, -168.5);
    // Holding scenarios keep the current value; steady goes back to nominal.
    s.switch(Scenario::LidOpen, t0 + secs(5 + 720));
    assert_eq!(
        s.reading(t0 + secs(9999), Noise::default()),
        Reading::Dewar {
            temp_c: Some(-168.5),
            level_pct: 85.3,
            lid_open: true,
            fill_valve: false
        }
    );
    s.switch(Scenario::Steady, t0 + secs(10_000));
    assert_eq!(s.physical(t0 + secs(10_001)).temp_c, -190.5);
}

#[test]
fn served_temperature_is_quantized_to_hundredths() {
    let t0 = Instant::now();
    let mut s = State::new(Kind::Freezer, t0);
    s.switch(Scenario::Warmup { c_per_min: 1.0 }, t0);
    let r = s.reading(t0 + secs(10), Noise::default());
    assert_eq!(
        r,
        Reading::Freezer {
            temp_c: Some(-79.83),
            door_open: false,
            compressor: true
        }
    );
}

#[test]
fn probe_fault_hides_the_temperature_and_keeps_the_truth() {
    let t0 = Instant::now();
    let mut s = State::new(Kind::Freezer, t0);
    s.switch(Scenario::Warmup { c_per_min: 6.0 }, t0);
    s.switch(Scenario::ProbeFault, t0 + secs(60));
    assert_eq!(
        s.reading(t0 + secs(600), Noise::default()),
        Reading::Freezer {
            temp_c: None,
            door_open: false,
            compressor: true
        }
    );
    s.switch(Scenario::Warmup { c_per_min: 6.0 }, t0 + secs(600));
    assert_eq!(s.physical(t0 + secs(610)).temp_c, -73.0);
}

#[test]
fn power_loss_timeline_for_the_ups() {
    let t0 = Instant::now();
    let mut s = State::new(Kind::Ups, t0);
    s.switch(Scenario::PowerLoss, t0);
    let at = |s: &State, sec| match s.reading(t0 + secs(sec), Noise::default()) {
        Reading::Ups {
            on_battery,
            low_battery,
            generator,
            ats_on_generator,
            charge_pct,
            runtime_s,
            input_v,
            since_power_loss_s,
        } => (
            on_battery,
            low_battery,
            generator,
            ats_on_generator,
            charge_pct,
            runtime_s,
            input_v,
            since_power_loss_s,
        ),
        other => panic!("not a UPS reading: {other:?}"),
    };
    assert_eq!(at(&s, 0), (true, false, false, false, 100, 3600, 0.0, 0));
    assert_eq!(at(&s, 9), (true, false, false, false, 100, 3591, 0.0, 9));
    assert_eq!(at(&s, 10), (true, false, true, false, 100, 3590, 0.0, 10));
    assert_eq!(at(&s, 15), (true, false, true, true, 100, 3585, 0.0, 15));
    assert_eq!(at(&s, 1800), (true, false, true, true, 50, 1800, 0.0, 1800));
    assert_eq!(at(&s, 3300), (true, true, true, true, 8, 300, 0.0, 3300));
    assert_eq!(at(&s, 5000), (true, true, true, true, 0, 0, 0.0, 5000));
    s.switch(Scenario::Steady, t0 + secs(5000));
    assert_eq!(at(&s, 5001), (false, false, false, false, 100, 3600, 230.0, 0));
}

#[test]
fn power_loss_stops_the_freezer_compressor_and_warms_it() {
    let t0 = Instant::now();
    let mut s = State::new(Kind::Freezer, t0);
    s.switch(Scenario::PowerLoss, t0);
    assert_eq!(
        s.reading(t0 + secs(600), Noise::default()),
        Reading::Freezer {
            temp_c: Some(-75.0),
            door_open: false,
            compressor: false
        }
    );
}

#[test]
fn noise_is_added_before_quantization() {
    let t0 = Instant::now();
    let s = State::new(Kind::Dewar, t0);
    let r = s.reading(
        t0,
        Noise {
            temp_c: 0.034,
            level_pct: -0.04,
        },
    );
    assert_eq!(
        r,
        Reading::Dewar {
            temp_c: Some(-190.47),
            level_pct: 85.3,
            lid_open: false,
            fill_valve: false
        }
    );
}

#[test]
fn scenarios_that_do_not_apply_to_a_ups() {
    assert!(!Scenario::LidOpen.applies_to(Kind::Ups));
    assert!(!Scenario::Warmup { c_per_min: 1.0 }.applies_to(Kind::Ups));
    assert!(!Scenario::ProbeFault.applies_to(Kind::Ups));
    assert!(Scenario::PowerLoss.applies_to(Kind::Dewar));
    assert!(Scenario::Silent.applies_to(Kind::Ups));
}
