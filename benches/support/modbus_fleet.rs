//! A fleet of Modbus TCP devices behind one listener (a gateway): unit ids `1..=devices`,
//! each with `registers` input registers from address 0, served by tokio-modbus's
//! server. Every request is counted at the server, with the registers it asked for, so a
//! bench can tell how many requests a client needed per poll.

use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

/// What the fleet has served so far.
#[derive(Default)]
pub struct Counts {
    /// Read requests answered with data.
    pub requests: AtomicU64,
    /// Registers those requests asked for.
    pub registers: AtomicU64,
    /// Requests answered with an exception (unknown unit, address or function).
    pub exceptions: AtomicU64,
    /// Read requests per unit (index = unit id - 1).
    pub per_unit: Vec<AtomicU64>,
}

impl Counts {
    /// (requests, registers, exceptions) now.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.registers.load(Ordering::Relaxed),
            self.exceptions.load(Ordering::Relaxed),
        )
    }

    /// How many units have been asked at least once.
    pub fn units_polled(&self) -> usize {
        self.per_unit.iter().filter(|c| c.load(Ordering::Relaxed) > 0).count()
    }
}

#[derive(Clone)]
struct Fleet {
    devices: u16,
    registers: u16,
    counts: Arc<Counts>,
}

/// The i16 a register serves: about -80 °C in 0.1 °C, a little different per register.
pub fn served_value(unit: u8, address: u16) -> i16 {
    -800 - (i16::from(unit) + address as i16) % 10
}

impl Fleet {
    fn handle(&self, req: SlaveRequest<'static>) -> Result<Option<Response>, ExceptionCode> {
        let unit = req.slave;
        if unit == 0 || u16::from(unit) > self.devices {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        let (Request::ReadInputRegisters(addr, qty) | Request::ReadHoldingRegisters(addr, qty)) = req.request else {
            return Err(ExceptionCode::IllegalFunction);
        };
        if qty == 0 || qty > 125 {
            return Err(ExceptionCode::IllegalDataValue);
        }
        if u32::from(addr) + u32::from(qty) > u32::from(self.registers) {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        self.counts.registers.fetch_add(u64::from(qty), Ordering::Relaxed);
        self.counts.per_unit[usize::from(unit) - 1].fetch_add(1, Ordering::Relaxed);
        let words = (addr..addr + qty).map(|a| served_value(unit, a) as u16).collect();
        Ok(Some(match req.request {
            Request::ReadInputRegisters(..) => Response::ReadInputRegisters(words),
            _ => Response::ReadHoldingRegisters(words),
        }))
    }
}

impl Service for Fleet {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let res = self.handle(req);
        if res.is_err() {
            self.counts.exceptions.fetch_add(1, Ordering::Relaxed);
        }
        ready(res)
    }
}

/// The running fleet: its address and counters. The server runs on its own thread (a
/// single-threaded runtime) until the process ends.
pub struct FleetServer {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
}

impl FleetServer {
    /// Serves `devices` units (1..=devices, at most 247) of `registers` input registers
    /// each on a free loopback port.
    pub fn start(devices: u16, registers: u16) -> FleetServer {
        assert!((1..=247).contains(&devices), "Modbus unit ids run from 1 to 247");
        let counts = Arc::new(Counts {
            per_unit: (0..devices).map(|_| AtomicU64::new(0)).collect(),
            ..Default::default()
        });
        let fleet = Fleet {
            devices,
            registers,
            counts: counts.clone(),
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("modbus-fleet".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fleet runtime");
                rt.block_on(async move {
                    // A deep accept queue: hundreds of devices connect at the same moment,
                    // and a full queue would delay some connections past the client's
                    // connect timeout.
                    let socket = tokio::net::TcpSocket::new_v4().expect("fleet socket");
                    socket.bind(([127, 0, 0, 1], 0).into()).expect("bind the Modbus fleet");
                    let listener = socket.listen(1024).expect("fleet listener");
                    let _ = addr_tx.send(listener.local_addr().expect("fleet address"));
                    let server = Server::new(listener);
                    let on_connected = |stream, peer| {
                        let fleet = fleet.clone();
                        async move { accept_tcp_connection(stream, peer, move |_| Ok(Some(fleet.clone()))) }
                    };
                    loop {
                        if let Err(e) = server.serve(&on_connected, |_| {}).await {
                            eprintln!("modbus fleet: accept failed: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
            })
            .expect("fleet thread");
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the Modbus fleet is listening");
        FleetServer { addr, counts }
    }
}
