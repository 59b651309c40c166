//! The ingest secret: CARTBACK_INGEST_SECRET, or one generated into the data
//! folder on first start of `cartback dev`.

use std::path::Path;

use anyhow::{bail, Context};
use cartback_core::signing::Secret;
use rand::RngCore;

pub const ENV: &str = "CARTBACK_INGEST_SECRET";
const FILE: &str = "ingest-secret";

pub enum Source {
    Environment,
    Existing,
    Generated,
}

/// Reads the secret from the environment or the data folder.
pub fn load(data: &Path) -> anyhow::Result<Option<Secret>> {
    if let Ok(value) = std::env::var(ENV) {
        return Ok(Some(Secret::new(value.into_bytes()).with_context(|| format!("{ENV} is too short"))?));
    }
    let path = data.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            Secret::new(text.trim().as_bytes().to_vec()).with_context(|| format!("{} is too short", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Loads the secret or generates one into the data folder (mode 0600).
pub fn load_or_generate(data: &Path) -> anyhow::Result<(Secret, String, Source)> {
    if let Ok(value) = std::env::var(ENV) {
        let secret =
            Secret::new(value.clone().into_bytes()).with_context(|| format!("{ENV} must be at least 16 bytes"))?;
        return Ok((secret, value, Source::Environment));
    }
    let path = data.join(FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim().to_owned();
        let secret = Secret::new(text.clone().into_bytes())
            .with_context(|| format!("{} must hold at least 16 bytes", path.display()))?;
        return Ok((secret, text, Source::Existing));
    }
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    let text = hex::encode(bytes);
    write_private(&path, &text)?;
    Ok((Secret::new(text.clone().into_bytes()).expect("48 hex characters"), text, Source::Generated))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

pub fn require(data: &Path) -> anyhow::Result<Secret> {
    match load(data)? {
        Some(s) => Ok(s),
        None => bail!("no secret: set {ENV} or point --data at the folder `cartback dev` uses"),
    }
}
