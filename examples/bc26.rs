//! `bc26`: drive a BC26's MQTT client from the command line, for a developer
//! with an evaluation board on a USB serial adapter, and for scripts.
//!
//! ```text
//! cargo run --example bc26 -- --serial /dev/ttyUSB0 --host broker.hivemq.com \
//!     --sub 'dev/cmd' --pub 'dev/telemetry={"t":21}' --qos 1 --listen 10
//! ```
//!
//! Standard output is one JSON object per line, `"event"` first; logs go to
//! standard error. Exit status 0 when every step succeeded, 1 otherwise, 2 for
//! bad arguments (refused before anything is sent to the modem).

#[path = "common/serial.rs"]
mod serial;

use std::fmt::Write as _;

use bc26_mqtt::commands::{Connect, OpenNetwork, PublishDataMode, Subscribe, Will};
use bc26_mqtt::{
    ClientId, Config, DataFormat, Error, Event, Grant, Modem, MqttVersion, QoS, Runner, State,
};
use bc26_sim::{HostSide, Sim, SimConfig, SimReader, SimWriter};
use embassy_executor::Spawner;
use embassy_time::{with_timeout, Duration, Instant, Timer};

const USAGE: &str = "usage: bc26 (--serial PATH [--baud N] | --sim) --host H [--port P] [--id N]
            [--client-id S] [--user U --password P] [--version 3|4] [--keepalive S]
            [--clean-session 0|1] [--will TOPIC=MESSAGE] [--hex] [--sub TOPIC]...
            [--pub TOPIC=PAYLOAD]... [--qos N] [--retain] [--listen SECS]";

/// What the command line asks for.
#[derive(Debug, Default)]
struct Args {
    serial: Option<String>,
    baud: u32,
    sim: bool,
    host: Option<String>,
    port: u16,
    id: u8,
    client_id: String,
    user: Option<String>,
    password: Option<String>,
    version: Option<u8>,
    keepalive: Option<u16>,
    clean_session: Option<bool>,
    will: Option<(String, String)>,
    hex: bool,
    subs: Vec<String>,
    pubs: Vec<(String, String)>,
    qos: u8,
    retain: bool,
    listen: u64,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        baud: 115200,
        port: 1883,
        client_id: format!("bc26-{}", std::process::id()),
        ..Default::default()
    };
    let mut it = argv.iter();
    fn value<'a>(it: &mut std::slice::Iter<'a, String>, flag: &str) -> Result<&'a String, String> {
        it.next().ok_or_else(|| format!("{flag} needs a value"))
    }
    fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
        s.parse()
            .map_err(|_| format!("{flag}: not a valid number: {s}"))
    }
    fn pair(s: &str, flag: &str) -> Result<(String, String), String> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("{flag} takes TOPIC=VALUE"))?;
        Ok((k.to_owned(), v.to_owned()))
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--serial" => a.serial = Some(value(&mut it, flag)?.clone()),
            "--baud" => a.baud = number(value(&mut it, flag)?, flag)?,
            "--sim" => a.sim = true,
            "--host" => a.host = Some(value(&mut it, flag)?.clone()),
            "--port" => a.port = number(value(&mut it, flag)?, flag)?,
            "--id" => a.id = number(value(&mut it, flag)?, flag)?,
            "--client-id" => a.client_id = value(&mut it, flag)?.clone(),
            "--user" => a.user = Some(value(&mut it, flag)?.clone()),
            "--password" => a.password = Some(value(&mut it, flag)?.clone()),
            "--version" => a.version = Some(number(value(&mut it, flag)?, flag)?),
            "--keepalive" => a.keepalive = Some(number(value(&mut it, flag)?, flag)?),
            "--clean-session" => {
                a.clean_session = Some(number::<u8>(value(&mut it, flag)?, flag)? != 0)
            }
            "--will" => a.will = Some(pair(value(&mut it, flag)?, flag)?),
            "--hex" => a.hex = true,
            "--sub" => a.subs.push(value(&mut it, flag)?.clone()),
            "--pub" => a.pubs.push(pair(value(&mut it, flag)?, flag)?),
            "--qos" => a.qos = number(value(&mut it, flag)?, flag)?,
            "--retain" => a.retain = true,
            "--listen" => a.listen = number(value(&mut it, flag)?, flag)?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if a.serial.is_some() == a.sim {
        return Err(format!(
            "give exactly one of --serial PATH and --sim\n{USAGE}"
        ));
    }
    if a.host.is_none() && !a.sim {
        return Err("--host is needed with --serial".into());
    }
    if a.version.is_some_and(|v| v != 3 && v != 4) {
        return Err("--version is 3 or 4".into());
    }
    if a.keepalive.is_some_and(|k| k > 3600) {
        return Err("--keepalive is 0-3600".into());
    }
    // Everything that goes on an AT line is checked by the driver's own
    // constructors, before anything is sent to the modem.
    let id = ClientId::new(a.id).map_err(|_| "--id is 0-5".to_owned())?;
    let qos = QoS::new(a.qos).map_err(|_| "--qos is 0-2".to_owned())?;
    let host = a.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    OpenNetwork::new(id, &host, a.port).map_err(|e| format!("--host/--port: {e}"))?;
    Connect::new(id, &a.client_id, a.user.as_deref(), a.password.as_deref())
        .map_err(|e| format!("--client-id/--user/--password: {e}"))?;
    if let Some((t, m)) = &a.will {
        Will::new(t, m, qos, false).map_err(|e| format!("--will: {e}"))?;
    }
    if !a.subs.is_empty() {
        let topics: Vec<(&str, QoS)> = a.subs.iter().map(|t| (t.as_str(), qos)).collect();
        Subscribe::new(id, 1, &topics).map_err(|e| format!("--sub: {e}"))?;
    }
    for (t, p) in &a.pubs {
        let msg_id = if qos == QoS::AtMostOnce { 0 } else { 1 };
        PublishDataMode::new(id, msg_id, qos, a.retain, t)
            .map_err(|e| format!("--pub {t}: {e}"))?;
        let wire = if a.hex { 2 * p.len() } else { p.len() };
        if wire > bc26_mqtt::limits::DATA_MODE_PAYLOAD {
            return Err(format!("--pub {t}: payload too long ({} bytes)", p.len()));
        }
        if !a.hex && p.bytes().any(|b| b == 0x1a || b == 0x1b) {
            return Err(format!("--pub {t}: payload holds Ctrl+Z or ESC: use --hex"));
        }
    }
    Ok(a)
}

// ------------------------------------------------------------------ output

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One JSON value of an event line.
enum J<'a> {
    S(&'a str),
    N(i64),
}

fn emit(fields: &[(&str, J)]) {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                J::S(s) => json_str(s),
                J::N(n) => n.to_string(),
            };
            format!("{}:{}", json_str(k), v)
        })
        .collect();
    println!("{{{}}}", body.join(","));
}

fn emit_error(op: &str, e: &dyn std::fmt::Display) {
    emit(&[
        ("event", J::S("error")),
        ("op", J::S(op)),
        ("error", J::S(&e.to_string())),
    ]);
}

// ------------------------------------------------------------------ the run

type CliState = State;

#[embassy_executor::task]
async fn serial_modem(runner: Runner<'static, serial::Rx, serial::Tx>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn sim_modem(runner: Runner<'static, SimReader, SimWriter>) -> ! {
    runner.run().await
}

/// A raw command line through the driver's escape hatch; its answer as text.
async fn at(modem: Modem<'static>, line: &str) -> Result<String, Error> {
    let cmd: heapless::String<32> = line.try_into().map_err(|_| Error::UnexpectedResponse)?;
    let text = modem.send(&cmd).await?;
    Ok(text.as_str().to_owned())
}

/// `AT` until the modem answers, echo off, error codes on, then wait for the
/// network (`AT+CEREG?`) and check the attachment (`AT+CGATT?`).
async fn start_up(modem: Modem<'static>) -> Result<(), (&'static str, Error)> {
    let mut synced = Err(Error::Timeout(bc26_mqtt::Stage::Response));
    for _ in 0..10 {
        synced = at(modem, "AT\r").await;
        if synced.is_ok() {
            break;
        }
    }
    synced.map_err(|e| ("at", e))?;
    at(modem, "ATE0\r").await.map_err(|e| ("ate0", e))?;
    at(modem, "AT+CMEE=1\r").await.map_err(|e| ("cmee", e))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reg = at(modem, "AT+CEREG?\r").await.map_err(|e| ("cereg", e))?;
        let stat = reg
            .rsplit(',')
            .next()
            .and_then(|s| s.trim().parse::<u8>().ok());
        eprintln!("bc26: {}", reg.trim());
        if matches!(stat, Some(1) | Some(5)) {
            break;
        }
        if Instant::now() > deadline {
            return Err(("cereg", Error::Timeout(bc26_mqtt::Stage::Result)));
        }
        Timer::after_secs(1).await;
    }
    let att = at(modem, "AT+CGATT?\r").await.map_err(|e| ("cgatt", e))?;
    eprintln!("bc26: {}", att.trim());
    Ok(())
}

/// Every step the flags ask for; `false` if one failed.
async fn session(modem: Modem<'static>, a: &Args, host: &str, port: u16) -> bool {
    let id = ClientId::new(a.id).expect("checked");
    let qos = QoS::new(a.qos).expect("checked");
    let c = modem.client(id);
    let n = i64::from(a.id);
    let mut events = modem.events().expect("one subscriber");
    if let Err((op, e)) = start_up(modem).await {
        emit_error(op, &e);
        return false;
    }
    macro_rules! step {
        ($op:literal, $e:expr) => {
            if let Err(e) = $e {
                emit_error($op, &e);
                return false;
            }
        };
    }
    if let Some(v) = a.version {
        let v = if v == 3 {
            MqttVersion::V3_1
        } else {
            MqttVersion::V3_1_1
        };
        step!("version", c.set_version(v).await);
    }
    if let Some(k) = a.keepalive {
        step!("keepalive", c.set_keepalive(k).await);
    }
    if let Some(cs) = a.clean_session {
        step!("session", c.set_clean_session(cs).await);
    }
    if let Some((t, m)) = &a.will {
        let will = Will::new(t, m, qos, a.retain).expect("checked");
        step!("will", c.set_will(Some(will)).await);
    }
    if a.hex {
        step!(
            "dataformat",
            c.set_data_format(DataFormat::Hex, DataFormat::Hex).await
        );
    }
    step!("open", c.open(host, port).await);
    emit(&[("event", J::S("opened")), ("client", J::N(n))]);
    let mut ok = true;
    match c
        .connect(&a.client_id, a.user.as_deref(), a.password.as_deref())
        .await
    {
        Ok(()) => emit(&[("event", J::S("connected")), ("client", J::N(n))]),
        Err(e) => {
            emit_error("connect", &e);
            ok = false;
        }
    }
    if ok && !a.subs.is_empty() {
        let topics: Vec<(&str, QoS)> = a.subs.iter().map(|t| (t.as_str(), qos)).collect();
        match c.subscribe(&topics).await {
            Ok(granted) => {
                for (t, g) in a.subs.iter().zip(granted.iter()) {
                    let q = match g {
                        Grant::Granted(q) => i64::from(q.get()),
                        Grant::Rejected => 128,
                    };
                    emit(&[
                        ("event", J::S("subscribed")),
                        ("client", J::N(n)),
                        ("topic", J::S(t)),
                        ("qos", J::N(q)),
                    ]);
                }
            }
            Err(e) => {
                emit_error("subscribe", &e);
                ok = false;
            }
        }
    }
    if ok {
        for (t, p) in &a.pubs {
            match c.publish(t, p.as_bytes(), qos, a.retain).await {
                Ok(done) => emit(&[
                    ("event", J::S("published")),
                    ("client", J::N(n)),
                    ("topic", J::S(t)),
                    ("msg_id", J::N(done.msg_id.into())),
                ]),
                Err(e) => {
                    emit_error("publish", &e);
                    ok = false;
                    break;
                }
            }
        }
    }
    // Print what arrives, for --listen seconds (and what arrived meanwhile).
    let until = Instant::now() + Duration::from_secs(a.listen);
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left == Duration::from_ticks(0) && events.try_next(&mut buf).is_none() {
            break;
        }
        let next = match with_timeout(left, events.next(&mut buf)).await {
            Ok(e) => e,
            Err(_) => break,
        };
        match next {
            Event::Message(m) => {
                let mut f = vec![
                    ("event", J::S("message")),
                    ("client", J::N(m.client.get().into())),
                    ("msg_id", J::N(m.msg_id.into())),
                    ("topic", J::S(m.topic)),
                ];
                let hex: String;
                match std::str::from_utf8(m.payload) {
                    Ok(text) => {
                        f.push(("payload", J::S(text)));
                        emit(&f);
                    }
                    Err(_) => {
                        hex = m.payload.iter().map(|b| format!("{b:02x}")).collect();
                        f.push(("payload_hex", J::S(&hex)));
                        emit(&f);
                    }
                }
            }
            Event::LinkClosed { client, reason } => {
                emit(&[
                    ("event", J::S("link_closed")),
                    ("client", J::N(client.get().into())),
                    ("code", J::N(reason.code().into())),
                ]);
                if client == id {
                    return false;
                }
            }
            Event::Missed(k) => eprintln!("bc26: missed {k} messages"),
            _ => {}
        }
    }
    let mut disconnected = false;
    if ok {
        match c.disconnect().await {
            Ok(()) => {
                emit(&[("event", J::S("disconnected")), ("client", J::N(n))]);
                disconnected = true;
            }
            Err(e) => {
                emit_error("disconnect", &e);
                ok = false;
            }
        }
    }
    match c.close().await {
        // After DISCONNECT some firmware has closed the link already and
        // answers -1 here: closed either way.
        Ok(()) | Err(Error::CloseFailed) if disconnected => {
            emit(&[("event", J::S("closed")), ("client", J::N(n))])
        }
        Ok(()) => emit(&[("event", J::S("closed")), ("client", J::N(n))]),
        Err(e) => {
            emit_error("close", &e);
            ok = false;
        }
    }
    ok
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = match parse_args(&argv) {
        Ok(a) => Box::leak(Box::new(a)),
        Err(e) => {
            eprintln!("bc26: {e}");
            std::process::exit(2);
        }
    };
    let config = Config::new();
    let state: &'static mut CliState = Box::leak(Box::new(State::new()));
    let (modem, host, port) = if let Some(path) = &a.serial {
        let (rx, tx) = match serial::open(path, a.baud) {
            Ok(halves) => halves,
            Err(e) => {
                emit_error("serial", &e);
                std::process::exit(1);
            }
        };
        let (modem, runner) = bc26_mqtt::new(state, rx, tx, config);
        spawner.spawn(serial_modem(runner).expect("one modem task"));
        (modem, a.host.clone().expect("checked"), a.port)
    } else {
        // The simulator, and an in-process broker unless --host names one.
        let (sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
        Box::leak(Box::new(sim));
        let (host, port) = match &a.host {
            Some(h) => (h.clone(), a.port),
            None => {
                let b = bc26_sim::broker::broker();
                eprintln!(
                    "bc26: simulator, broker {} at {}:{}",
                    b.kind, b.host, b.port
                );
                (b.host.clone(), b.port)
            }
        };
        let (modem, runner) = bc26_mqtt::new(state, reader, writer, config);
        spawner.spawn(sim_modem(runner).expect("one modem task"));
        (modem, host, port)
    };
    let ok = session(modem, a, &host, port).await;
    std::process::exit(if ok { 0 } else { 1 });
}
