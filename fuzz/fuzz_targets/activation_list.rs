//! `--activations` lists: parsed or refused, never a panic; a list that parses has one
//! activation per comma-separated item, and parsing is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vecprop::activation::parse_list;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_list(text) {
        assert_eq!(list.len(), text.split(',').count());
        assert_eq!(parse_list(text).expect("parses again"), list);
    }
});
