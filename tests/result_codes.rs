//! Every result code of the reference, through the public API: what each
//! deferred result makes of the operation that waits for it.

mod common;

use bc26_mqtt::{ClientId, ConnackCode, Error, Grant, OpenError, QoS};
use common::{fast_config, run, setup, with_runner};
use embassy_futures::join::join;

fn c0() -> ClientId {
    ClientId::new(0).unwrap()
}

#[test]
fn every_open_result_code() {
    let cases: [(&[u8], Result<(), Error>); 7] = [
        (b"0", Ok(())),
        (b"-1", Err(Error::Open(OpenError::NetworkFailed))),
        (b"1", Err(Error::Open(OpenError::WrongParameter))),
        (b"2", Err(Error::Open(OpenError::IdentifierOccupied))),
        (b"3", Err(Error::Open(OpenError::PdpActivationFailed))),
        (b"4", Err(Error::Open(OpenError::DnsFailed))),
        (b"5", Err(Error::Open(OpenError::NetworkDisconnected))),
    ];
    run(async move {
        let (modem, runner, mut fake) = setup(fast_config());
        let c = modem.client(c0());
        with_runner(runner, async {
            for (code, want) in cases {
                let reply = [&b"\r\nOK\r\n\r\n+QMTOPEN: 0,"[..], code, b"\r\n"].concat();
                let (got, _) = join(
                    c.open("h", 1),
                    fake.answer(b"AT+QMTOPEN=0,\"h\",1\r", &reply),
                )
                .await;
                assert_eq!(got, want, "+QMTOPEN: 0,{}", String::from_utf8_lossy(code));
            }
        })
        .await;
    });
}

#[test]
fn every_connect_result_and_connack_code() {
    let cases: [(&[u8], Result<(), Error>); 9] = [
        (b"0,0", Ok(())),
        (
            b"0,1",
            Err(Error::ConnectRefused(
                ConnackCode::UnacceptableProtocolVersion,
            )),
        ),
        (
            b"0,2",
            Err(Error::ConnectRefused(ConnackCode::IdentifierRejected)),
        ),
        (
            b"0,3",
            Err(Error::ConnectRefused(ConnackCode::ServerUnavailable)),
        ),
        (
            b"0,4",
            Err(Error::ConnectRefused(ConnackCode::BadCredentials)),
        ),
        (
            b"0,5",
            Err(Error::ConnectRefused(ConnackCode::NotAuthorized)),
        ),
        (b"2", Err(Error::SendFailed)),
        // Result 1 is progress: the operation goes on to the next result.
        (b"1\r\n\r\n+QMTCONN: 0,0,0", Ok(())),
        (b"1,2\r\n\r\n+QMTCONN: 0,2", Err(Error::SendFailed)),
    ];
    run(async move {
        let (modem, runner, mut fake) = setup(fast_config());
        let c = modem.client(c0());
        with_runner(runner, async {
            for (code, want) in cases {
                let reply = [&b"\r\nOK\r\n\r\n+QMTCONN: 0,"[..], code, b"\r\n"].concat();
                let (got, _) = join(
                    c.connect("d", None, None),
                    fake.answer(b"AT+QMTCONN=0,\"d\"\r", &reply),
                )
                .await;
                assert_eq!(got, want, "+QMTCONN: 0,{}", String::from_utf8_lossy(code));
            }
        })
        .await;
    });
}

#[test]
fn every_close_and_disconnect_result() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c = modem.client(c0());
        with_runner(runner, async {
            let (r, _) = join(
                c.close(),
                fake.answer(b"AT+QMTCLOSE=0\r", b"\r\nOK\r\n\r\n+QMTCLOSE: 0,0\r\n"),
            )
            .await;
            assert_eq!(r, Ok(()));
            let (r, _) = join(
                c.close(),
                fake.answer(b"AT+QMTCLOSE=0\r", b"\r\nOK\r\n\r\n+QMTCLOSE: 0,-1\r\n"),
            )
            .await;
            assert_eq!(r, Err(Error::CloseFailed));
            let (r, _) = join(
                c.disconnect(),
                fake.answer(b"AT+QMTDISC=0\r", b"\r\nOK\r\n\r\n+QMTDISC: 0,0\r\n"),
            )
            .await;
            assert_eq!(r, Ok(()));
            let (r, _) = join(
                c.disconnect(),
                fake.answer(b"AT+QMTDISC=0\r", b"\r\nOK\r\n\r\n+QMTDISC: 0,-1\r\n"),
            )
            .await;
            assert_eq!(r, Err(Error::CloseFailed));
        })
        .await;
    });
}

#[test]
fn every_subscribe_unsubscribe_and_publish_result() {
    run(async {
        let (modem, runner, mut fake) = setup(fast_config());
        let c = modem.client(c0());
        with_runner(runner, async {
            // SUB: 0 with grants, 1 (progress) then 0, 2.
            let (r, _) = join(
                c.subscribe(&[("a", QoS::AtLeastOnce)]),
                fake.answer(
                    b"AT+QMTSUB=0,1,\"a\",1\r",
                    b"\r\nOK\r\n\r\n+QMTSUB: 0,1,0,128\r\n",
                ),
            )
            .await;
            assert_eq!(r.unwrap().iter().collect::<Vec<_>>(), [Grant::Rejected]);
            let (r, _) = join(
                c.subscribe(&[("a", QoS::AtLeastOnce)]),
                fake.answer(
                    b"AT+QMTSUB=0,2,\"a\",1\r",
                    b"\r\nOK\r\n\r\n+QMTSUB: 0,2,1,1\r\n\r\n+QMTSUB: 0,2,0,1\r\n",
                ),
            )
            .await;
            assert_eq!(r.unwrap().get(0), Some(Grant::Granted(QoS::AtLeastOnce)));
            let (r, _) = join(
                c.subscribe(&[("a", QoS::AtLeastOnce)]),
                fake.answer(
                    b"AT+QMTSUB=0,3,\"a\",1\r",
                    b"\r\nOK\r\n\r\n+QMTSUB: 0,3,2\r\n",
                ),
            )
            .await;
            assert_eq!(r, Err(Error::SendFailed));
            // UNS: 0, 1 then 0, 2.
            let (r, _) = join(
                c.unsubscribe(&["a"]),
                fake.answer(
                    b"AT+QMTUNS=0,4,\"a\"\r",
                    b"\r\nOK\r\n\r\n+QMTUNS: 0,4,0\r\n",
                ),
            )
            .await;
            assert_eq!(r, Ok(()));
            let (r, _) = join(
                c.unsubscribe(&["a"]),
                fake.answer(
                    b"AT+QMTUNS=0,5,\"a\"\r",
                    b"\r\nOK\r\n\r\n+QMTUNS: 0,5,1,2\r\n\r\n+QMTUNS: 0,5,0\r\n",
                ),
            )
            .await;
            assert_eq!(r, Ok(()));
            let (r, _) = join(
                c.unsubscribe(&["a"]),
                fake.answer(
                    b"AT+QMTUNS=0,6,\"a\"\r",
                    b"\r\nOK\r\n\r\n+QMTUNS: 0,6,2\r\n",
                ),
            )
            .await;
            assert_eq!(r, Err(Error::SendFailed));
            // PUB: 0, 1 (counted) then 0, 2.
            let (r, _) = join(
                c.publish("t", b"v", QoS::AtLeastOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,7,1,0,\"t\",\"v\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,7,0\r\n",
                ),
            )
            .await;
            assert_eq!(r.map(|p| (p.msg_id, p.retransmissions)), Ok((7, 0)));
            let (r, _) = join(
                c.publish("t", b"v", QoS::ExactlyOnce, false),
                fake.answer(
                    b"AT+QMTPUB=0,8,2,0,\"t\",\"v\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,8,1,3\r\n\r\n+QMTPUB: 0,8,0\r\n",
                ),
            )
            .await;
            assert_eq!(r.map(|p| (p.msg_id, p.retransmissions)), Ok((8, 3)));
            let (r, _) = join(
                c.publish("t", b"v", QoS::AtMostOnce, true),
                fake.answer(
                    b"AT+QMTPUB=0,0,0,1,\"t\",\"v\"\r",
                    b"\r\nOK\r\n\r\n+QMTPUB: 0,0,2\r\n",
                ),
            )
            .await;
            assert_eq!(r, Err(Error::SendFailed));
            assert_eq!(modem.stats().stale_results, 0);
        })
        .await;
    });
}
