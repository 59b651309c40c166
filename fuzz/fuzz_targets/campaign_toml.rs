//! Campaign files: any text through `Campaign::from_toml` (parse + validate)
//! without panicking, and a valid campaign survives export and re-apply
//! (`cartback campaign export` then `apply`) unchanged.
#![no_main]

use cartback_core::campaign::Campaign;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(campaign) = Campaign::from_toml(text) else {
        return;
    };
    let exported = campaign.to_toml();
    assert_eq!(Campaign::from_toml(&exported), Ok(campaign), "export did not round trip:\n{exported}");
});
