//! The simulators seen from the outside: a Modbus TCP client, the control port and
//! the `cryosim` binary.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use cryosim::{Scenario, Sim, SimConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_modbus::client::{Reader, Writer, tcp};
use tokio_modbus::{ExceptionCode, Slave};

fn local0() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

async fn control(addr: SocketAddr, command: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("{command}\n").as_bytes()).await.unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.unwrap();
    line.trim_end().to_string()
}

#[tokio::test]
async fn library_serves_modbus_and_control() {
    let cfg = SimConfig {
        modbus_tcp: local0(),
        control: local0(),
        ..SimConfig::default()
    };
    let sim = Sim::start(cfg).await.unwrap();
    let modbus = sim.modbus_tcp_addr().unwrap();
    let ctl = sim.control_addr().unwrap();
    assert_ne!(modbus.port(), 0);

    let mut dewar = tcp::connect_slave(modbus, Slave(1)).await.unwrap();
    let words = dewar.read_input_registers(0, 4).await.unwrap().unwrap();
    assert_eq!(words, vec![0xC33E, 0x8000, 0x8000, 0xC33E]);
    assert_eq!(
        dewar.read_holding_registers(10, 2).await.unwrap().unwrap(),
        vec![853, 0xF88F]
    );
    assert_eq!(
        dewar.read_holding_registers(0, 1).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        dewar.read_input_registers(0, 126).await.unwrap(),
        Err(ExceptionCode::IllegalDataValue)
    );
    dewar.write_single_coil(0, true).await.unwrap().unwrap();
    assert_eq!(dewar.read_coils(0, 1).await.unwrap().unwrap(), vec![true]);

    let mut nobody = tcp::connect_slave(modbus, Slave(9)).await.unwrap();
    assert_eq!(
        nobody.read_input_registers(0, 1).await.unwrap(),
        Err(ExceptionCode::GatewayTargetDevice)
    );

    let mut ups = tcp::connect_slave(modbus, Slave(3)).await.unwrap();
    assert_eq!(
        ups.read_input_registers(0, 5).await.unwrap().unwrap(),
        vec![100, 3600, 2300, 0, 0]
    );
    sim.set_scenario("ups-1", Scenario::PowerLoss).unwrap();
    assert_eq!(
        ups.read_discrete_inputs(0, 4).await.unwrap().unwrap(),
        vec![true, false, false, false]
    );

    assert_eq!(control(ctl, "set dewar-1 probe-fault").await, "ok");
    let words = dewar.read_holding_registers(11, 1).await.unwrap().unwrap();
    assert_eq!(words, vec![0x8000]);
    let get: serde_json::Value = serde_json::from_str(&control(ctl, "get dewar-1").await).unwrap();
    assert_eq!(get["temp_c"], serde_json::Value::Null);
    assert_eq!(get["fill_valve"], 1);

    sim.set_scenario("dewar-1", Scenario::Silent).unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(300), dewar.read_input_registers(0, 2)).await;
    assert!(silent.is_err(), "a silent unit must not answer: {silent:?}");

    sim.shutdown().await;
    assert!(
        TcpStream::connect(modbus).await.is_err(),
        "listener closed after shutdown"
    );
}

#[tokio::test]
async fn binary_announces_its_ports_and_exits_on_sigterm() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cryosim"))
        .args(["run", "--modbus-tcp", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(["--scenario", "dewar-1=lid-open", "--scenario", "freezer-7=warmup:2.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ready"));
    let fields: std::collections::HashMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
    let modbus: SocketAddr = fields["modbus_tcp"].parse().unwrap();
    let ctl: SocketAddr = fields["control"].parse().unwrap();

    let mut dewar = tcp::connect_slave(modbus, Slave(1)).await.unwrap();
    assert_eq!(dewar.read_discrete_inputs(0, 1).await.unwrap().unwrap(), vec![true]);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cryosim"))
        .args(["ctl", "--control", &ctl.to_string(), "get", "freezer-7"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let get: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(get["scenario"], "warmup:2.0");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cryosim"))
        .args(["ctl", "--control", &ctl.to_string(), "set", "ups-1", "probe-fault"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
