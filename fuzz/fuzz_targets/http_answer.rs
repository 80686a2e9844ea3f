#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| aegis_fuzz::http_answer(data));
