//! Modbus TCP and RTU servers over the shared lab.

use std::future::{Ready, ready};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::accept_tcp_connection;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_serial::SerialStream;

use crate::devices::{Block, by_unit};
use crate::lab::SharedLab;

/// Most registers one read may ask for (Modbus application protocol, 6.3/6.4).
pub const MAX_READ_REGISTERS: u16 = 125;
/// Most bits one read may ask for (6.1/6.2).
pub const MAX_READ_BITS: u16 = 2000;

/// How requests for a unit id nobody answers to are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// A gateway: answer with exception GatewayTargetDevice (0x0B).
    Tcp,
    /// A shared serial bus: stay quiet, another device may own the address.
    Rtu,
}

/// The Modbus request handler shared by the TCP and RTU servers.
#[derive(Debug, Clone)]
struct Handler {
    lab: SharedLab,
    transport: Transport,
}

impl Service for Handler {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(self.handle(req, Instant::now()))
    }
}

impl Handler {
    /// `Ok(None)`: send nothing, the client times out.
    fn handle(&self, req: SlaveRequest<'static>, now: Instant) -> Result<Option<Response>, ExceptionCode> {
        let Some(idx) = by_unit(req.slave) else {
            tracing::debug!(unit = req.slave, "request for an unknown unit");
            return match self.transport {
                Transport::Tcp => Err(ExceptionCode::GatewayTargetDevice),
                Transport::Rtu => Ok(None),
            };
        };
        let mut lab = self.lab.lock();
        if lab.is_silent(idx) {
            return Ok(None);
        }
        let response = match req.request {
            Request::ReadCoils(addr, qty) => {
                check_quantity(qty, MAX_READ_BITS)?;
                Response::ReadCoils(read(lab.reading(idx, now).image().coils, addr, qty)?)
            }
            Request::ReadDiscreteInputs(addr, qty) => {
                check_quantity(qty, MAX_READ_BITS)?;
                Response::ReadDiscreteInputs(read(lab.reading(idx, now).image().discrete, addr, qty)?)
            }
            Request::ReadInputRegisters(addr, qty) => {
                check_quantity(qty, MAX_READ_REGISTERS)?;
                Response::ReadInputRegisters(read(lab.reading(idx, now).image().input, addr, qty)?)
            }
            Request::ReadHoldingRegisters(addr, qty) => {
                check_quantity(qty, MAX_READ_REGISTERS)?;
                Response::ReadHoldingRegisters(read(lab.reading(idx, now).image().holding, addr, qty)?)
            }
            Request::WriteSingleCoil(addr, value) => {
                lab.write_coil(idx, addr, value)?;
                Response::WriteSingleCoil(addr, value)
            }
            Request::WriteMultipleCoils(addr, values) => {
                let [value] = values.as_ref() else {
                    return Err(ExceptionCode::IllegalDataAddress);
                };
                lab.write_coil(idx, addr, *value)?;
                Response::WriteMultipleCoils(addr, 1)
            }
            // Every register is read-only.
            Request::WriteSingleRegister(..) | Request::WriteMultipleRegisters(..) | Request::MaskWriteRegister(..) => {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        Ok(Some(response))
    }
}

fn check_quantity(qty: u16, max: u16) -> Result<(), ExceptionCode> {
    if qty == 0 || qty > max {
        Err(ExceptionCode::IllegalDataValue)
    } else {
        Ok(())
    }
}

fn read<T: Copy>(block: Option<Block<T>>, addr: u16, qty: u16) -> Result<Vec<T>, ExceptionCode> {
    block
        .and_then(|b| b.read(addr, qty))
        .ok_or(ExceptionCode::IllegalDataAddress)
}

/// Serve Modbus TCP on `listener` (all units) until the task is dropped.
pub(crate) async fn serve_tcp(listener: TcpListener, lab: SharedLab) -> anyhow::Result<()> {
    let handler = Handler {
        lab,
        transport: Transport::Tcp,
    };
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let on_connected = |stream, peer| {
        let handler = handler.clone();
        async move { accept_tcp_connection(stream, peer, move |_| Ok(Some(handler.clone()))) }
    };
    loop {
        // serve() only returns when accepting fails (e.g. out of file descriptors).
        if let Err(err) = server
            .serve(&on_connected, |err| {
                tracing::debug!("modbus tcp connection ended: {err}")
            })
            .await
        {
            tracing::warn!("modbus tcp accept failed: {err}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Open the serial line for the RTU server (8 data bits, no parity, 1 stop bit).
pub(crate) fn open_serial(path: &Path, baud: u32) -> anyhow::Result<SerialStream> {
    let builder = tokio_serial::new(path.to_string_lossy(), baud);
    SerialStream::open(&builder).map_err(|e| anyhow::anyhow!("cannot open serial line {}: {e}", path.display()))
}

/// Serve Modbus RTU on the serial line until the task is dropped. When the line
/// fails (the other end of a pty closes, a USB adapter is unplugged) it is reopened.
pub(crate) async fn serve_rtu(path: PathBuf, baud: u32, first: SerialStream, lab: SharedLab) -> anyhow::Result<()> {
    let handler = Handler {
        lab,
        transport: Transport::Rtu,
    };
    let mut serial = Some(first);
    let mut complained = false;
    loop {
        let port = match serial.take() {
            Some(port) => port,
            None => match open_serial(&path, baud) {
                Ok(port) => {
                    tracing::info!(path = %path.display(), "modbus rtu serial line reopened");
                    complained = false;
                    port
                }
                Err(err) => {
                    if !complained {
                        tracing::warn!("{err:#}; retrying every second");
                        complained = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        match tokio_modbus::server::rtu::Server::new(port)
            .serve_forever(handler.clone())
            .await
        {
            Ok(()) => tracing::warn!(path = %path.display(), "modbus rtu serial line closed"),
            Err(err) => tracing::warn!(path = %path.display(), "modbus rtu serial line failed: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn req(slave: u8, request: Request<'static>) -> SlaveRequest<'static> {
        SlaveRequest { slave, request }
    }

    #[test]
    fn routing_exceptions_and_silence() {
        let now = Instant::now();
        let lab = SharedLab::new(false, now);
        let tcp = Handler {
            lab: lab.clone(),
            transport: Transport::Tcp,
        };
        let rtu = Handler {
            lab: lab.clone(),
            transport: Transport::Rtu,
        };

        let r = tcp.handle(req(1, Request::ReadInputRegisters(0, 4)), now);
        assert_eq!(
            r,
            Ok(Some(Response::ReadInputRegisters(vec![0xC33E, 0x8000, 0x8000, 0xC33E])))
        );
        let r = tcp.handle(req(1, Request::ReadHoldingRegisters(10, 2)), now);
        assert_eq!(
            r,
            Ok(Some(Response::ReadHoldingRegisters(vec![853, (-1905i16) as u16])))
        );
        let r = tcp.handle(req(3, Request::ReadInputRegisters(0, 5)), now);
        assert_eq!(r, Ok(Some(Response::ReadInputRegisters(vec![100, 3600, 2300, 0, 0]))));

        assert_eq!(
            tcp.handle(req(9, Request::ReadCoils(0, 1)), now),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert_eq!(rtu.handle(req(9, Request::ReadCoils(0, 1)), now), Ok(None));
        assert_eq!(rtu.handle(req(4, Request::ReadCoils(0, 1)), now), Ok(None));
        assert_eq!(
            tcp.handle(req(1, Request::ReadHoldingRegisters(0, 1)), now),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            tcp.handle(req(2, Request::ReadInputRegisters(1, 3)), now),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            tcp.handle(req(2, Request::ReadCoils(0, 1)), now),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            tcp.handle(req(1, Request::ReadInputRegisters(0, 126)), now),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            tcp.handle(req(1, Request::ReadInputRegisters(0, 0)), now),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            tcp.handle(req(1, Request::ReadDiscreteInputs(0, 2001)), now),
            Err(ExceptionCode::IllegalDataValue)
        );
        assert_eq!(
            tcp.handle(req(1, Request::WriteSingleRegister(10, 1)), now),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            tcp.handle(req(1, Request::ReportServerId), now),
            Err(ExceptionCode::IllegalFunction)
        );

        assert_eq!(
            tcp.handle(req(1, Request::WriteSingleCoil(0, true)), now),
            Ok(Some(Response::WriteSingleCoil(0, true)))
        );
        assert_eq!(
            tcp.handle(req(1, Request::ReadCoils(0, 1)), now),
            Ok(Some(Response::ReadCoils(vec![true])))
        );

        lab.lock().set("dewar-1", Scenario::Silent, now).unwrap();
        assert_eq!(tcp.handle(req(1, Request::ReadInputRegisters(0, 2)), now), Ok(None));
        assert_eq!(rtu.handle(req(1, Request::ReadInputRegisters(0, 2)), now), Ok(None));
    }
}
