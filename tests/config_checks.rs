//! A `Config` whose values contradict each other is refused when the driver
//! is created, with a typed error; and with every `Config` the driver
//! accepts, a `+QMTRECV` that never completes holds the stream for one
//! quiet gap after the modem's last byte, however fast the application
//! sends commands.

mod common;

use bc26_mqtt::{ConfigError, Error, Setting, State};
use common::{fast_config, next_ev, run, setup, with_runner, Ev, TxPipe, WirePipe};
use embassy_futures::join::join;
use embassy_sync::pipe::Pipe;
use embassy_time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn pipes() -> (&'static WirePipe, &'static TxPipe) {
    (
        Box::leak(Box::new(Pipe::new())),
        Box::leak(Box::new(Pipe::new())),
    )
}

#[test]
fn a_config_that_contradicts_itself_is_refused_when_the_driver_is_created() {
    let state: &'static mut State = Box::leak(Box::new(State::new()));
    let cases = [
        // The issue's case: the resync AT is answered inside every gap.
        (
            fast_config().quiet_gap(ms(200)).command_timeout(ms(40)),
            ConfigError::ShorterThanQuietGaps(Setting::CommandTimeout),
        ),
        (
            fast_config().quiet_gap(ms(100)).command_timeout(ms(199)),
            ConfigError::ShorterThanQuietGaps(Setting::CommandTimeout),
        ),
        (
            fast_config().quiet_gap(ms(100)).open_timeout(ms(150)),
            ConfigError::ShorterThanQuietGaps(Setting::OpenTimeout),
        ),
        (
            fast_config().quiet_gap(ms(100)).packet_deadline(ms(150)),
            ConfigError::ShorterThanQuietGaps(Setting::PacketDeadline),
        ),
        (
            fast_config().read_error_pause(Duration::from_ticks(0)),
            ConfigError::Zero(Setting::ReadErrorPause),
        ),
        (
            fast_config().tx_timeout(Duration::from_ticks(0)),
            ConfigError::Zero(Setting::TxTimeout),
        ),
    ];
    for (config, want) in cases {
        let (rx, tx) = pipes();
        let got = bc26_mqtt::new(&mut *state, rx, tx, config).map(drop);
        assert_eq!(got, Err(want), "{config:?}");
        // `?` carries it into the crate's one error type.
        assert_eq!(Error::from(want), Error::Config(want));
    }
    // The state is left as it was: a consistent Config gets a driver.
    let (rx, tx) = pipes();
    assert!(bc26_mqtt::new(&mut *state, rx, tx, fast_config()).is_ok());
}

/// With the shortest `command_timeout` the driver accepts for a quiet gap
/// (two gaps), a text `+QMTRECV` whose closing quote was lost is given up
/// one gap after the modem's answer, and commands sent back to back (each
/// answered at once, which keeps the modem talking) all get their answers.
#[test]
fn with_the_shortest_accepted_command_timeout_a_cut_frame_is_given_up_and_commands_go_on() {
    for gap in [20, 50] {
        run(async move {
            let gap = ms(gap);
            let (modem, runner, mut fake) =
                setup(fast_config().quiet_gap(gap).command_timeout(gap * 2));
            let mut events = modem.events().unwrap();
            let c0 = modem.client(bc26_mqtt::ClientId::new(0).unwrap());
            with_runner(runner, async {
                fake.send(b"\r\n+QMTRECV: 0,1,\"t\",\"cut short\r\n").await;
                let start = Instant::now();
                for i in 0..5u16 {
                    let reply = format!("\r\n+QMTCFG: \"keepalive\",{i}\r\n\r\nOK\r\n");
                    let (r, _) = join(c0.keepalive(), async {
                        fake.expect(b"AT+QMTCFG=\"keepalive\",0\r").await;
                        fake.send(reply.as_bytes()).await;
                    })
                    .await;
                    assert_eq!(r, Ok(i), "command {i} ({:?})", modem.stats());
                }
                let s = modem.stats();
                assert_eq!((s.resyncs, s.fences), (1, 0), "{s:?}");
                // One gap held the stream, not one per command.
                assert!(start.elapsed() < gap * 4, "{:?}", start.elapsed());
                fake.send(b"\r\n+QMTRECV: 0,2,\"t\",\"whole\"\r\n").await;
                match next_ev(&mut events).await {
                    Ev::Message(m) => assert_eq!(&m.payload[..], b"whole"),
                    e => panic!("{e:?}"),
                }
            })
            .await;
        });
    }
}
