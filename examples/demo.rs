//! `cargo run --example demo [-- -v]`: the driver, with no hardware and no
//! setup. It runs on embassy's std executor and talks to the BC26 simulator,
//! which speaks real MQTT to an in-process broker (or to `MQTT_HOST`). Two
//! clients of the modem open, connect, subscribe, publish and receive; `-v`
//! shows the AT traffic. It ends by itself in a few seconds.

use std::time::Instant;

use bc26_host::tap::Tap;
use bc26_mqtt::{
    ClientId, Config, DataFormat, Event, Events, Modem, MqttVersion, QoS, Runner, State,
};
use bc26_sim::broker::broker;
use bc26_sim::{HostSide, Sim, SimConfig, SimReader, SimWriter};
use embassy_executor::Spawner;
use embassy_time::{with_timeout, Duration};

type Rx = Tap<SimReader>;
type Tx = Tap<SimWriter>;

#[embassy_executor::task]
async fn modem_task(runner: Runner<'static, Rx, Tx>) -> ! {
    runner.run().await
}

struct Log(Instant);

impl Log {
    fn say(&self, what: impl std::fmt::Display) {
        println!("[{:6.3}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

/// A received message, copied out of the event buffer.
struct Received {
    client: ClientId,
    topic: String,
    payload: Vec<u8>,
}

async fn next_message(events: &mut Events<'static>, log: &Log) -> Result<Received, String> {
    let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
    loop {
        match with_timeout(Duration::from_secs(5), events.next(&mut buf)).await {
            Ok(Event::Message(m)) => {
                return Ok(Received {
                    client: m.client,
                    topic: m.topic.to_owned(),
                    payload: m.payload.to_vec(),
                })
            }
            Ok(other) => log.say(format!("event: {other:?}")),
            Err(_) => return Err("no message within 5 s".into()),
        }
    }
}

async fn demo(modem: Modem<'static>, log: &Log) -> Result<(), Box<dyn std::error::Error>> {
    let b = broker();
    let mut events = modem.events()?;
    let topic = format!("bc26-demo/{}", std::process::id());
    let sensor = modem.client(ClientId::new(0)?);
    let control = modem.client(ClientId::new(1)?);

    // Client 0: MQTT 3.1.1, sends text, receives hex (so that any command
    // bytes arrive whole). Client 1: MQTT 3.1, hex both ways.
    sensor.set_keepalive(60).await?;
    sensor
        .set_data_format(DataFormat::Text, DataFormat::Hex)
        .await?;
    control.set_version(MqttVersion::V3_1).await?;
    control
        .set_data_format(DataFormat::Hex, DataFormat::Hex)
        .await?;
    log.say(
        "configured client 0 (MQTT 3.1.1, sends text, receives hex) and client 1 (MQTT 3.1, hex)",
    );

    // Both open at once: the AT channel is free while each waits for +QMTOPEN.
    let (a, c) =
        embassy_futures::join::join(sensor.open(&b.host, b.port), control.open(&b.host, b.port))
            .await;
    a?;
    c?;
    log.say(format!(
        "clients 0 and 1 opened TCP links to {}:{} ({})",
        b.host, b.port, b.kind
    ));
    sensor.connect("bc26-demo-sensor", None, None).await?;
    control.connect("bc26-demo-control", None, None).await?;
    log.say("both connected");

    let g = control
        .subscribe(&[(&format!("{topic}/telemetry"), QoS::AtLeastOnce)])
        .await?;
    log.say(format!(
        "client 1 subscribed to {topic}/telemetry, granted {g:?}"
    ));
    let g = sensor
        .subscribe(&[(&format!("{topic}/cmd"), QoS::ExactlyOnce)])
        .await?;
    log.say(format!("client 0 subscribed to {topic}/cmd, granted {g:?}"));

    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let body = format!(
            "{{\"seq\":{i},\"temp\":{:.1},\"note\":\"a, b\"}}",
            20.5 + i as f32
        );
        let p = sensor
            .publish(&format!("{topic}/telemetry"), body.as_bytes(), qos, false)
            .await?;
        log.say(format!(
            "client 0 published telemetry #{i} at {qos:?} (msgID {})",
            p.msg_id
        ));
        let m = next_message(&mut events, log).await?;
        log.say(format!(
            "client {} received on {}: {}",
            m.client.get(),
            m.topic,
            String::from_utf8_lossy(&m.payload)
        ));
    }

    // Binary through hex mode, quotes and a line break through data mode.
    let cmd: Vec<u8> = [&b"\x00\x01set \"led\"\r\non\xff"[..]].concat();
    let p = control
        .publish(&format!("{topic}/cmd"), &cmd, QoS::ExactlyOnce, false)
        .await?;
    log.say(format!(
        "client 1 published a {}-byte binary command at QoS 2 (msgID {})",
        cmd.len(),
        p.msg_id
    ));
    let m = next_message(&mut events, log).await?;
    if m.payload[..] != cmd[..] {
        return Err("the command arrived changed".into());
    }
    log.say(format!(
        "client {} received the command, byte for byte: {:02x?}",
        m.client.get(),
        &m.payload[..]
    ));

    sensor.disconnect().await?;
    control.disconnect().await?;
    log.say("both disconnected");
    let s = modem.stats();
    log.say(format!(
        "driver stats: {} events, {} messages dropped, {} stale results, {} unknown lines",
        s.events_published, s.messages_dropped, s.stale_results, s.unsolicited_lines
    ));
    Ok(())
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let verbose = std::env::args()
        .skip(1)
        .any(|a| a == "-v" || a == "--verbose");
    let start = Instant::now();
    let log = Log(start);
    let (_sim, HostSide { reader, writer }) = Sim::start(SimConfig::default());
    log.say("BC26 simulator started (echo on, as the factory default)");
    let rx = Tap {
        inner: reader,
        arrow: "modem >",
        on: verbose,
        start,
    };
    let tx = Tap {
        inner: writer,
        arrow: "host  >",
        on: verbose,
        start,
    };
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let (modem, runner) =
        bc26_mqtt::new(state, rx, tx, Config::new()).expect("the default Config is consistent");
    spawner.spawn(modem_task(runner).expect("one modem task"));
    let code = match demo(modem, &log).await {
        Ok(()) => {
            log.say("done");
            0
        }
        Err(e) => {
            log.say(format!("failed: {e}"));
            1
        }
    };
    std::process::exit(code);
}
