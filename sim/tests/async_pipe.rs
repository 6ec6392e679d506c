//! The in-process pipe from async code: a task on the embassy std executor drives the
//! simulator through `embedded_io_async::{Read, Write}` while the simulator runs on its own
//! threads (wakers cross threads).

use std::sync::mpsc;
use std::time::Duration;

use bc26_sim::{HostSide, Sim, SimConfig};
use critical_section as _;
use embedded_io_async::{Read, Write};

#[embassy_executor::task]
async fn driver(host: HostSide, done: mpsc::Sender<Vec<u8>>) {
    let HostSide {
        mut reader,
        mut writer,
    } = host;
    let want: &[u8] = b"ATE0\r\r\nOK\r\n\r\n+CEREG: 0,1\r\n\r\nOK\r\n";
    writer.write_all(b"ATE0\r").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    let mut sent_second = false;
    while got.len() < want.len() {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "EOF");
        got.extend_from_slice(&buf[..n]);
        if !sent_second && got.ends_with(b"OK\r\n") {
            sent_second = true;
            writer.write_all(b"AT+CEREG?\r").await.unwrap();
        }
    }
    done.send(got).unwrap();
}

#[test]
fn embassy_task_talks_to_the_simulator_through_embedded_io_async() {
    let (handle, host) = Sim::start(SimConfig::default());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let executor: &'static mut embassy_executor::Executor =
            Box::leak(Box::new(embassy_executor::Executor::new()));
        executor.run(move |spawner| {
            spawner.spawn(driver(host, tx).unwrap());
        });
    });
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("driver task did not finish");
    assert_eq!(got, b"ATE0\r\r\nOK\r\n\r\n+CEREG: 0,1\r\n\r\nOK\r\n");
    drop(handle);
}
