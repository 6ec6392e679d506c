//! Wire-level loops: the driver on embassy's std executor, the BC26
//! simulator paced like a 115200-baud 8N1 UART in both directions (10 bit
//! times a byte, on an absolute schedule; see `sim/README.md`), and the
//! in-process MQTT broker (or the one `MQTT_HOST` names).

use core::cell::Cell;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::Poll;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bc26_mqtt::{ClientId, Config, DataFormat, Event, Modem, MqttClient, QoS, Runner, State};
use bc26_sim::broker::broker;
use bc26_sim::{HostSide, Sim, SimConfig, SimHandle, SimReader, SimWriter};
use embassy_futures::select::{select, Either};
use embassy_time::Timer;

use crate::exec::on_executor;

/// The UART rate of every wire-level loop.
pub const BAUD: u32 = 115_200;
/// Bytes of `\r\nOK\r\n`.
pub const OK_LEN: usize = 6;

/// Seconds one byte takes on the wire (8N1: 10 bits).
pub fn byte_time() -> f64 {
    10.0 / f64::from(BAUD)
}

/// A name no other run (or process) uses.
fn uniq(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sim_config(echo: bool, result_delay: Duration) -> SimConfig {
    SimConfig {
        echo,
        baud: Some(BAUD),
        result_delay,
        ..SimConfig::default()
    }
}

/// A driver on a fresh paced simulator; the reader is wrapped by `wrap`.
fn driver<R: embedded_io_async::Read>(
    cfg: SimConfig,
    wrap: impl FnOnce(SimReader) -> R,
) -> (Modem<'static>, Runner<'static, R, SimWriter>, SimHandle) {
    let (sim, HostSide { reader, writer }) = Sim::start(cfg);
    let state: &'static mut State = Box::leak(Box::default());
    let config = Config::new()
        .command_timeout(embassy_time::Duration::from_secs(3))
        .open_timeout(embassy_time::Duration::from_secs(30));
    let (modem, runner) =
        bc26_mqtt::new(state, wrap(reader), writer, config).expect("consistent Config");
    (modem, runner, sim)
}

/// Runs `body` beside the runner.
async fn with_runner<R, W, F>(runner: Runner<'static, R, W>, body: F) -> F::Output
where
    R: embedded_io_async::Read,
    W: embedded_io_async::Write,
    F: Future,
{
    match select(runner.run(), body).await {
        Either::First(never) => never,
        Either::Second(out) => out,
    }
}

/// Open and connect to the broker.
async fn online(c: MqttClient<'static>) {
    let b = broker();
    c.open(&b.host, b.port).await.expect("open");
    c.connect(&uniq("bench"), None, None)
        .await
        .expect("connect");
}

/// Waits for every future (a join over a `Vec`).
async fn join_all(mut futs: Vec<Pin<Box<dyn Future<Output = ()> + '_>>>) {
    poll_fn(|cx| {
        futs.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futs.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

fn id(n: u8) -> ClientId {
    ClientId::new(n).expect("client id")
}

// ------------------------------------------------------------ QoS 0 loop

/// The QoS 0 publish loop, against its bounds.
#[derive(Debug, Clone, Copy)]
pub struct Qos0 {
    /// Modem echo (`ATE1`) on.
    pub echo: bool,
    /// Publishes timed.
    pub publishes: usize,
    /// From the `OK` of the last warm-up publish to the `OK` of the last one.
    pub elapsed: Duration,
    /// Host-to-modem bytes a publish (its `AT+QMTPUB` line), counted by the
    /// simulator.
    pub host_bytes: f64,
    /// Modem-to-host bytes a publish (echo, `OK`, `+QMTPUB: 0,0,0`),
    /// counted by the simulator.
    pub modem_bytes: f64,
}

impl Qos0 {
    /// Publishes a second.
    pub fn rate(&self) -> f64 {
        self.publishes as f64 / self.elapsed.as_secs_f64()
    }

    /// Byte times a publish needs on the busier direction of the UART
    /// (both directions run at once).
    pub fn wire_bytes(&self) -> f64 {
        self.host_bytes.max(self.modem_bytes)
    }

    /// Bytes of the modem's answer after the line's last byte, through `OK`:
    /// the `OK`, and with echo the echo of the final CR.
    pub fn answer_bytes(&self) -> f64 {
        (OK_LEN + usize::from(self.echo)) as f64
    }

    /// Byte times a publish needs when the next line may start only after
    /// the `OK`: the line, then the answer; and no less than the modem's
    /// bytes of a publish, which share one direction (with echo, the echo of
    /// a line queues behind the previous `+QMTPUB` result).
    pub fn protocol_bytes(&self) -> f64 {
        (self.host_bytes + self.answer_bytes()).max(self.modem_bytes)
    }

    /// Seconds a publish takes, measured.
    pub fn per_publish(&self) -> f64 {
        self.elapsed.as_secs_f64() / self.publishes as f64
    }

    /// Share of the wire bound reached (1.0 = the bound).
    pub fn of_wire(&self) -> f64 {
        self.wire_bytes() * byte_time() / self.per_publish()
    }

    /// Share of the protocol bound reached.
    pub fn of_protocol(&self) -> f64 {
        self.protocol_bytes() * byte_time() / self.per_publish()
    }
}

/// Topic and payload of the QoS 0 loop: a small telemetry record, inline
/// (`AT+QMTPUB=0,0,0,0,"<topic>","<payload>"`).
pub const QOS0_TOPIC: &str = "bench/qos0";
/// See [`QOS0_TOPIC`].
pub const QOS0_PAYLOAD: &[u8] = b"t=21.5;h=40;p=1013;seq=000123";

/// Warm-up publishes before the clock starts.
const WARM_UP: usize = 5;

/// QoS 0 publishes back to back on client 0 from one task: each
/// `start_publish` returns at the `OK`, and the result of the publish two
/// before is awaited then (it came long ago), so the next line goes out as
/// soon as the `OK` is in. Echo on or off; no result delay.
pub fn qos0_loop(echo: bool, publishes: usize) -> Qos0 {
    on_executor(async move {
        let (modem, runner, sim) = driver(sim_config(echo, Duration::ZERO), |r| r);
        let c = modem.client(id(0));
        let elapsed = with_runner(runner, async {
            online(c).await;
            Timer::after_millis(50).await;
            let h0 = sim.host_transcript().len();
            let m0 = sim.transcript().len();
            let mut pending = std::collections::VecDeque::new();
            let mut t0 = Instant::now();
            for i in 0..WARM_UP + publishes {
                let p = c
                    .start_publish(QOS0_TOPIC, QOS0_PAYLOAD, QoS::AtMostOnce, false)
                    .await
                    .expect("publish accepted");
                if i + 1 == WARM_UP {
                    t0 = Instant::now();
                }
                pending.push_back(p);
                if pending.len() > 2 {
                    pending
                        .pop_front()
                        .expect("pending")
                        .result()
                        .await
                        .expect("published");
                }
            }
            let elapsed = t0.elapsed();
            for p in pending {
                p.result().await.expect("published");
            }
            Timer::after_millis(50).await;
            let n = (WARM_UP + publishes) as f64;
            let host = (sim.host_transcript().len() - h0) as f64 / n;
            let modem = (sim.transcript().len() - m0) as f64 / n;
            (elapsed, host, modem)
        })
        .await;
        drop(sim);
        Qos0 {
            echo,
            publishes,
            elapsed: elapsed.0,
            host_bytes: elapsed.1,
            modem_bytes: elapsed.2,
        }
    })
}

/// The same QoS 0 loop without the driver: a plain blocking host on the
/// calling thread writes each line, reads until its `OK`, writes the next.
/// It shows what the simulator itself allows (its threads hand each turn of
/// the line over: the modem sees the CR, queues its `OK`, the host reads it;
/// tens of microseconds a publish), so the driver's share of what is left is
/// `Qos0::rate` over this one's.
pub fn raw_qos0_loop(echo: bool, publishes: usize) -> Qos0 {
    let (
        sim,
        HostSide {
            mut reader,
            mut writer,
        },
    ) = Sim::start(sim_config(echo, Duration::ZERO));
    let mut seen = Vec::new();
    let wait_for = |reader: &mut SimReader, seen: &mut Vec<u8>, what: &[u8]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(i) = seen.windows(what.len()).position(|w| w == what) {
                seen.drain(..i + what.len());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {:?} from the simulator",
                String::from_utf8_lossy(what)
            );
            let mut buf = [0u8; 256];
            if let Some(n) = reader.read_blocking(&mut buf, Duration::from_millis(100)) {
                seen.extend_from_slice(&buf[..n]);
            }
        }
    };
    let b = broker();
    let open = format!("AT+QMTOPEN=0,\"{}\",{}\r", b.host, b.port);
    writer.write_all_blocking(open.as_bytes()).expect("write");
    wait_for(&mut reader, &mut seen, b"+QMTOPEN: 0,0\r\n");
    let conn = format!("AT+QMTCONN=0,\"{}\"\r", uniq("bench-raw"));
    writer.write_all_blocking(conn.as_bytes()).expect("write");
    wait_for(&mut reader, &mut seen, b"+QMTCONN: 0,0,0\r\n");
    std::thread::sleep(Duration::from_millis(50));
    seen.clear();
    let h0 = sim.host_transcript().len();
    let m0 = sim.transcript().len();
    let mut line = format!("AT+QMTPUB=0,0,0,0,\"{QOS0_TOPIC}\",\"").into_bytes();
    line.extend_from_slice(QOS0_PAYLOAD);
    line.extend_from_slice(b"\"\r");
    let mut t0 = Instant::now();
    for i in 0..WARM_UP + publishes {
        writer.write_all_blocking(&line).expect("write");
        wait_for(&mut reader, &mut seen, b"\r\nOK\r\n");
        if i + 1 == WARM_UP {
            t0 = Instant::now();
        }
    }
    let elapsed = t0.elapsed();
    std::thread::sleep(Duration::from_millis(50));
    let n = (WARM_UP + publishes) as f64;
    let host = (sim.host_transcript().len() - h0) as f64 / n;
    let modem = (sim.transcript().len() - m0) as f64 / n;
    drop(sim);
    Qos0 {
        echo,
        publishes,
        elapsed,
        host_bytes: host,
        modem_bytes: modem,
    }
}

// ------------------------------------------------------------ open + connect

/// `clients` clients (0, 1, ...) open and connect at once, each deferred
/// result `result_delay` after its `OK`. Returns the time until the last is
/// connected.
pub fn open_connect(clients: u8, result_delay: Duration) -> Duration {
    on_executor(async move {
        let (modem, runner, sim) = driver(sim_config(true, result_delay), |r| r);
        let elapsed = with_runner(runner, async {
            let t0 = Instant::now();
            join_all(
                (0..clients)
                    .map(|i| -> Pin<Box<dyn Future<Output = ()>>> {
                        Box::pin(online(modem.client(id(i))))
                    })
                    .collect(),
            )
            .await;
            t0.elapsed()
        })
        .await;
        drop(sim);
        elapsed
    })
}

// ------------------------------------------------------------ QoS 1

/// QoS 1 publishes on client 0 from `tasks` tasks at once (1: stop and
/// wait), each `publish` awaited to its `+QMTPUB` result, which the
/// simulator sends `rtt` after the broker's PUBACK (its `result_delay`: the
/// in-process broker answers in well under a millisecond, so the round trip
/// is `rtt`). Returns the time for all `publishes`.
pub fn qos1(publishes: usize, tasks: usize, rtt: Duration) -> Duration {
    on_executor(async move {
        let (modem, runner, sim) = driver(sim_config(true, rtt), |r| r);
        let c = modem.client(id(0));
        let elapsed = with_runner(runner, async {
            online(c).await;
            let per_task = publishes / tasks;
            let t0 = Instant::now();
            join_all(
                (0..tasks)
                    .map(|t| -> Pin<Box<dyn Future<Output = ()>>> {
                        Box::pin(async move {
                            for i in 0..per_task {
                                let payload = format!("task {t} message {i}");
                                c.publish(
                                    "bench/qos1",
                                    payload.as_bytes(),
                                    QoS::AtLeastOnce,
                                    false,
                                )
                                .await
                                .expect("published");
                            }
                        })
                    })
                    .collect(),
            )
            .await;
            t0.elapsed()
        })
        .await;
        drop(sim);
        elapsed
    })
}

// ------------------------------------------------------------ latency

/// Latency of `+QMTRECV` frames injected into the simulator.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Hex reception.
    pub hex: bool,
    /// Wire bytes of the frame.
    pub frame_len: usize,
    /// From the UART read that returned the frame's last byte to
    /// `Events::next` returning the message.
    pub read_to_event: Vec<Duration>,
    /// From `SimHandle::inject` to `Events::next` returning, less the frame's
    /// time on the wire (`frame_len` byte times): the simulator's threads,
    /// the executor's wake-up and the driver.
    pub inject_to_event: Vec<Duration>,
}

/// The reader, counting bytes and noting when the byte at `target` came.
pub struct Stamped {
    inner: SimReader,
    count: Rc<Cell<u64>>,
    target: Rc<Cell<u64>>,
    stamp: Rc<Cell<Option<Instant>>>,
}

impl embedded_io_async::ErrorType for Stamped {
    type Error = embedded_io_async::ErrorKind;
}

impl embedded_io_async::Read for Stamped {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.inner.read(buf).await?;
        let now = Instant::now();
        let count = self.count.get() + n as u64;
        self.count.set(count);
        if self.stamp.get().is_none() && count >= self.target.get() {
            self.stamp.set(Some(now));
        }
        Ok(n)
    }
}

/// A 100-byte payload (letters and digits).
fn latency_payload() -> Vec<u8> {
    (0..100u8).map(|i| b'a' + i % 26).collect()
}

/// `samples` frames of a 100-byte payload injected one at a time into a
/// paced simulator (the line quiet before each), received as text or hex.
pub fn latency(hex: bool, samples: usize) -> Latency {
    on_executor(async move {
        let count = Rc::new(Cell::new(0u64));
        let target = Rc::new(Cell::new(u64::MAX));
        let stamp = Rc::new(Cell::new(None));
        let (c2, t2, s2) = (count.clone(), target.clone(), stamp.clone());
        let (modem, runner, sim) =
            driver(sim_config(false, Duration::ZERO), move |inner| Stamped {
                inner,
                count: c2,
                target: t2,
                stamp: s2,
            });
        let c = modem.client(id(0));
        let mut events = modem.events().expect("a subscription");
        let payload = latency_payload();
        let mut frame = b"\r\n+QMTRECV: 0,0,\"bench/latency\",\"".to_vec();
        if hex {
            for b in &payload {
                frame.extend_from_slice(format!("{b:02X}").as_bytes());
            }
        } else {
            frame.extend_from_slice(&payload);
        }
        frame.extend_from_slice(b"\"\r\n");
        let wire = Duration::from_secs_f64(frame.len() as f64 * byte_time());
        let (read_to_event, inject_to_event) = with_runner(runner, async {
            let recv = if hex {
                DataFormat::Hex
            } else {
                DataFormat::Text
            };
            c.set_data_format(DataFormat::Text, recv)
                .await
                .expect("dataformat");
            let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..samples {
                Timer::after_millis(20).await;
                target.set(count.get() + frame.len() as u64);
                stamp.set(None);
                let t0 = Instant::now();
                sim.inject(&frame);
                match events.next(&mut buf).await {
                    Event::Message(m) => assert_eq!(m.payload, &payload[..]),
                    other => panic!("unexpected event {other:?}"),
                }
                let t1 = Instant::now();
                let read = stamp.get().expect("the last byte was read");
                a.push(t1 - read);
                b.push((t1 - t0).saturating_sub(wire));
            }
            (a, b)
        })
        .await;
        drop(sim);
        Latency {
            hex,
            frame_len: frame.len(),
            read_to_event,
            inject_to_event,
        }
    })
}

/// The `q` quantile (0.5: the median) of `v`.
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_follow_the_bytes_of_a_publish() {
        let mut q = Qos0 {
            echo: false,
            publishes: 10,
            elapsed: Duration::from_secs_f64(10.0 * 80.0 * byte_time()),
            host_bytes: 63.0,
            modem_bytes: 24.0,
        };
        // Echo off: the line is the busier direction; then the OK follows it.
        assert_eq!((q.wire_bytes(), q.protocol_bytes()), (63.0, 69.0));
        assert!((q.of_protocol() - 69.0 / 80.0).abs() < 1e-6);
        // Echo on: the modem's bytes (echo, OK, result) bound both.
        q.echo = true;
        q.modem_bytes = 87.0;
        assert_eq!((q.wire_bytes(), q.protocol_bytes()), (87.0, 87.0));
        assert_eq!(
            quantile(&[3, 1, 2].map(Duration::from_millis), 0.5),
            Duration::from_millis(2)
        );
    }

    #[test]
    fn qos0_loops_count_the_exact_bytes_of_each_publish_with_and_without_echo() {
        // AT+QMTPUB=0,0,0,0,"<topic>","<payload>"\r
        let line = 18 + QOS0_TOPIC.len() + QOS0_PAYLOAD.len() + 6;
        for echo in [false, true] {
            let echoed = if echo { line } else { 0 };
            for q in [qos0_loop(echo, 3), raw_qos0_loop(echo, 3)] {
                assert_eq!(q.host_bytes, line as f64, "echo {echo}");
                // Echo, OK, +QMTPUB: 0,0,0 framed in CR LF.
                assert_eq!(q.modem_bytes, (echoed + OK_LEN + 18) as f64, "echo {echo}");
                assert!(q.elapsed >= Duration::from_secs_f64(3.0 * line as f64 * byte_time()));
            }
        }
    }

    #[test]
    fn open_connect_qos1_and_latency_runs_complete() {
        open_connect(6, Duration::ZERO);
        qos1(8, 4, Duration::from_millis(10));
        for hex in [false, true] {
            let l = latency(hex, 2);
            assert_eq!((l.read_to_event.len(), l.inject_to_event.len()), (2, 2));
        }
    }
}
