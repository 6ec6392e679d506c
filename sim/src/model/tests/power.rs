//! The power model on the fake clock, byte for byte: PSM timers requested and granted, the
//! radio's states and their URCs in order, a UART that loses the bytes that wake it, deep
//! sleep and PSM_EINT, downlink that waits for an unreachable module (PSM, eDRX), a link the
//! NAT forgot, release assistance, and the charge meter against a timeline computed by hand.

use std::time::Duration;

use super::{send, show, Rig};
use crate::config::{NetworkPolicy, PowerConfig, PsmGrant, SimConfig};
use crate::model::{NetAction, NetEvent, PowerState, Time};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Echo off, and these power knobs.
fn rig(power: PowerConfig) -> Rig {
    Rig::new(SimConfig {
        echo: false,
        power,
        ..SimConfig::default()
    })
}

/// `AT+QMTOPEN` of client 0 answered at once, with the power URCs the open's SYN brings
/// (`urcs`, framed) between the `OK` and the result: its link.
fn open_with(r: &mut Rig, urcs: &str) -> crate::model::LinkId {
    r.line("AT+QMTOPEN=0,\"broker.test\",1883");
    let link = match r.net().as_slice() {
        [NetAction::Connect { link, .. }] => *link,
        other => panic!("no connect: {other:?}"),
    };
    r.m.network(r.t, NetEvent::Connected(link));
    r.expect(&format!("\r\nOK\r\n{urcs}\r\n+QMTOPEN: 0,0\r\n"));
    link
}

const CEREG_GRANTED: &str = "\r\n+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000101\",\"00100001\"\r\n";

#[test]
fn a_grant_shorter_than_the_request_is_honoured_and_reported_in_cereg() {
    let mut r = rig(PowerConfig {
        network: NetworkPolicy {
            // At most 1 h of T3412 and 10 s of T3324.
            psm: PsmGrant::Clamp {
                periodic_tau: 0b001_00001,
                active_time: 0b000_00101,
            },
            ..NetworkPolicy::default()
        },
        ..PowerConfig::default()
    });
    r.line("AT+CEREG=4").expect("\r\nOK\r\n");
    r.line("AT+QNBIOTEVENT=1,1").expect("\r\nOK\r\n");
    // Requested: 3 h of T3412, 2 min of T3324.
    let t0 = r.t;
    r.line("AT+CPSMS=1,,,\"00100011\",\"00100010\"");
    r.expect(&format!("\r\nOK\r\n{CEREG_GRANTED}"));
    r.line("AT+CPSMS?")
        .expect("\r\n+CPSMS: 1,,,\"00100011\",\"00100010\"\r\n\r\nOK\r\n");
    r.line("AT+CEREG?").expect(
        "\r\n+CEREG: 4,1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000101\",\"00100001\"\r\n\r\nOK\r\n",
    );
    // The TAU's connection ends after its 2.5 s set-up; PSM 10 s later (granted), not 2 min.
    assert_eq!(r.m.poll_at(), Some(t0 + ms(2_500)));
    r.after(ms(2_500)).expect("");
    assert_eq!(r.m.poll_at(), Some(t0 + ms(12_500)));
    r.after(ms(9_999)).expect("");
    r.after(ms(1)).expect("\r\n+QNBIOTEVENT: \"ENTER PSM\"\r\n");
    // The periodic TAU 1 h after the release (granted), not 3 h.
    assert_eq!(r.m.poll_at(), Some(t0 + ms(2_500) + secs(3_600)));
    r.after(secs(3_590) - ms(10_000)).expect("");
    r.after(secs(10))
        .expect("\r\n+QNBIOTEVENT: \"EXIT PSM\"\r\n");
    assert_eq!(r.m.power_state(), PowerState::Transmit);
    assert_eq!(r.m.charge().counters.taus, 2);

    // The same request again: no TAU (nothing to tell the network).
    r.line("AT+CPSMS=1,,,\"00100011\",\"00100010\"")
        .expect("\r\nOK\r\n");
    assert_eq!(r.m.charge().counters.taus, 2);
    // The network refuses PSM: the next request's TAU reports no timers, and no PSM comes.
    r.m.network_policy_mut().psm = PsmGrant::Refuse;
    r.line("AT+CPSMS=1,,,\"00100010\"");
    r.expect("\r\nOK\r\n\r\n+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9\r\n");
    r.after(secs(100)).expect("");
    assert_eq!(
        r.m.power_state(),
        PowerState::Awake,
        "idle, sleep off, no PSM"
    );
    // Fixed: those timers whatever was asked.
    r.m.network_policy_mut().psm = PsmGrant::Fixed {
        periodic_tau: 0b000_00110,
        active_time: 0b000_00000,
    };
    r.line("AT+CPSMS=1,,,\"00100011\",\"00100010\"");
    r.expect("\r\nOK\r\n\r\n+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9,,,\"00000000\",\"00000110\"\r\n");
    // Released, then PSM at once (T3324 = 0).
    r.after(ms(2_500))
        .expect("\r\n+QNBIOTEVENT: \"ENTER PSM\"\r\n");
    // AT+CPSMS=2 forgets the request.
    r.line("AT+CPSMS=2").expect(
        "\r\nOK\r\n\r\n+QNBIOTEVENT: \"EXIT PSM\"\r\n\r\n+CEREG: 1,\"1A2D\",\"0CF5E9A1\",9\r\n",
    );
    r.line("AT+CPSMS?")
        .expect("\r\n+CPSMS: 0,,,,\r\n\r\nOK\r\n");
}

#[test]
fn connected_then_the_inactivity_timer_then_idle_then_t3324_then_psm_with_urcs_in_order() {
    let mut r = rig(PowerConfig::default());
    r.line("AT+CSCON=1").expect("\r\nOK\r\n");
    r.line("AT+QNBIOTEVENT=1,1").expect("\r\nOK\r\n");
    r.line("AT+CEREG=5").expect("\r\nOK\r\n");
    r.line("AT+CSCON?").expect("\r\n+CSCON: 1,0\r\n\r\nOK\r\n");
    let t0 = r.t;
    r.line("AT+CPSMS=1,,,\"00100001\",\"00000101\"");
    r.expect(&format!("\r\nOK\r\n\r\n+CSCON: 1\r\n{CEREG_GRANTED}"));
    r.line("AT+CSCON?").expect("\r\n+CSCON: 1,1\r\n\r\nOK\r\n");
    r.after(ms(2_500)).expect("\r\n+CSCON: 0\r\n");
    r.after(secs(10))
        .expect("\r\n+QNBIOTEVENT: \"ENTER PSM\"\r\n");
    assert!(r.t == t0 + ms(12_500));

    // An uplink from PSM: out of PSM, connected; the inactivity timer runs from the end of
    // the last transmission (set-up 2.5 s + SYN 0.3 s + CONNECT 0.3 s).
    let t1 = r.t;
    let link = open_with(
        &mut r,
        "\r\n+QNBIOTEVENT: \"EXIT PSM\"\r\n\r\n+CSCON: 1\r\n",
    );
    r.line("AT+QMTCONN=0,\"c\"").expect("\r\nOK\r\n");
    assert_eq!(r.net().len(), 1);
    // A downlink at 5 s restarts the timer: released 20 s after it.
    r.after(secs(5)).broker(link, b"\x20\x02\x00\x00");
    r.expect("\r\n+QMTCONN: 0,0,0\r\n");
    r.after(secs(20) - ms(1)).expect("");
    r.after(ms(1)).expect("\r\n+CSCON: 0\r\n");
    assert_eq!(r.t, t1 + secs(25));
    // T3324 again, then PSM (light sleep: a TCP link is open; sleep is off anyway).
    r.after(secs(10))
        .expect("\r\n+QNBIOTEVENT: \"ENTER PSM\"\r\n");
    assert_eq!(r.m.power_state(), PowerState::Awake);
    assert_eq!(r.m.charge().counters.psm_entries, 2);
}

#[test]
fn the_first_bytes_into_a_sleeping_uart_are_lost_and_it_answers_after_waking() {
    let mut r = Rig::new(SimConfig {
        power: PowerConfig::default(),
        ..SimConfig::default()
    }); // echo on: lost bytes are not echoed either
    r.line("AT+QSCLK=2");
    r.expect("AT+QSCLK=2\r\r\nOK\r\n");
    // Within the 10 s lock of that command the UART works.
    r.after(secs(9));
    assert_eq!(r.send(b"AT\r"), b"AT\r");
    r.expect("AT\r\r\nOK\r\n");
    // 10 s after the last command the module sleeps (light sleep, idle with DRX).
    r.after(secs(10));
    assert_eq!(r.m.power_state(), PowerState::LightSleepDrx);
    // The first "AT\r" wakes it and is lost; so is what comes in the next 5 ms.
    assert_eq!(r.send(b"AT\r"), b"");
    assert_eq!(r.m.power_state(), PowerState::Awake);
    r.after(ms(4));
    assert_eq!(r.send(b"AT+QMTCFG=\"keepalive\",0\r"), b"");
    r.expect("");
    r.after(ms(1));
    assert_eq!(r.send(b"AT\r"), b"AT\r");
    r.expect("AT\r\r\nOK\r\n");
    let c = r.m.charge().counters;
    assert_eq!((c.uart_wakes, c.host_bytes_lost), (1, 3 + 24));

    // Deep sleep (AT+QSCLK=1, PSM, no link): the UART is dead; only PSM_EINT wakes it.
    r.line("ATE0").expect("ATE0\r\r\nOK\r\n");
    r.line("AT+QATWAKEUP=1").expect("\r\nOK\r\n");
    r.line("AT+QSCLK=1").expect("\r\nOK\r\n");
    r.line("AT+CPSMS=1,,,\"00100001\",\"00000000\"")
        .expect("\r\nOK\r\n");
    r.line("AT+QRELLOCK").expect("\r\nOK\r\n");
    // Released after the TAU's set-up; T3324 = 0: PSM, and no lock: deep sleep at once.
    r.after(ms(2_500));
    assert_eq!(r.m.power_state(), PowerState::DeepSleep);
    for _ in 0..3 {
        assert_eq!(r.send(b"AT\r"), b"");
        r.after(secs(1));
    }
    r.expect("");
    assert_eq!(r.m.power_state(), PowerState::DeepSleep);
    r.m.psm_eint(r.t);
    assert_eq!(r.m.poll_at(), Some(r.t + ms(100)));
    r.after(ms(99));
    assert_eq!(r.send(b"AT\r"), b"", "still waking");
    r.after(ms(1)).expect("\r\n+QATWAKEUP\r\n");
    assert_eq!(r.send(b"AT\r"), b"AT\r");
    r.expect("\r\nOK\r\n");
    // The radio stays in PSM until something is sent.
    r.line("AT+CSCON?").expect("\r\n+CSCON: 0,0\r\n\r\nOK\r\n");
    assert_eq!(r.m.charge().counters.eint_wakes, 1);
}

#[test]
fn downlink_for_a_module_in_psm_waits_until_it_sends_and_then_arrives_in_order() {
    let mut r = rig(PowerConfig::default());
    let link = r.connect(0);
    r.line("AT+QNBIOTEVENT=1,1").expect("\r\nOK\r\n");
    r.line("AT+CPSMS=1,,,\"00100001\",\"00000101\"")
        .expect("\r\nOK\r\n");
    // Connected since the CONNECT (0.3 s after a 2.5 s set-up); released 20 s later.
    r.after(secs(23) + ms(200)).expect("");
    r.after(secs(10))
        .expect("\r\n+QNBIOTEVENT: \"ENTER PSM\"\r\n");
    // The broker publishes QoS 1 to the module in PSM: it waits.
    r.broker(link, b"\x32\x08\x00\x01t\x00\x07hi!");
    r.expect("");
    assert_eq!(r.net(), []);
    assert_eq!(
        r.m.poll_at(),
        Some(Time::ZERO + secs(120)),
        "next: the keep-alive's PINGREQ (which would end PSM)"
    );
    r.after(secs(60)).expect("");
    // The module publishes: out of PSM, and the held PUBLISH arrives (and is acknowledged).
    r.line("AT+QMTPUB=0,0,0,0,\"up\",\"x\"");
    r.expect(
        "\r\nOK\r\n\r\n+QNBIOTEVENT: \"EXIT PSM\"\r\n\r\n+QMTPUB: 0,0,0\r\n\r\n+QMTRECV: 0,7,\"t\",\"hi!\"\r\n",
    );
    assert_eq!(
        r.net(),
        [
            send(link, b"\x30\x05\x00\x02upx"),
            send(link, b"\x40\x02\x00\x07")
        ]
    );
    assert_eq!(r.m.charge().counters.downlink_held, 1);
}

#[test]
fn with_edrx_downlink_waits_for_the_next_paging_time_window() {
    let mut r = rig(PowerConfig {
        network: NetworkPolicy {
            ptw: 0, // 2.56 s
            ..NetworkPolicy::default()
        },
        ..PowerConfig::default()
    });
    let link = r.connect(0);
    r.line("AT+CEDRXS=2,5,\"0010\"")
        .expect("\r\nOK\r\n\r\n+CEDRXP: 5,\"0010\",\"0010\",\"0000\"\r\n");
    r.line("AT+CEDRXS?")
        .expect("\r\n+CEDRXS: 5,\"0010\"\r\n\r\nOK\r\n");
    r.line("AT+CEDRXRDP")
        .expect("\r\n+CEDRXRDP: 5,\"0010\",\"0010\",\"0000\"\r\n\r\nOK\r\n");
    // Released 20 s after the CONNECT's transmission: idle with eDRX (20.48 s cycle).
    r.at_ms(40_000);
    assert_eq!(r.m.power_state(), PowerState::Awake);
    // 40.96 s starts a window of 2.56 s; at 44 s the module cannot be reached until 61.44 s.
    r.at_ms(44_000).broker(link, b"\x30\x06\x00\x01tabc");
    r.expect("");
    assert_eq!(r.m.poll_at(), Some(Time::from_millis(61_440)));
    r.at_ms(61_439).expect("");
    r.at_ms(61_440)
        .expect("\r\n+QMTRECV: 0,0,\"t\",\"abc\"\r\n");
    // eDRX off (and its URC with it): reachable again at once.
    r.line("AT+CEDRXS=0").expect("\r\nOK\r\n");
    r.line("AT+CEDRXRDP")
        .expect("\r\n+CEDRXRDP: 0\r\n\r\nOK\r\n");
    r.line("AT+CEDRXS?").expect("\r\nOK\r\n");
}

#[test]
fn a_link_idle_past_the_nat_timeout_is_dead_and_found_dead_when_the_module_next_waits() {
    let mut r = rig(PowerConfig::default());
    r.line("AT+QMTCFG=\"keepalive\",0,600").expect("\r\nOK\r\n");
    let link = r.connect(0);
    // 300 s without a packet either way: the NAT forgets the link. The broker's PUBLISH is
    // dropped on the way (the broker is not told; it will drop the link at 1.5 x keep-alive).
    r.after(secs(300)).broker(link, b"\x30\x05\x00\x01tabc");
    r.expect("");
    assert_eq!(r.m.charge().counters.nat_expired, 1);
    // The PINGREQ at 600 s goes nowhere; no PINGRESP within pkt_timeout: +QMTSTAT: 0,2. The
    // close that follows never leaves either.
    r.after(secs(300));
    assert_eq!(r.net(), []);
    r.after(secs(10)).expect("\r\n+QMTSTAT: 0,2\r\n");
    assert_eq!(r.net(), [], "no PINGREQ, no FIN: the NAT dropped them");
    // A new open gets a new mapping: it works.
    let link2 = r.open(0);
    assert_ne!(link2, link);
}

#[test]
fn release_assistance_applies_to_mqtt_traffic_only_when_the_knob_says_so() {
    for (rai_for_mqtt, released_after) in [(false, ms(2_800) + secs(20)), (true, ms(2_800))] {
        let mut r = rig(PowerConfig {
            rai_for_mqtt,
            ..PowerConfig::default()
        });
        let link = r.connect(0);
        r.line("AT+CSCON=1").expect("\r\nOK\r\n");
        r.line("AT+QNBIOTRAI=1").expect("\r\nOK\r\n");
        r.line("AT+QNBIOTRAI?")
            .expect("\r\n+QNBIOTRAI: 1\r\n\r\nOK\r\n");
        r.after(secs(30)).expect("\r\n+CSCON: 0\r\n");
        let t = r.t;
        r.line("AT+QMTPUB=0,0,0,0,\"t\",\"x\"");
        r.expect("\r\nOK\r\n\r\n+CSCON: 1\r\n\r\n+QMTPUB: 0,0,0\r\n");
        assert_eq!(r.net(), [send(link, b"\x30\x04\x00\x01tx")]);
        assert_eq!(r.m.poll_at(), Some(t + released_after), "{rai_for_mqtt}");
    }
}

#[test]
fn the_charge_meter_integrates_a_scripted_timeline_to_the_value_computed_by_hand() {
    let mut r = rig(PowerConfig {
        qsclk_at_boot: 1,
        ..PowerConfig::default()
    });
    // 0 s: the UART sleeps (light sleep, idle): "AT" wakes it (lost), the lock follows.
    assert_eq!(r.send(b"AT\r"), b"");
    // 1 s: PSM (T3412 1 h, T3324 10 s): a TAU connection of 2.5 s, released at 3.5 s.
    r.at_ms(1_000)
        .line("AT+CPSMS=1,,,\"00100001\",\"00000101\"");
    r.expect("\r\nOK\r\n");
    // Then: awake until the command's lock ends (11 s), light sleep (idle, DRX) until PSM
    // (13.5 s), deep sleep until the periodic TAU (3603.5 s), its connection (2.5 s), light
    // sleep for T3324 again (10 s), deep sleep until 7200 s.
    r.at_ms(7_200_000);
    let c = r.m.charge();
    let by_hand_mc = 8.5 * 5.1 // awake: 0-1 s and 3.5-11 s, 5.1 mA
        + 5.0 * 100.0 // transmit: two set-ups of 2.5 s, 100 mA
        + 12.5 * 0.434 // light sleep, DRX: 11-13.5 s and 3606-3616 s, 434 uA
        + (7200.0 - 8.5 - 5.0 - 12.5) * 0.0035; // deep sleep, 3.5 uA
    let got = c.total().millicoulombs();
    assert!(
        (got - by_hand_mc).abs() <= by_hand_mc * 0.01,
        "{got} mC, by hand {by_hand_mc} mC"
    );
    // Exact, in fact: the meter counts nanoamperes times nanoseconds.
    assert_eq!(c.total().microcoulombs(), 573_884);
    assert_eq!(c.state(PowerState::DeepSleep).time, secs(7_174));
    assert_eq!(c.state(PowerState::Awake).time, ms(8_500));
    let total_time: Duration = c.states.iter().map(|s| s.time).sum();
    assert_eq!(total_time, secs(7_200));
    assert_eq!(c.at, Time::from_millis(7_200_000));
    // Energy at 3.3 V.
    assert!((c.energy_mj() - by_hand_mc * 3.3).abs() < 1e-6 * by_hand_mc);
}

/// One scripted run: its host transcript and its meter.
fn scripted_run() -> (String, crate::model::ChargeReport) {
    let mut r = rig(PowerConfig {
        qsclk_at_boot: 2,
        ..PowerConfig::default()
    });
    let mut out = String::new();
    // Sleep is on from the start: wake the UART first (this "AT" is lost).
    assert_eq!(r.send(b"AT\r"), b"");
    r.after(ms(10));
    let link = r.connect(0);
    out += &r.host();
    for (i, cmd) in [
        "AT+CSCON=1",
        "AT+QNBIOTEVENT=1,1",
        "AT+CPSMS=1,,,\"00100001\",\"00000101\"",
        "AT+QMTPUB=0,1,1,0,\"t\",\"x\"",
    ]
    .iter()
    .enumerate()
    {
        r.at_ms(10_000 * i as u64 + 100);
        r.send(b"AT\r"); // wake-up, lost or answered
        r.after(ms(10)).line(cmd);
        out += &r.host();
    }
    r.after(secs(1)).broker(link, b"\x40\x02\x00\x01");
    for _ in 0..20 {
        r.after(secs(7));
        out += &r.host();
    }
    (out, r.m.charge())
}

#[test]
fn the_same_inputs_give_the_same_bytes_and_the_same_meter() {
    let (a, ca) = scripted_run();
    let (b, cb) = scripted_run();
    assert_eq!(a, b);
    assert_eq!(ca, cb);
    assert!(ca.total().attocoulombs() > 0);
    assert!(a.contains(&show(b"+QNBIOTEVENT: \"ENTER PSM\"")), "{a}");
}

#[test]
fn with_the_defaults_a_session_sees_no_power_urc_and_nothing_waits_on_the_radio() {
    let mut r = Rig::quiet();
    let link = r.connect(0);
    r.line("AT+QMTPUB=0,1,1,0,\"t\",\"x\"").expect("\r\nOK\r\n");
    r.net();
    r.broker(link, b"\x40\x02\x00\x01")
        .expect("\r\n+QMTPUB: 0,1,0\r\n");
    // Only the keep-alive is due: the radio's release and TAU do not show.
    assert_eq!(r.m.poll_at(), Some(r.t + secs(120)));
    r.line("AT+QMTDISC=0")
        .expect("\r\nOK\r\n\r\n+QMTDISC: 0,0\r\n");
    assert_eq!(r.m.poll_at(), None);
    r.after(secs(3 * 3600)).expect("");
    let c = r.m.charge();
    // The radio went idle 20 s after the last packet, and TAUs ran every 54 min.
    assert_eq!(c.counters.taus, 3);
    assert!(c.state(PowerState::Connected).time >= secs(20));
    assert_eq!(c.state(PowerState::DeepSleep).time, Duration::ZERO);
    // The log of power transitions: transmitting from the open (set-up and four packets:
    // SYN, CONNECT, PUBLISH, DISCONNECT, and the FIN), connected, awake at the release.
    let log: Vec<_> = std::iter::from_fn(|| r.m.poll_power()).take(3).collect();
    let at = |s: u64, m: u64| Time::ZERO + secs(s) + ms(m);
    assert_eq!(
        log.iter().map(|t| (t.at, t.state)).collect::<Vec<_>>(),
        [
            (at(0, 0), PowerState::Transmit),
            (at(4, 0), PowerState::Connected),
            (at(24, 0), PowerState::Awake)
        ]
    );
}

#[test]
fn settings_answer_their_read_and_test_forms_as_the_manual_prints_them() {
    let mut r = rig(PowerConfig::default());
    for (line, want) in [
        ("AT+QSCLK=?", "\r\n+QSCLK: (0-2)\r\n\r\nOK\r\n"),
        ("AT+QSCLK?", "\r\n+QSCLK: 0\r\n\r\nOK\r\n"),
        ("AT+CSCON=?", "\r\n+CSCON: (0,1)\r\n\r\nOK\r\n"),
        ("AT+QNBIOTEVENT=?", "\r\nOK\r\n"),
        ("AT+QNBIOTEVENT?", "\r\nOK\r\n"),
        ("AT+QNBIOTRAI=?", "\r\n+QNBIOTRAI: (0-2)\r\n\r\nOK\r\n"),
        ("AT+QATWAKEUP=?", "\r\n+QATWAKEUP: (0,1)\r\n\r\nOK\r\n"),
        ("AT+QATWAKEUP?", "\r\n+QATWAKEUP: 0\r\n\r\nOK\r\n"),
        (
            "AT+CPSMS=?",
            "\r\n+CPSMS: (0-2),,,(\"00000000\"-\"11111111\"),(\"00000000\"-\"11111111\")\r\n\r\nOK\r\n",
        ),
        ("AT+CPSMS?", "\r\n+CPSMS: 0,,,,\r\n\r\nOK\r\n"),
        (
            "AT+CEDRXS=?",
            "\r\n+CEDRXS: (0-3),(5),(\"0000\"-\"1111\")\r\n\r\nOK\r\n",
        ),
        ("AT+CEDRXRDP=?", "\r\nOK\r\n"),
        ("AT+CEREG=?", "\r\n+CEREG: (0-5)\r\n\r\nOK\r\n"),
        ("AT+QRELLOCK", "\r\nOK\r\n"),
    ] {
        r.line(line);
        assert_eq!(r.host(), show(want.as_bytes()), "{line}");
    }
    // A reboot: URC settings and QSCLK back to their defaults, the PSM request kept.
    r.line("AT+QSCLK=2").expect("\r\nOK\r\n");
    r.line("AT+CPSMS=1,,,\"00100001\",\"00000101\"")
        .expect("\r\nOK\r\n");
    r.line("AT+QNBIOTRAI=2").expect("\r\nOK\r\n");
    r.m.reboot(r.t);
    r.after(ms(200)).expect("<discard>\r\nRDY\r\n");
    r.line("AT+QSCLK?")
        .expect("AT+QSCLK?\r\r\n+QSCLK: 0\r\n\r\nOK\r\n");
    r.line("AT+QNBIOTRAI?")
        .expect("AT+QNBIOTRAI?\r\r\n+QNBIOTRAI: 0\r\n\r\nOK\r\n");
    r.line("AT+CPSMS?")
        .expect("AT+CPSMS?\r\r\n+CPSMS: 1,,,\"00100001\",\"00000101\"\r\n\r\nOK\r\n");
}

#[test]
fn a_reboot_drops_the_links_without_a_packet_and_attaches_after_its_boot() {
    let mut r = rig(PowerConfig::default());
    let link = r.connect(0);
    r.after(secs(30));
    assert_eq!(r.m.power_state(), PowerState::Awake, "released, idle");
    let setups = r.m.charge().counters.rrc_setups;
    r.m.reboot(r.t);
    assert_eq!(r.net(), [NetAction::Close { link }]);
    assert_eq!(r.m.power_state(), PowerState::Awake, "booting: no uplink");
    assert_eq!(r.m.charge().counters.rrc_setups, setups);
    r.after(ms(200)).expect("<discard>\r\nRDY\r\n");
    assert_eq!(r.m.power_state(), PowerState::Transmit, "the attach");
    assert_eq!(r.m.charge().counters.rrc_setups, setups + 1);
}
