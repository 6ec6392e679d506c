//! Whatever the modem sends, the driver neither panics nor wedges: random
//! streams built from real and broken fragments, in random chunks, while
//! commands are in flight; afterwards a command still gets its own answer.

mod common;

use bc26_mqtt::{ClientId, QoS};
use common::{fast_config, next_command_works, run, settle, setup, with_runner, Fake};
use embassy_futures::join::join;
use embassy_futures::select::select;
use embassy_time::{Duration, Timer};

/// xorshift: deterministic, so a failure names its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"\r\nOK\r\n",
    b"\r\nERROR\r\n",
    b"\r\n+CME ERROR: 3\r\n",
    b"\r\n> ",
    b">",
    b"\r\n+QMTRECV: 0,1,\"t\",\"a,b\"\r\n",
    b"\r\n+QMTRECV: 9,1,\"t\",\"x\"\r\n",
    b"\r\n+QMTRECV: 0,1,\"t",
    b"\r\n+QMTRECV: 0,99999999999,\"t\",\"x\"\r\n",
    b"\r\n+QMTRECV: 1,0,\"t\",\"zz\"\r\n",
    b"\r\n+QMTSTAT: 0,1\r\n",
    b"\r\n+QMTSTAT: 7,300\r\n",
    b"\r\n+QMTOPEN: 0,0\r\n",
    b"\r\n+QMTOPEN: 0,\"h\",1\r\n",
    b"\r\n+QMTCONN: 0,3\r\n",
    b"\r\n+QMTPUB: 0,1,0\r\n",
    b"\r\n+QMTPUB: 0,1,1,65536\r\n",
    b"\r\n+QMTSUB: 0,1,0,1,2,128,7\r\n",
    b"\r\n+QMTCFG: \"keepalive\",x\r\n",
    b"AT+QMTCFG=\"keepalive\",0\r",
    b"\r\n+CEREG: 5\r\n",
    b"\r\nRDY\r\n",
    b"\r\n\r\n\r\n",
    b"\"\r\n",
    b"\x00\xff\x1a\x1b",
];

fn stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(40) {
        if rng.below(5) == 0 {
            for _ in 0..rng.below(30) {
                out.push(rng.next() as u8);
            }
        } else {
            out.extend_from_slice(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        }
    }
    // Now and then a line longer than the ingress buffer.
    if rng.below(10) == 0 {
        out.extend_from_slice(b"\r\n+QMTRECV: 0,0,\"t\",\"");
        out.extend(std::iter::repeat_n(b'a', 3000));
        out.extend_from_slice(b"\"\r\n");
    }
    out
}

async fn send_chunked(fake: &mut Fake, bytes: &[u8], rng: &mut Rng) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = (1 + rng.below(200)).min(rest.len());
        fake.send(&rest[..n]).await;
        rest = &rest[n..];
    }
}

#[test]
fn random_modem_streams_never_panic_or_wedge_the_driver() {
    run(async {
        let mut seen = bc26_mqtt::Stats::default();
        let mut messages = 0;
        for seed in 1..=120u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let config = fast_config()
                .command_timeout(Duration::from_millis(20))
                .open_timeout(Duration::from_millis(30))
                .packet_deadline(Duration::from_millis(30))
                .quiet_gap(Duration::from_millis(5));
            let (modem, runner, mut fake) = setup(config);
            let mut events = modem.events().unwrap();
            let c0 = modem.client(ClientId::new(0).unwrap());
            with_runner(runner, async {
                let junk = stream(&mut rng);
                // Commands in flight while the junk arrives; their outcome is
                // whatever the junk makes of it, but they must end.
                let ops = async {
                    let _ = c0.keepalive().await;
                    let _ = c0.publish("t", b"v", QoS::AtLeastOnce, false).await;
                    let _ = c0.open("h", 1).await;
                };
                let modem_side = async {
                    send_chunked(&mut fake, &junk, &mut rng).await;
                    // Let the commands finish or time out; drain what they wrote.
                    Timer::after_millis(30).await;
                };
                let (_, _) = join(
                    async {
                        if embassy_time::with_timeout(Duration::from_secs(3), ops)
                            .await
                            .is_err()
                        {
                            panic!("seed {seed}: an operation hung");
                        }
                    },
                    modem_side,
                )
                .await;
                // Whatever was left over, the modem ends it the way a real one would.
                fake.send(b"\r\n").await;
                settle().await;
                let mut buf = [0u8; bc26_mqtt::MESSAGE_MAX];
                while let Some(e) = events.try_next(&mut buf) {
                    messages += usize::from(matches!(e, bc26_mqtt::Event::Message(_)));
                }
                let _ = fake.nothing_from_host();
                fake.discard();
                // Resynchronised: the next command gets its own answer.
                let r = select(next_command_works(c0, &mut fake, 42), Timer::after_secs(3)).await;
                assert!(
                    matches!(r, embassy_futures::select::Either::First(())),
                    "seed {seed}: wedged"
                );
                let s = modem.stats();
                seen.overflows += s.overflows;
                seen.late_answers += s.late_answers;
                seen.malformed_urcs += s.malformed_urcs;
                seen.stray_responses += s.stray_responses;
                seen.unsolicited_lines += s.unsolicited_lines;
                seen.stale_results += s.stale_results;
            })
            .await;
        }
        // The streams did reach every path they are meant to exercise.
        assert!(messages > 0, "no message got through");
        assert!(
            seen.overflows > 0 && seen.malformed_urcs > 0 && seen.stray_responses > 0,
            "{seen:?}"
        );
        assert!(
            seen.unsolicited_lines > 0 && seen.stale_results > 0,
            "{seen:?}"
        );
    });
}
