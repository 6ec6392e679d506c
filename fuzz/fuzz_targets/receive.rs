//! The driver's whole receive path: arbitrary modem bytes in arbitrary
//! chunks, while idle, during a command and during a prompt wait; then a
//! command must get its own answer. Input layout: `bc26_mqtt_fuzz::Plan`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bc26_mqtt_fuzz::fuzz(data));
