//! What a host may send that a modem must survive: the model never panics, and answers each
//! line as a BC26 would (`ERROR` for what it refuses), then goes on working. Also malformed
//! bytes from a broker, and the same seed giving the same bytes.

use super::{show, Rig};
use crate::model::{NetAction, NetEvent};

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The model is alive and in command mode: a plain `AT` gets its `OK`.
fn answers_at(r: &mut Rig) {
    // Leave data mode if a line put it there (ESC), end any half line.
    r.send(b"\x1b\r");
    r.host();
    r.send(b"AT\r");
    let out = r.host();
    assert!(out.ends_with(&show(b"\r\nOK\r\n")), "after AT: {out}");
}

#[test]
fn lines_a_bc26_refuses_are_answered_error_and_send_nothing() {
    let mut r = Rig::quiet();
    r.connect(0);
    let long_topic = format!("AT+QMTPUB=0,0,0,0,\"{}\",\"m\"", "t".repeat(256));
    let long_msg = format!("AT+QMTPUB=0,0,0,0,\"t\",\"{}\"", "m".repeat(701));
    let lines: Vec<Vec<u8>> = [
        // Topics MQTT forbids (MQTT 3.1.1 section 4.7): wildcards in a name, bad filters, NUL.
        "AT+QMTPUB=0,1,1,0,\"a/+\",\"m\"",
        "AT+QMTPUB=0,1,1,0,\"a/#\",\"m\"",
        "AT+QMTPUB=0,0,0,0,\"+\"",
        "AT+QMTPUB=0,0,0,0,\"a\0b\",\"m\"",
        "AT+QMTSUB=0,1,\"a/#/b\",0",
        "AT+QMTSUB=0,1,\"a+/b\",0",
        "AT+QMTSUB=0,1,\"a\",0,\"##\",1",
        "AT+QMTUNS=0,1,\"a/b#\"",
        "AT+QMTCFG=\"will\",0,1,0,0,\"w/+\",\"m\"",
        "AT+QMTCFG=\"will\",0,1,0,0,\"\",\"m\"",
        // Numbers out of range, overflowing, negative, not numbers, missing.
        "AT+QMTPUB=0,99999999999999999999999,1,0,\"t\",\"m\"",
        "AT+QMTPUB=0,-1,1,0,\"t\",\"m\"",
        "AT+QMTPUB=0,1,3,0,\"t\",\"m\"",
        "AT+QMTPUB=0,1,1,2,\"t\",\"m\"",
        "AT+QMTPUB=0,x,1,0,\"t\",\"m\"",
        "AT+QMTPUB=0,,1,0,\"t\",\"m\"",
        "AT+QMTPUB=6,0,0,0,\"t\",\"m\"",
        "AT+QMTPUB=-1,0,0,0,\"t\",\"m\"",
        "AT+QMTSUB=0,65536,\"t\",0",
        "AT+QMTOPEN=0,\"h\",65536",
        "AT+QMTCFG=\"keepalive\",0,3601",
        "AT+QMTCFG=\"timeout\",0,0",
        "AT+CMEE=18446744073709551616",
        // Quotes and shapes.
        "AT+QMTPUB=0,0,0,0,\"t",
        "AT+QMTPUB=0,0,0,0,\"t\",\"m",
        "AT+QMTPUB=0,0,0,0,\"t\",m\"",
        "AT+QMTPUB=0,0,0,0,\"t\",\"",
        "AT+QMTCONN=0,c",
        "AT+QMTSUB=0,1,\"t\"",
        "AT+QMTCFG=\"\",0",
        "AT+QMTCFG=",
        "AT+=",
        "AT+",
        "AT+QMTPUB",
        "AT+QMTPUB?",
        "AT+QMTPUB==?",
        "AT\"",
        "+++",
        &long_topic,
        &long_msg,
    ]
    .iter()
    .map(|l| l.as_bytes().to_vec())
    .chain([
        b"AT+QMTPUB=0,0,0,0,\"\xff\xfe\",\"m\"".to_vec(),
        b"AT+QMTCONN=0,\"\xc3\"".to_vec(),
        b"AT+\xff\x00".to_vec(),
        // Power commands: out of range, malformed timers, missing or extra parameters.
        b"AT+CPSMS=1,,,\"0100001\",\"00000101\"".to_vec(),
        b"AT+CPSMS=1,,,\"\xff0000000\"".to_vec(),
        b"AT+CPSMS=99999999999999999999999".to_vec(),
        b"AT+CPSMS=1,1,1,\"00100001\",\"00000101\"".to_vec(),
        b"AT+CEDRXS=1,5,\"01010\"".to_vec(),
        b"AT+CEDRXS=1,5".to_vec(),
        b"AT+CEDRXS=2,9,\"0101\"".to_vec(),
        b"AT+QSCLK=18446744073709551617".to_vec(),
        b"AT+QSCLK=".to_vec(),
        b"AT+QRELLOCK=?".to_vec(),
        b"AT+CSCON=-1".to_vec(),
        b"AT+QNBIOTEVENT=1,1,1".to_vec(),
        b"AT+QNBIOTRAI=\"1\"".to_vec(),
        b"AT+QATWAKEUP=1,".to_vec(),
        b"AT+CEREG=5,1".to_vec(),
    ])
    .collect();
    for l in &lines {
        let mut line = l.clone();
        line.push(b'\r');
        r.send(&line);
        assert_eq!(r.host(), show(b"\r\nERROR\r\n"), "{}", show(l));
        assert_eq!(r.net(), [], "{}", show(l));
    }
    // Hex: odd or bad digits inline, too many.
    r.line("AT+QMTCFG=\"dataformat\",0,1,1")
        .expect("\r\nOK\r\n");
    for msg in ["4", "4G", "zz", &"41".repeat(701)] {
        r.line(&format!("AT+QMTPUB=0,0,0,0,\"t\",\"{msg}\""));
        assert_eq!(r.host(), show(b"\r\nERROR\r\n"), "{msg}");
    }
    // Still connected and working.
    r.line("AT+QMTPUB=0,0,0,0,\"t\",\"41\"");
    r.expect("\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n");
    assert_eq!(r.net().len(), 1);
}

#[test]
fn data_mode_garbage_is_refused_or_cut_never_a_panic() {
    let mut r = Rig::quiet();
    let link = r.connect(0);
    r.line("AT+QMTCFG=\"echomode\",0,0").expect("\r\nOK\r\n");
    // Text: every byte but Ctrl+Z and ESC is payload; more than 1024 are dropped.
    r.line("AT+QMTPUB=0,0,0,0,\"t\"").expect("\r\n> ");
    let mut junk: Vec<u8> = (0..=255u8).filter(|b| *b != 0x1a && *b != 0x1b).collect();
    junk = junk.repeat(8); // 2032 bytes
    r.send(&junk);
    r.send(b"\x1a");
    r.expect("\r\nOK\r\n\r\n+QMTPUB: 0,0,0\r\n");
    match r.net().as_slice() {
        [NetAction::Send { link: l, bytes }] => {
            assert_eq!(*l, link);
            assert_eq!(&bytes[bytes.len() - 1024..], &junk[..1024]);
        }
        other => panic!("{other:?}"),
    }
    // Hex: garbage digits at Ctrl+Z: ERROR, nothing sent, command mode again.
    r.line("AT+QMTCFG=\"dataformat\",0,1,0")
        .expect("\r\nOK\r\n");
    r.line("AT+QMTPUB=0,1,1,0,\"t\"").expect("\r\n> ");
    r.send(b"4x41\r\n\x1a");
    r.expect("\r\nERROR\r\n");
    assert_eq!(r.net(), []);
    answers_at(&mut r);
}

#[test]
fn random_bytes_and_overlong_lines_never_panic_and_the_modem_still_answers() {
    let mut r = Rig::quiet();
    let link = r.connect(0);
    let mut rng = Rng(0x5eed);
    let pieces: [&[u8]; 12] = [
        b"AT+QMTPUB=0,",
        b"AT+QMTSUB=0,1,\"",
        b"AT+QMTCFG=\"",
        b"AT+QMTOPEN=",
        b"\"",
        b",",
        b"\r",
        b"\x1a",
        b"\x1b",
        b"\x08",
        b"+#/",
        b"9999999999999999999999",
    ];
    for round in 0..300 {
        let mut chunk = Vec::new();
        for _ in 0..rng.below(12) + 1 {
            if rng.below(3) == 0 {
                chunk.extend_from_slice(pieces[rng.below(pieces.len())]);
            } else {
                let n = rng.below(40);
                chunk.extend((0..n).map(|_| rng.next() as u8));
            }
        }
        if round % 50 == 0 {
            chunk.extend(std::iter::repeat_n(b'A', 6000)); // longer than a line may be
        }
        r.send(&chunk);
        r.t = r.t + std::time::Duration::from_millis(rng.below(3000) as u64);
        r.m.advance(r.t);
        r.host();
        for a in r.net() {
            // Whatever went out was MQTT the codec made: answer what a broker would.
            if let NetAction::Connect { link, .. } = a {
                r.m.network(r.t, NetEvent::Connected(link));
            }
        }
        answers_at(&mut r);
    }
    let _ = link;
}

#[test]
fn malformed_broker_bytes_close_the_link_never_panic() {
    let mut rng = Rng(7);
    for _ in 0..200 {
        let mut r = Rig::quiet();
        let link = r.connect(0);
        let n = rng.below(64);
        let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        r.broker(link, &junk);
        r.host();
        r.net();
        answers_at(&mut r);
    }
    // A PUBACK with packet id 0 (the codec's constructor would panic on it): not MQTT.
    let mut r = Rig::quiet();
    let link = r.connect(0);
    r.broker(link, b"\x40\x02\x00\x00");
    r.expect("\r\n+QMTSTAT: 0,1\r\n");
    assert_eq!(r.net(), [NetAction::Close { link }]);
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let run = || {
        let mut r = Rig::quiet();
        let link = r.connect(0);
        let mut rng = Rng(42);
        let mut out = String::new();
        for _ in 0..200 {
            let chunk: Vec<u8> = (0..rng.below(30)).map(|_| rng.next() as u8).collect();
            r.send(&chunk);
            r.send(b"\rAT+QMTPUB=0,1,1,0,\"t\",\"m\"\r");
            r.broker(link, b"\x40\x02\x00\x01");
            r.t = r.t + std::time::Duration::from_millis(rng.below(20_000) as u64);
            r.m.advance(r.t);
            out.push_str(&r.host());
            out.push_str(&format!("{:?}", r.net()));
        }
        out
    };
    let a = run();
    assert!(a.len() > 1000);
    assert_eq!(a, run());
}

#[test]
fn random_power_commands_and_time_jumps_never_panic_and_a_woken_module_answers() {
    let mut rng = Rng(0xb26);
    let cmds: [&str; 14] = [
        "AT+QSCLK=",
        "AT+CPSMS=",
        "AT+CPSMS=1,,,\"",
        "AT+CEDRXS=",
        "AT+CEDRXS=2,5,\"",
        "AT+QRELLOCK",
        "AT+CSCON=",
        "AT+QNBIOTEVENT=",
        "AT+QNBIOTRAI=",
        "AT+QATWAKEUP=",
        "AT+CEREG=",
        "AT+QMTPUB=0,0,0,0,\"t\",\"x\"",
        "AT+CSCON?",
        "AT+CEDRXRDP",
    ];
    let (mut slept, mut psm) = (0, 0);
    for seed in 0..20 {
        let mut r = Rig::quiet();
        let link = r.connect(0);
        for _ in 0..150 {
            let mut line = cmds[rng.below(cmds.len())].as_bytes().to_vec();
            match rng.below(4) {
                0 => line.extend(format!("{}", rng.below(7)).bytes()),
                1 => line.extend((0..rng.below(10)).map(|_| b"01\",x9"[rng.below(6)])),
                2 => line.extend(format!("{}", rng.next()).bytes()),
                _ => {}
            }
            line.push(b'\r');
            r.send(&line);
            match rng.below(6) {
                0 => r.m.psm_eint(r.t),
                1 => {
                    r.broker(link, b"\x30\x04\x00\x01tx");
                }
                2 => {
                    let p = r.m.network_policy_mut();
                    p.inactivity = std::time::Duration::from_millis(rng.below(30_000) as u64);
                    p.ptw = rng.next() as u8;
                }
                _ => {}
            }
            // From nothing to days: catching up must stay exact and quick.
            let jump = [0, 5, 3_000, 60_000, 86_400_000][rng.below(5)];
            r.t = r.t + std::time::Duration::from_millis(jump);
            r.m.advance(r.t);
            r.host();
            for a in r.net() {
                if let NetAction::Connect { link, .. } = a {
                    r.m.network(r.t, NetEvent::Connected(link));
                }
            }
        }
        // Wake it as a driver would: PSM_EINT, then AT until it answers.
        r.m.psm_eint(r.t);
        let mut answered = false;
        for _ in 0..3 {
            r.t = r.t + std::time::Duration::from_millis(200);
            r.m.advance(r.t);
            r.host();
            r.send(b"\x1b\rAT\r");
            if r.host().ends_with(&show(b"\r\nOK\r\n")) {
                answered = true;
                break;
            }
        }
        assert!(answered, "seed round {seed}: no OK after a wake-up");
        let c = r.m.charge();
        let t: std::time::Duration = c.states.iter().map(|s| s.time).sum();
        assert_eq!(t, r.t.since_epoch(), "every instant is in one state");
        slept += c.counters.host_bytes_lost;
        psm += c.counters.psm_entries;
    }
    assert!(
        slept > 0 && psm > 0,
        "the rounds reached sleep ({slept}) and PSM ({psm})"
    );
}
