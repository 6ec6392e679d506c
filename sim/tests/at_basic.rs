//! The simulator driven by raw AT bytes, without a broker: echo, basic commands, every
//! AT+QMTCFG form, test/read forms, wrong-state and bad-parameter results, transports and
//! output knobs.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bc26_sim::{Chunking, Sim, SimConfig};
use common::{closed_port, Term};

#[test]
fn echo_is_on_by_default_and_ate0_ate1_switch_it() {
    let mut t = Term::new(SimConfig::default());
    t.send("AT");
    t.expect("AT\r\r\nOK\r\n");
    t.send("ATE0");
    t.expect("ATE0\r\r\nOK\r\n");
    t.send("AT");
    t.expect("\r\nOK\r\n");
    t.send("ATE1");
    t.expect("\r\nOK\r\n");
    t.send("AT+QMTOPEN=?");
    t.expect("AT+QMTOPEN=?\r\r\n+QMTOPEN: (0-5),\"<host_name>\",<port>\r\n\r\nOK\r\n");
    // A host that ends lines with CRLF: the LF is echoed too and otherwise ignored.
    t.send_bytes(b"AT\r\n");
    t.expect("AT\r\r\nOK\r\n\n");
    t.send("AT+NOPE");
    t.expect("AT+NOPE\r\r\nERROR\r\n");
}

#[test]
fn basic_commands() {
    let mut t = Term::quiet(SimConfig::default());
    t.at("AT+CEREG?", "\r\n+CEREG: 0,1\r\n\r\nOK\r\n");
    t.at("AT+CGATT?", "\r\n+CGATT: 1\r\n\r\nOK\r\n");
    t.at("AT+CMEE=1", "\r\nOK\r\n");
    t.at("AT+CMEE?", "\r\n+CMEE: 1\r\n\r\nOK\r\n");
    t.at("AT+CMEE=2", "\r\nOK\r\n");
    t.at("AT+CMEE=7", "\r\nERROR\r\n");
    t.at("at", "\r\nOK\r\n");
    t.at("AT+UNKNOWN=1", "\r\nERROR\r\n");
    t.at("hello", "\r\nERROR\r\n");
    t.at("ATX", "\r\nERROR\r\n");
    // An empty line is ignored.
    t.send("");
    t.at("AT", "\r\nOK\r\n");
}

#[test]
fn cme_errors_knob() {
    let mut t = Term::quiet(SimConfig {
        cme_errors: true,
        ..SimConfig::default()
    });
    t.at("AT+BAD", "\r\nERROR\r\n");
    t.at("AT+CMEE=1", "\r\nOK\r\n");
    t.at("AT+BAD", "\r\n+CME ERROR: 50\r\n");
    t.at("AT+CMEE=2", "\r\nOK\r\n");
    t.at("AT+BAD", "\r\n+CME ERROR: Incorrect parameters\r\n");
}

#[test]
fn qmtcfg_test_form_lists_every_option_as_the_reference_prints_it() {
    let mut t = Term::quiet(SimConfig::default());
    t.at(
        "AT+QMTCFG=?",
        "\r\n+QMTCFG: \"echomode\",(0-5),(0,1)\r\n\
         +QMTCFG: \"dataformat\",(0-5),(0,1),(0,1)\r\n\
         +QMTCFG: \"keepalive\",(0-5),(0-3600)\r\n\
         +QMTCFG: \"session\",(0-5),(0,1)\r\n\
         +QMTCFG: \"timeout\",(0-5),(1-60),(1-10),(0,1)\r\n\
         +QMTCFG: \"will\",(0-5),(0,1),(0-2),(0,1),\"will_topic\",\"will_msg\"\r\n\
         +QMTCFG: \"version\",(0-5),(3,4)\r\n\
         +QMTCFG: \"aliauth\",(0-5),\"productkey\",\"devicename\",\"devicesecret\"\r\n\
         \r\nOK\r\n",
    );
}

#[test]
fn qmtcfg_defaults() {
    let mut t = Term::quiet(SimConfig::default());
    t.at(
        "AT+QMTCFG=\"will\",0",
        "\r\n+QMTCFG: \"will\",0\r\n\r\nOK\r\n",
    );
    t.at(
        "AT+QMTCFG=\"timeout\",0",
        "\r\n+QMTCFG: \"timeout\",10,3,0\r\n\r\nOK\r\n",
    );
    t.at(
        "AT+QMTCFG=\"session\",0",
        "\r\n+QMTCFG: \"session\",1\r\n\r\nOK\r\n",
    );
    t.at(
        "AT+QMTCFG=\"keepalive\",0",
        "\r\n+QMTCFG: \"keepalive\",120\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTCFG=\"aliauth\",0", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"version\",0",
        "\r\n+QMTCFG: \"version\",4\r\n\r\nOK\r\n",
    );
    t.at(
        "AT+QMTCFG=\"dataformat\",0",
        "\r\n+QMTCFG: \"dataformat\",0,0\r\n\r\nOK\r\n",
    );
    t.at(
        "AT+QMTCFG=\"echomode\",0",
        "\r\n+QMTCFG: \"echomode\",1\r\n\r\nOK\r\n",
    );
    let mut t3 = Term::quiet(SimConfig {
        default_version: 3,
        ..SimConfig::default()
    });
    t3.at(
        "AT+QMTCFG=\"version\",5",
        "\r\n+QMTCFG: \"version\",3\r\n\r\nOK\r\n",
    );
}

#[test]
fn qmtcfg_write_then_query_each_option_per_client() {
    let mut t = Term::quiet(SimConfig::default());
    t.at(
        "AT+QMTCFG=\"will\",1,1,2,1,\"dev/lwt\",\"gone, \"bye\"\"",
        "\r\nERROR\r\n",
    );
    t.at(
        "AT+QMTCFG=\"will\",1,1,2,1,\"dev/lwt\",\"gone\"",
        "\r\nOK\r\n",
    );
    t.at(
        "AT+QMTCFG=\"will\",1",
        "\r\n+QMTCFG: \"will\",1,2,1,dev/lwt,gone\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTCFG=\"will\",1,1,0,0,\"t\",\"\"", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"will\",1",
        "\r\n+QMTCFG: \"will\",1,0,0,t,\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTCFG=\"will\",1,0", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"will\",1",
        "\r\n+QMTCFG: \"will\",0\r\n\r\nOK\r\n",
    );
    // Client 0 was not touched.
    t.at(
        "AT+QMTCFG=\"will\",0",
        "\r\n+QMTCFG: \"will\",0\r\n\r\nOK\r\n",
    );

    t.at("AT+QMTCFG=\"timeout\",2,20", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"timeout\",2",
        "\r\n+QMTCFG: \"timeout\",20,3,0\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTCFG=\"timeout\",2,5,0,1", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"timeout\",2",
        "\r\n+QMTCFG: \"timeout\",5,0,1\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTCFG=\"TIMEOUT\",2,60,10,0", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"timeout\",2",
        "\r\n+QMTCFG: \"timeout\",60,10,0\r\n\r\nOK\r\n",
    );

    t.at("AT+QMTCFG=\"session\",3,0", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"session\",3",
        "\r\n+QMTCFG: \"session\",0\r\n\r\nOK\r\n",
    );

    t.at("AT+QMTCFG=\"keepalive\",4,3600", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"keepalive\",4",
        "\r\n+QMTCFG: \"keepalive\",3600\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTCFG=\"keepalive\",4,0", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"keepalive\",4",
        "\r\n+QMTCFG: \"keepalive\",0\r\n\r\nOK\r\n",
    );

    t.at("AT+QMTCFG=\"aliauth\",5,\"pk\",\"dn\",\"ds\"", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"aliauth\",5",
        "\r\n+QMTCFG: \"aliauth\",pk,dn,ds\r\n\r\nOK\r\n",
    );

    t.at("AT+QMTCFG=\"version\",0,3", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"version\",0",
        "\r\n+QMTCFG: \"version\",3\r\n\r\nOK\r\n",
    );

    t.at("AT+QMTCFG=\"dataformat\",0,1,0", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"dataformat\",0",
        "\r\n+QMTCFG: \"dataformat\",1,0\r\n\r\nOK\r\n",
    );

    t.at("AT+QMTCFG=\"echomode\",0,0", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"echomode\",0",
        "\r\n+QMTCFG: \"echomode\",0\r\n\r\nOK\r\n",
    );
}

#[test]
fn qmtcfg_quoted_strings_knob() {
    let mut t = Term::quiet(SimConfig {
        quote_cfg_strings: true,
        ..SimConfig::default()
    });
    t.at("AT+QMTCFG=\"will\",0,1,1,0,\"a/b\",\"x y\"", "\r\nOK\r\n");
    t.at(
        "AT+QMTCFG=\"will\",0",
        "\r\n+QMTCFG: \"will\",1,1,0,\"a/b\",\"x y\"\r\n\r\nOK\r\n",
    );
}

#[test]
fn qmtcfg_bad_parameters_answer_error() {
    let mut t = Term::quiet(SimConfig::default());
    for cmd in [
        "AT+QMTCFG=\"keepalive\",6,10",
        "AT+QMTCFG=\"keepalive\",-1,10",
        "AT+QMTCFG=\"keepalive\",0,3601",
        "AT+QMTCFG=\"timeout\",0,0",
        "AT+QMTCFG=\"timeout\",0,61",
        "AT+QMTCFG=\"timeout\",0,10,11",
        "AT+QMTCFG=\"timeout\",0,10,3,2",
        "AT+QMTCFG=\"session\",0,2",
        "AT+QMTCFG=\"version\",0,5",
        "AT+QMTCFG=\"dataformat\",0,1",
        "AT+QMTCFG=\"dataformat\",0,2,0",
        "AT+QMTCFG=\"echomode\",0,2",
        "AT+QMTCFG=\"will\",0,1",
        "AT+QMTCFG=\"will\",0,1,3,0,\"t\",\"m\"",
        "AT+QMTCFG=\"will\",0,1,0,0,\"\",\"m\"",
        "AT+QMTCFG=\"aliauth\",0,\"pk\"",
        "AT+QMTCFG=\"nope\",0",
        "AT+QMTCFG=keepalive,0",
        "AT+QMTCFG?",
        "AT+QMTCFG",
    ] {
        t.send(cmd);
        t.expect("\r\nERROR\r\n");
    }
}

#[test]
fn test_forms_of_every_qmt_command() {
    let mut t = Term::quiet(SimConfig::default());
    t.at(
        "AT+QMTOPEN=?",
        "\r\n+QMTOPEN: (0-5),\"<host_name>\",<port>\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTCLOSE=?", "\r\n+QMTCLOSE: (0-5)\r\n\r\nOK\r\n");
    t.at(
        "AT+QMTCONN=?",
        "\r\n+QMTCONN: (0-5),\"<clientID>\"[,\"<username>\"[,\"<password>\"]]\r\n\r\nOK\r\n",
    );
    t.at("AT+QMTDISC=?", "\r\n+QMTDISC: (0-5)\r\n\r\nOK\r\n");
    t.at(
        "AT+QMTSUB=?",
        "\r\n+QMTSUB: (0-5),<msgID>,\"<topic>\",<qos>[,\"<topic>\",<qos>...]\r\n\r\nOK\r\n",
    );
    t.at(
        "AT+QMTUNS=?",
        "\r\n+QMTUNS: (0-5),<msgID>,\"<topic>\"\r\n\r\nOK\r\n",
    );
    t.at(
        "AT+QMTPUB=?",
        "\r\n+QMTPUB: (0-5),<msgID>,<qos>,<retain>,\"<topic>\",\"<msg>\"\r\n\r\nOK\r\n",
    );
    // Read forms with nothing open.
    t.at("AT+QMTOPEN?", "\r\nOK\r\n");
    t.at("AT+QMTCONN?", "\r\nOK\r\n");
    // Forms that do not exist.
    t.at("AT+QMTSUB?", "\r\nERROR\r\n");
    t.at("AT+QMTDISC", "\r\nERROR\r\n");
}

#[test]
fn wrong_state_and_bad_parameters_without_a_connection() {
    let mut t = Term::quiet(SimConfig::default());
    t.at("AT+QMTOPEN=6,\"host\",1883", "\r\nERROR\r\n");
    t.at("AT+QMTOPEN=0,\"host\",0", "\r\nERROR\r\n");
    t.at("AT+QMTOPEN=0,\"host\",65536", "\r\nERROR\r\n");
    t.at("AT+QMTOPEN=0,\"\",1883", "\r\nERROR\r\n");
    t.at("AT+QMTOPEN=0,host,1883", "\r\nERROR\r\n");
    t.at("AT+QMTOPEN=0,\"host\"", "\r\nERROR\r\n");
    // Not open: CONN/SUB/UNS/PUB answer ERROR, DISC/CLOSE report failure (-1).
    t.at("AT+QMTCONN=0,\"c\"", "\r\nERROR\r\n");
    t.at("AT+QMTSUB=0,1,\"t\",0", "\r\nERROR\r\n");
    t.at("AT+QMTUNS=0,1,\"t\"", "\r\nERROR\r\n");
    t.at("AT+QMTPUB=0,0,0,0,\"t\",\"m\"", "\r\nERROR\r\n");
    t.at("AT+QMTPUB=0,0,0,0,\"t\"", "\r\nERROR\r\n");
    t.at("AT+QMTDISC=0", "\r\nOK\r\n\r\n+QMTDISC: 0,-1\r\n");
    t.at("AT+QMTCLOSE=0", "\r\nOK\r\n\r\n+QMTCLOSE: 0,-1\r\n");
    t.at("AT+QMTCLOSE=6", "\r\nERROR\r\n");
    t.at("AT+QMTDISC=6", "\r\nERROR\r\n");
    // Parameter errors are reported before the state.
    t.at("AT+QMTSUB=0,0,\"t\",0", "\r\nERROR\r\n");
    t.at("AT+QMTSUB=0,1,\"t\",3", "\r\nERROR\r\n");
    t.at("AT+QMTPUB=0,1,0,0,\"t\",\"m\"", "\r\nERROR\r\n");
    t.at("AT+QMTPUB=0,0,1,0,\"t\",\"m\"", "\r\nERROR\r\n");
}

#[test]
fn open_refused_reports_minus_one_and_bad_name_reports_4() {
    let mut t = Term::quiet(SimConfig::default());
    let port = closed_port();
    t.at(&format!("AT+QMTOPEN=0,\"127.0.0.1\",{port}"), "\r\nOK\r\n");
    t.expect("\r\n+QMTOPEN: 0,-1\r\n");
    t.at("AT+QMTOPEN?", "\r\nOK\r\n");
    t.at("AT+QMTOPEN=1,\"no-such-host.invalid\",1883", "\r\nOK\r\n");
    let r = t.until_timeout("\r\n", std::time::Duration::from_secs(30));
    assert_eq!(r, "\r\n");
    t.expect("+QMTOPEN: 1,4\r\n");
}

#[test]
fn open_twice_reports_identifier_occupied_and_close_works() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut t = Term::quiet(SimConfig::default());
    t.at(&format!("AT+QMTOPEN=3,\"127.0.0.1\",{port}"), "\r\nOK\r\n");
    t.expect("\r\n+QMTOPEN: 3,0\r\n");
    t.at(&format!("AT+QMTOPEN=3,\"127.0.0.1\",{port}"), "\r\nOK\r\n");
    t.expect("\r\n+QMTOPEN: 3,2\r\n");
    t.at(
        "AT+QMTOPEN?",
        &format!("\r\n+QMTOPEN: 3,\"127.0.0.1\",{port}\r\n\r\nOK\r\n"),
    );
    t.at("AT+QMTCONN?", "\r\n+QMTCONN: 3,1\r\n\r\nOK\r\n");
    // SUB before CONN: wrong state.
    t.at("AT+QMTSUB=3,1,\"t\",0", "\r\nERROR\r\n");
    t.at("AT+QMTDISC=3", "\r\nOK\r\n\r\n+QMTDISC: 3,-1\r\n");
    t.at("AT+QMTCLOSE=3", "\r\nOK\r\n\r\n+QMTCLOSE: 3,0\r\n");
    t.at("AT+QMTOPEN?", "\r\nOK\r\n");
}

#[test]
fn result_delay_delays_deferred_results_only() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut t = Term::quiet(SimConfig {
        result_delay: Duration::from_millis(300),
        ..SimConfig::default()
    });
    let t0 = Instant::now();
    t.at(&format!("AT+QMTOPEN=0,\"127.0.0.1\",{port}"), "\r\nOK\r\n");
    assert!(t0.elapsed() < Duration::from_millis(250));
    t.expect("\r\n+QMTOPEN: 0,0\r\n");
    assert!(t0.elapsed() >= Duration::from_millis(300));
}

#[test]
fn injected_urcs_and_garbage_reach_the_host() {
    let mut t = Term::quiet(SimConfig::default());
    t.handle.inject_urc("+QMTSTAT: 0,8");
    t.expect("\r\n+QMTSTAT: 0,8\r\n");
    t.handle.inject(b"\xff\x00garbage\r\n");
    t.expect_bytes(b"\xff\x00garbage\r\n");
    t.at("AT", "\r\nOK\r\n");
    let all = t.handle.transcript();
    assert!(all.ends_with(b"\r\n+QMTSTAT: 0,8\r\n\xff\x00garbage\r\n\r\nOK\r\n"));
}

#[test]
fn chunking_splits_output_but_keeps_the_bytes() {
    let (h, mut host) = Sim::start(SimConfig {
        chunking: Some(Chunking {
            seed: 7,
            max_chunk: 5,
            gap: Duration::from_millis(2),
        }),
        ..SimConfig::default()
    });
    host.writer.write_all_blocking(b"AT+QMTCFG=?\r").unwrap();
    let mut got = Vec::new();
    let mut reads = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !got.ends_with(b"\r\nOK\r\n") && Instant::now() < deadline {
        let mut b = [0u8; 4096];
        if let Some(n) = host.reader.read_blocking(&mut b, Duration::from_secs(1)) {
            got.extend_from_slice(&b[..n]);
            reads += 1;
        }
    }
    assert!(got.starts_with(b"AT+QMTCFG=?\r\r\n+QMTCFG: \"echomode\",(0-5),(0,1)\r\n"));
    assert!(got.ends_with(b"\"devicesecret\"\r\n\r\nOK\r\n"));
    assert!(reads > 20, "only {reads} reads");
    drop(h);
}

#[test]
fn baud_pacing_slows_the_output() {
    let mut t = Term::quiet(SimConfig {
        baud: Some(9600),
        ..SimConfig::default()
    });
    let t0 = Instant::now();
    // About 380 bytes: 10 bits each at 9600 baud is about 395 ms.
    t.send("AT+QMTCFG=?");
    t.until("\r\nOK\r\n");
    let e = t0.elapsed();
    assert!(e >= Duration::from_millis(350), "too fast: {e:?}");
    assert!(e < Duration::from_secs(3), "too slow: {e:?}");
}

#[test]
fn pty_transport() {
    let (h, path) = Sim::start_pty(SimConfig::default()).unwrap();
    assert!(path.to_string_lossy().starts_with("/dev/pts/"), "{path:?}");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all(b"AT\r").unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    while got.len() < 9 {
        let n = f.read(&mut b).unwrap();
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, b"AT\r\r\nOK\r\n");
    f.write_all(b"ATE0\rAT+CEREG?\r").unwrap();
    let want: &[u8] = b"ATE0\r\r\nOK\r\n\r\n+CEREG: 0,1\r\n\r\nOK\r\n";
    got.clear();
    while got.len() < want.len() {
        let n = f.read(&mut b).unwrap();
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, want);
    drop(f);
    // The device can be opened again.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all(b"AT\r").unwrap();
    got.clear();
    while got.len() < 6 {
        let n = f.read(&mut b).unwrap();
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, b"\r\nOK\r\n");
    drop(h);
}
