//! The one-shot session: start the modem, configure, open, connect,
//! subscribe, publish, listen, disconnect, close.

use bc26_mqtt::commands::Will;
use bc26_mqtt::{DataFormat, Error, Event, Grant, Modem, MqttClient, MqttVersion, QoS};
use embassy_time::{with_timeout, Duration, Instant, Timer};

use crate::args::Run;
use crate::out::{self, Ev};

/// A raw command line through the driver's escape hatch; its answer as text.
pub async fn at(modem: Modem<'static>, line: &str) -> Result<String, Error> {
    let cmd: heapless::String<32> = line.try_into().map_err(|_| Error::UnexpectedResponse)?;
    let text = modem.send(&cmd).await?;
    Ok(text.as_str().to_owned())
}

/// `AT` until the modem answers, echo off, error codes on, then wait for the
/// network (`AT+CEREG?`) and check the attachment (`AT+CGATT?`).
pub async fn start_up(modem: Modem<'static>) -> Result<(), (&'static str, Error)> {
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
pub async fn session(modem: Modem<'static>, run: &Run, host: &str, port: u16) -> bool {
    let a = &run.args;
    let (id, qos) = (run.id, run.qos);
    let c = modem.client(id);
    let n = id.get();
    let mut events = modem.events().expect("one subscriber");
    if let Err((op, e)) = start_up(modem).await {
        out::error(op, &e);
        return false;
    }
    macro_rules! step {
        ($op:literal, $e:expr) => {
            if let Err(e) = $e {
                out::error($op, &e);
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
    if let Some(cs) = a.clean_session.map(|c| c != 0) {
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
    out::emit(&Ev::Opened { client: n });
    let mut ok = true;
    match c
        .connect(&run.client_id, a.user.as_deref(), a.password.as_deref())
        .await
    {
        Ok(()) => out::emit(&Ev::Connected { client: n }),
        Err(e) => {
            out::error("connect", &e);
            ok = false;
        }
    }
    if ok && !a.sub.is_empty() {
        let topics: Vec<(&str, QoS)> = a.sub.iter().map(|t| (t.as_str(), qos)).collect();
        match c.subscribe(&topics).await {
            Ok(granted) => {
                for (t, g) in a.sub.iter().zip(granted.iter()) {
                    let q = match g {
                        Grant::Granted(q) => q.get(),
                        Grant::Rejected => 128,
                    };
                    out::emit(&Ev::Subscribed {
                        client: n,
                        topic: t,
                        qos: q,
                    });
                }
            }
            Err(e) => {
                out::error("subscribe", &e);
                ok = false;
            }
        }
    }
    if ok {
        for (t, p) in &a.publish {
            match c.publish(t, p.as_bytes(), qos, a.retain).await {
                Ok(done) => out::emit(&Ev::Published {
                    client: n,
                    topic: t,
                    line: None,
                    msg_id: done.msg_id,
                }),
                Err(e) => {
                    out::error("publish", &e);
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
            Event::Message(m) => out::message(&m),
            Event::LinkClosed { client, reason } => {
                out::emit(&Ev::LinkClosed {
                    client: client.get(),
                    code: reason.code(),
                });
                if client == id {
                    return false;
                }
            }
            Event::Missed(k) => eprintln!("bc26: missed {k} messages"),
            _ => {}
        }
    }
    let ending = if ok {
        Ending::Connected
    } else {
        Ending::Failed
    };
    end(c, ending).await && ok
}

/// How a session ends, for [`end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Connected: DISCONNECT, then CLOSE.
    Connected,
    /// A step failed (the link may still be open): CLOSE only, and its
    /// failure is an error too.
    Failed,
    /// The supervisor's link is down (the link may be gone already): CLOSE
    /// only, and its failure is only logged.
    Offline,
}

/// Ends a client's session (the one-shot session's and `--stdin`'s):
/// DISCONNECT when connected, then CLOSE, each reported as an event or an
/// error. After a DISCONNECT some firmware has closed the link already and
/// answers -1 to the CLOSE: closed either way. False when a step that had to
/// succeed did not.
pub async fn end(c: MqttClient<'_>, ending: Ending) -> bool {
    let n = c.id().get();
    let mut ok = true;
    let mut disconnected = false;
    if ending == Ending::Connected {
        match c.disconnect().await {
            Ok(()) => {
                out::emit(&Ev::Disconnected { client: n });
                disconnected = true;
            }
            Err(e) => {
                out::error("disconnect", &e);
                ok = false;
            }
        }
    }
    match c.close().await {
        Ok(()) | Err(Error::CloseFailed) if disconnected => out::emit(&Ev::Closed { client: n }),
        Ok(()) => out::emit(&Ev::Closed { client: n }),
        Err(e) if ending == Ending::Offline => eprintln!("bc26: close: {e}"),
        Err(e) => {
            out::error("close", &e);
            ok = false;
        }
    }
    ok
}
