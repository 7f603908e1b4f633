//! The VictoriaMetrics fixture against the real server: line protocol in, series out,
//! and the ways its storage differs from InfluxDB that sink tests rely on (no
//! deduplication, millisecond truncation, silent rejection).

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::http::decode_chunked;
use common::victoria::Victoria;

const WRITE: &str = "/api/v2/write?org=o&bucket=b&precision=ns";

/// Epoch nanoseconds one hour ago, on a whole millisecond.
fn an_hour_ago_ns() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    (now.as_millis() as i64 - 3_600_000) * 1_000_000
}

fn write(vm: &Victoria, lines: &str) {
    let (status, body) = vm.post(WRITE, lines);
    assert_eq!(status, 204, "write answered {status}: {body}");
}

#[test]
fn line_protocol_lands_as_measurement_field_series_with_millisecond_timestamps() {
    let vm = Victoria::start();
    let t = an_hour_ago_ns();
    let tags = "site=Lab\\ B,asset=dewar-1,sensor=dewar-1.temp,quantity=temperature,unit=degC";
    write(
        &vm,
        &format!(
            "cryo_reading,{tags} value=-190.5,quality=\"good\" {t0}\n\
             cryo_reading,{tags} value=-189.25,quality=\"good\" {t1}\n\
             cryo_reading,{tags} quality=\"comm_error\" {t2}\n",
            t0 = t + 999_999,
            t1 = t + 60_000_000_000 + 500_000,
            t2 = t + 120_000_000_000,
        ),
    );

    let series = vm.export(r#"{__name__=~"cryo_reading_.*"}"#);
    let names: Vec<&str> = series.iter().map(|s| s.label("__name__")).collect();
    assert_eq!(names, ["cryo_reading_quality", "cryo_reading_value"], "{series:?}");

    let value = &series[1];
    assert_eq!(value.label("site"), "Lab B");
    assert_eq!(value.label("asset"), "dewar-1");
    assert_eq!(value.label("sensor"), "dewar-1.temp");
    assert_eq!(value.label("quantity"), "temperature");
    assert_eq!(value.label("unit"), "degC");
    assert_eq!(value.labels.len(), 6, "{:?}", value.labels);
    // Sub-millisecond parts are cut off, not rounded (…999999 ns stays on the ms).
    let ms = t / 1_000_000;
    assert_eq!(value.points(), [(ms, -190.5), (ms + 60_000, -189.25)]);

    // String fields become 0; the reading without a value still has its quality.
    let quality = &series[0];
    assert_eq!(quality.values, [0.0, 0.0, 0.0]);
    assert_eq!(quality.timestamps, [ms, ms + 60_000, ms + 120_000]);
    assert_eq!(vm.samples("cryo_reading_value"), 2);
    assert_eq!(vm.samples("cryo_reading_quality"), 3);
    assert_eq!(vm.samples("no_such_metric"), 0);
}

#[test]
fn repeated_points_are_all_kept_and_rejected_lines_only_logged() {
    let vm = Victoria::start();
    let t = an_hour_ago_ns();
    let ms = t / 1_000_000;

    // The same point twice, in two requests: exported twice.
    let point = format!("dup,s=a value=1.5 {t}\n");
    write(&vm, &point);
    write(&vm, &point);
    // Same series and timestamp, another value: both kept, first write first.
    write(&vm, &format!("clash,s=a value=2.5 {t}\n"));
    write(&vm, &format!("clash,s=a value=1.5 {t}\n"));

    let dup = vm.export("dup_value");
    assert_eq!(dup.len(), 1, "{dup:?}");
    assert_eq!(dup[0].points(), [(ms, 1.5), (ms, 1.5)]);
    let clash = vm.export("clash_value");
    assert_eq!(clash[0].points(), [(ms, 2.5), (ms, 1.5)]);

    // Malformed lines are answered 204 like good ones, skipped, and logged.
    let in_3_days = t + 4 * 86_400_000_000_000; // t is an hour ago
    write(
        &vm,
        &format!(
            "bad line here\nbad,s=a value= {t}\ngood,s=a value=1 {t}\n\
             late,s=future value=1 {in_3_days}\nlate,s=before_1970 value=1 -1000000000\n"
        ),
    );
    assert_eq!(vm.samples("good_value"), 1);
    assert_eq!(vm.samples("bad_value"), 0);
    assert_eq!(
        vm.samples("late_value"),
        0,
        "points 3 days ahead or before 1970 are dropped"
    );
    let log = vm.log();
    assert!(
        log.contains("cannot unmarshal InfluxDB line \"bad line here\""),
        "log:\n{log}"
    );

    // Still no deduplication once the data is on disk and merged.
    let (status, _) = vm.get("/internal/force_merge");
    assert_eq!(status, 200);
    assert_eq!(vm.samples("dup_value"), 2);
    assert_eq!(vm.export("clash_value")[0].points(), [(ms, 2.5), (ms, 1.5)]);
}

#[test]
fn stop_and_start_again_keep_port_and_data_duplicates_included() {
    let mut vm = Victoria::start();
    let url = vm.url();
    let t = an_hour_ago_ns();
    // Enough series that the export comes back chunked.
    let lines: String = (0..500)
        .map(|i| {
            format!("cryo_threshold,site=lab,asset=a{i},rule=r{i},kind=high,severity=critical threshold={i}.5 {t}\n")
        })
        .collect();
    write(&vm, &lines);
    // One point written twice survives the restart twice.
    write(&vm, &format!("dup,s=a value=1 {t}\n"));
    write(&vm, &format!("dup,s=a value=1 {t}\n"));

    vm.stop();
    assert!(!vm.running());
    vm.start_again();
    assert!(vm.running());
    assert_eq!(vm.url(), url);

    let series = vm.export("cryo_threshold_threshold");
    assert_eq!(series.len(), 500);
    let a7 = series
        .iter()
        .find(|s| s.label("asset") == "a7")
        .expect("series of asset a7");
    assert_eq!(a7.label("rule"), "r7");
    assert_eq!(a7.label("kind"), "high");
    assert_eq!(a7.points(), [(t / 1_000_000, 7.5)]);
    assert_eq!(vm.samples("cryo_threshold_threshold"), 500);
    assert_eq!(vm.samples("dup_value"), 2);
}

#[test]
fn chunked_bodies_decode_with_extensions_and_trailers() {
    let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
    assert_eq!(decode_chunked(raw).unwrap(), b"hello, world");
    assert!(decode_chunked(b"5\r\nhel").is_err());
    assert!(decode_chunked(b"zz\r\n").is_err());
}

#[test]
fn a_server_with_basic_auth_refuses_anonymous_writes_but_not_the_fixture() {
    let mut vm = Victoria::start_with(&["-httpAuth.username=admin", "-httpAuth.password=secret"]);
    let t = an_hour_ago_ns();
    write(&vm, &format!("auth,s=a value=1 {t}\n"));
    assert_eq!(vm.samples("auth_value"), 1);

    // What a client without credentials gets, e.g. an InfluxDB client sending a token.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", vm.port)).expect("connect");
    let body = format!("auth,s=b value=1 {t}\n");
    write!(
        stream,
        "POST {WRITE} HTTP/1.1\r\nHost: x\r\nAuthorization: Token abc\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    vm.stop();
    vm.set_args(&[]);
    vm.start_again();
    assert_eq!(vm.samples("auth_value"), 1);
}
