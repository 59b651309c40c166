//! `cartback template ...`: marketers' control over message templates, the
//! local data folder or (with --aws) the DynamoDB config table.
//!
//! The folder `apply` reads and `export` writes holds one sub-folder per set
//! (named as campaign steps name it: `reminder/`), laid out as the shipped
//! defaults in `infra/templates/` are ([`TemplateSet::to_files`]), and an
//! optional `brand.toml` with a `[brand]` table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use cartback_core::campaign::Campaign;
use cartback_core::cart::Cart;
use cartback_core::template::{
    self, Brand, Part, PreviewInput, TemplateName, TemplateParts, TemplateProblem, TemplateSet,
};
use clap::Subcommand;
use serde::{Deserialize, Serialize};

use crate::TemplateArgs;

/// The brand file's name in a templates folder.
pub const BRAND_FILE: &str = "brand.toml";

#[derive(Subcommand)]
pub enum Action {
    /// One line per set: stored or shipped, its locales, the campaign steps using it.
    List,
    /// Print a set's parts, every locale or one.
    Show {
        name: String,
        #[arg(long)]
        locale: Option<String>,
    },
    /// Validate every set folder and brand.toml in DIR, then store them all (or nothing, if any is bad).
    Apply { dir: PathBuf },
    /// Write the stored sets (shipped ones for names not stored) and the brand in the layout `apply` reads.
    Export { dir: PathBuf },
    /// Remove a stored set: a shipped set of that name applies again; steps naming another set fall back.
    Delete { name: String },
    /// Render a set for a sample or a real cart into --out: email.html, email.txt, email.eml, sms.txt,
    /// push.txt, web_push.txt, in_app.txt.
    Preview(PreviewArgs),
}

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// A step number of the campaign (1, 2, ...) or a set's name.
    pub step_or_name: String,
    /// The campaign whose step is previewed; default: the first enabled one by priority.
    #[arg(long)]
    pub campaign: Option<String>,
    /// The customer's locale, e.g. de or fr-CA (overrides the cart file's).
    #[arg(long)]
    pub locale: Option<String>,
    /// An events file as `cartback send` takes it (an event or {"events": [...]}): the cart, and the
    /// customer's first name, locale and time zone from its `customer` fields.
    #[arg(long, conflicts_with = "sample")]
    pub cart: Option<PathBuf>,
    /// A made-up cart of three items (the default when no --cart is given).
    #[arg(long)]
    pub sample: bool,
    /// The folder the rendered files go to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// `brand.toml`: the `[brand]` table.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BrandFile {
    brand: Brand,
}

pub async fn run(args: TemplateArgs) -> anyhow::Result<ExitCode> {
    let stores = crate::stores::open(&args.store).await?;
    let store = stores.templates.clone();
    match args.action {
        Action::List => {
            let stored = store.list_templates().await?;
            let campaigns = stores.campaigns.list().await?;
            println!("{:<24} {:<8} {:<24} used by", "NAME", "SOURCE", "LOCALES");
            for (set, source) in effective_sets(stored) {
                let locales = set.locales.keys().cloned().collect::<Vec<_>>().join(",");
                let users = users_of(&set.name, &campaigns).join(", ");
                let users = if users.is_empty() { "-" } else { &users };
                println!("{:<24} {:<8} {:<24} {users}", set.name.as_str(), source, locales);
            }
            match store.brand().await? {
                Some(brand) => println!("brand: {}", brand.name),
                None => println!("brand: (none stored; `cartback template apply` stores {BRAND_FILE})"),
            }
        }
        Action::Show { name, locale } => {
            let set = find(&store.list_templates().await?, &name)?;
            let locales: Vec<&String> = match &locale {
                Some(wanted) => match set.locales.get_key_value(wanted) {
                    Some((key, _)) => vec![key],
                    None => bail!(
                        "set {name} has no locale {wanted:?}; it has {}",
                        set.locales.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                },
                None => set.locales.keys().collect(),
            };
            println!("# set {} (default locale {})", set.name, set.default_locale);
            for (file, text) in &set.shared {
                println!("\n## shared {file}\n{text}");
            }
            for key in locales {
                if let Some(parts) = set.locales.get(key) {
                    for (part, text) in named_parts(parts) {
                        println!("\n## {key} {part}\n{text}");
                    }
                }
            }
        }
        Action::Apply { dir } => {
            let (sets, brand) = match read_folder(&dir) {
                Ok(read) => read,
                Err(problems) => {
                    eprintln!("nothing applied: {} problem(s) in {}", problems.len(), dir.display());
                    for problem in problems {
                        eprintln!("  {problem}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            };
            // Every set is measured against the store before any is written.
            let mut refused = Vec::new();
            for set in &sets {
                if let Err(error) = store.check_fits(set).await {
                    refused.push(format!("{}: {error}", set.name));
                }
            }
            if !refused.is_empty() {
                eprintln!("nothing applied: {} set(s) do not fit the store", refused.len());
                for problem in refused {
                    eprintln!("  {problem}");
                }
                return Ok(ExitCode::FAILURE);
            }
            let campaigns = stores.campaigns.list().await?;
            for set in &sets {
                store.put_template(set).await?;
                let users = users_of(&set.name, &campaigns).join(", ");
                println!(
                    "applied template set {} (locales {}){}",
                    set.name,
                    set.locales.keys().cloned().collect::<Vec<_>>().join(", "),
                    if users.is_empty() { String::new() } else { format!("; used by {users}") }
                );
            }
            if let Some(brand) = &brand {
                store.put_brand(brand).await?;
                println!("applied brand {:?}", brand.name);
            }
            let known: Vec<TemplateName> = effective_sets(store.list_templates().await?).map(|(s, _)| s.name).collect();
            for (campaign, step, name) in steps_naming(&campaigns) {
                if !known.iter().any(|k| k.as_str() == name) {
                    eprintln!("warning: campaign {campaign:?} step {step} names template {name:?}, not stored");
                }
            }
            println!("running checkers pick this up within a minute");
        }
        Action::Export { dir } => {
            if dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
                bail!("{} is not empty; export into a new folder", dir.display());
            }
            let sets = effective_sets(store.list_templates().await?);
            for (set, source) in sets {
                let folder = dir.join(set.name.as_str());
                for (path, text) in set.to_files() {
                    write_file(&folder.join(&path), &text)?;
                }
                println!("exported {} set {} to {}", source, set.name, folder.display());
            }
            match store.brand().await? {
                Some(brand) => {
                    let text = toml::to_string(&BrandFile { brand }).context("the brand does not serialise")?;
                    write_file(&dir.join(BRAND_FILE), &text)?;
                    println!("exported the brand to {}", dir.join(BRAND_FILE).display());
                }
                None => println!("no brand stored: no {BRAND_FILE} written"),
            }
        }
        Action::Delete { name } => {
            let parsed = TemplateName::parse(&name).map_err(anyhow::Error::msg)?;
            if !store.delete_template(&parsed).await? {
                bail!("no stored template set {name:?}; `cartback template list` shows the stored ones");
            }
            let campaigns = stores.campaigns.list().await?;
            let users = users_of(&parsed, &campaigns).join(", ");
            match template::shipped_set(&name) {
                Some(_) => println!("deleted template set {name}; the shipped {name} applies again"),
                None if users.is_empty() => println!("deleted template set {name}"),
                None => println!("deleted template set {name}; {users} fall back to the shipped default"),
            }
        }
        Action::Preview(preview) => return run_preview(preview, &stores).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The stored sets, and the shipped ones for names not stored, by name,
/// each with where it comes from.
fn effective_sets(stored: Vec<TemplateSet>) -> impl Iterator<Item = (TemplateSet, &'static str)> {
    let mut sets: BTreeMap<TemplateName, (TemplateSet, &'static str)> =
        template::shipped().into_iter().map(|set| (set.name.clone(), (set, "shipped"))).collect();
    for set in stored {
        sets.insert(set.name.clone(), (set, "stored"));
    }
    sets.into_values()
}

fn find(stored: &[TemplateSet], name: &str) -> anyhow::Result<TemplateSet> {
    effective_sets(stored.to_vec())
        .map(|(set, _)| set)
        .find(|set| set.name.as_str() == name)
        .with_context(|| format!("no template set {name:?}; `cartback template list` shows the names"))
}

/// Every (campaign id, 1-based step, template name) of the campaigns.
fn steps_naming(campaigns: &[Campaign]) -> Vec<(String, usize, String)> {
    let shown = if campaigns.is_empty() { vec![Campaign::default_campaign()] } else { campaigns.to_vec() };
    shown
        .iter()
        .flat_map(|c| c.steps.iter().enumerate().map(|(i, s)| (c.id.clone(), i + 1, s.template.clone())))
        .collect()
}

/// "campaign step" labels of the steps naming `name`.
fn users_of(name: &TemplateName, campaigns: &[Campaign]) -> Vec<String> {
    steps_naming(campaigns)
        .into_iter()
        .filter(|(_, _, template)| template == name.as_str())
        .map(|(campaign, step, _)| format!("{campaign} step {step}"))
        .collect()
}

/// The parts a locale sets, by their field names.
fn named_parts(parts: &TemplateParts) -> Vec<(&'static str, &str)> {
    Part::ALL.into_iter().filter_map(|part| parts.get(part).map(|text| (part.field(), text))).collect()
}

/// A problem found in a templates folder: the file (relative to the
/// folder), the field and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderProblem {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FolderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.field, self.message)
    }
}

/// Every set and the brand in `dir`, each validated; all the problems
/// otherwise, so that `apply` writes nothing unless everything is good.
pub fn read_folder(dir: &Path) -> Result<(Vec<TemplateSet>, Option<Brand>), Vec<FolderProblem>> {
    let problem = |file: &str, field: &str, message: String| FolderProblem {
        file: file.to_owned(),
        field: field.to_owned(),
        message,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return Err(vec![problem(&dir.display().to_string(), "-", format!("cannot read the folder: {e}"))]),
    };
    let mut folders: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    folders.sort();
    let (mut sets, mut problems) = (Vec::new(), Vec::new());
    for folder in folders {
        let folder_name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if folder_name.starts_with('.') {
            continue;
        }
        let name = match TemplateName::parse(&folder_name) {
            Ok(name) => name,
            Err(message) => {
                problems.push(problem(&format!("{folder_name}/"), "name", message));
                continue;
            }
        };
        let files = match read_tree(&folder) {
            Ok(files) => files,
            Err(e) => {
                problems.push(problem(&format!("{folder_name}/"), "-", e));
                continue;
            }
        };
        let set = match TemplateSet::from_files(name, &files) {
            Ok(set) => set,
            Err(found) => {
                problems.extend(found.into_iter().map(|p| locate(&folder_name, p)));
                continue;
            }
        };
        match set.validate() {
            Ok(()) => sets.push(set),
            Err(found) => problems.extend(found.into_iter().map(|p| locate(&folder_name, p))),
        }
    }
    let brand = match std::fs::read_to_string(dir.join(BRAND_FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            problems.push(problem(BRAND_FILE, "-", format!("cannot read it: {e}")));
            None
        }
        Ok(text) => match toml::from_str::<BrandFile>(&text) {
            Err(e) => {
                problems.push(problem(BRAND_FILE, "brand", e.message().to_owned()));
                None
            }
            Ok(_) if !unknown_brand_keys(&text).is_empty() => {
                let known = brand_keys().join(", ");
                for key in unknown_brand_keys(&text) {
                    let message = format!("unknown; [brand] takes {known}");
                    problems.push(problem(BRAND_FILE, &format!("brand.{key}"), message));
                }
                None
            }
            Ok(BrandFile { brand }) => match brand.validate() {
                Ok(()) => Some(brand),
                Err(found) => {
                    problems.extend(found.into_iter().map(|p| problem(BRAND_FILE, &p.field, p.message)));
                    None
                }
            },
        },
    };
    if sets.is_empty() && brand.is_none() && problems.is_empty() {
        problems.push(problem(
            &dir.display().to_string(),
            "-",
            format!("holds no set folder and no {BRAND_FILE}; `cartback template export DIR` writes the layout"),
        ));
    }
    if problems.is_empty() {
        Ok((sets, brand))
    } else {
        Err(problems)
    }
}

/// The settings `[brand]` takes.
fn brand_keys() -> Vec<String> {
    match toml::Value::try_from(Brand::sample()) {
        Ok(toml::Value::Table(table)) => table.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Keys of `[brand]` that are no brand setting (a typo would otherwise be
/// dropped without a word).
fn unknown_brand_keys(text: &str) -> Vec<String> {
    let known = brand_keys();
    let table = toml::from_str::<toml::Table>(text).ok();
    let brand = table.as_ref().and_then(|t| t.get("brand")).and_then(toml::Value::as_table);
    brand.map(|b| b.keys().filter(|k| !known.contains(k)).cloned().collect()).unwrap_or_default()
}

/// Every file under `folder`, by its path relative to it (`/`-separated).
fn read_tree(folder: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut files = BTreeMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?.path();
            let relative = path.strip_prefix(folder).unwrap_or(&path);
            let key = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            if key.split('/').any(|part| part.starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {key}: {e}"))?;
                files.insert(key, text);
            }
        }
    }
    Ok(files)
}

/// The file a set's problem is in: `files.<path>` names it; a part's
/// field (`locales.de.email_subject`) is in that locale's part file; a
/// shared file's (`shared.footer.html`) beside set.toml.
fn locate(folder: &str, problem: TemplateProblem) -> FolderProblem {
    let field = problem.field.as_str();
    let file = if let Some(path) = field.strip_prefix("files.") {
        Some(path.to_owned())
    } else if let Some(file) = field.strip_prefix("shared.") {
        Some(file.to_owned())
    } else if let Some(rest) = field.strip_prefix("locales.") {
        let (tag, part) = rest.split_once('.').unwrap_or((rest, ""));
        match Part::ALL.into_iter().find(|p| p.field() == part) {
            Some(part) => Some(format!("{tag}/{}", part.file())),
            None => Some(format!("{tag}/")),
        }
    } else if field == "default_locale" {
        Some("set.toml".to_owned())
    } else {
        None
    };
    FolderProblem {
        file: format!("{folder}/{}", file.unwrap_or_default()),
        field: problem.field,
        message: problem.message,
    }
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

async fn run_preview(args: PreviewArgs, stores: &crate::stores::Stores) -> anyhow::Result<ExitCode> {
    let campaigns = stores.campaigns.list().await?;
    let (name, step) = match args.step_or_name.parse::<usize>() {
        Ok(step) => {
            let campaign = pick_campaign(&campaigns, args.campaign.as_deref())?;
            let Some(found) = step.checked_sub(1).and_then(|i| campaign.steps.get(i)) else {
                bail!("campaign {:?} has {} step(s); there is no step {step}", campaign.id, campaign.steps.len());
            };
            (found.template.clone(), u32::try_from(step).unwrap_or(u32::MAX))
        }
        Err(_) => (args.step_or_name.clone(), 1),
    };
    let set = find(&stores.templates.list_templates().await?, &name)?;
    // No brand stored: what a send uses then (no name or logo, the postal address `cartback dev` is given).
    let brand = match stores.templates.brand().await? {
        Some(brand) => brand,
        None => {
            let address = std::env::var("CARTBACK_POSTAL_ADDRESS").ok().filter(|a| !a.trim().is_empty());
            Brand::fallback(address.as_deref().unwrap_or(cartback_core::service::PLACEHOLDER_POSTAL_ADDRESS))
        }
    };
    let mut input = match &args.cart {
        Some(file) => cart_input(file, step)?,
        None => PreviewInput::sample(step, args.locale.as_deref()),
    };
    if args.locale.is_some() {
        input.read_by(args.locale.clone(), input.time_zone);
    }
    let preview = template::preview(&set, &brand, &input).with_context(|| format!("cannot render set {name}"))?;
    let join = |title: &str, body: &str| format!("{title}\n\n{body}\n");
    let files: [(&str, Vec<u8>); 7] = [
        ("email.html", preview.email_html.clone().into_bytes()),
        ("email.txt", preview.email_text.clone().into_bytes()),
        ("email.eml", preview.eml.clone()),
        ("sms.txt", format!("{}\n", preview.sms).into_bytes()),
        ("push.txt", join(&preview.push_title, &preview.push_body).into_bytes()),
        ("web_push.txt", join(&preview.web_push_title, &preview.web_push_body).into_bytes()),
        ("in_app.txt", join(&preview.in_app_title, &preview.in_app_body).into_bytes()),
    ];
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let files_written: Vec<&str> = files.iter().map(|(file, _)| *file).collect();
    for (file, bytes) in &files {
        let path = args.out.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("set {name}, step {step}, locale {}", input.locale.as_deref().unwrap_or("(the set's default)"));
    println!("subject:   {}", preview.email_subject);
    println!("preheader: {}", preview.email_preheader);
    let written = files_written.join(", ");
    println!("wrote {written} to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The campaign named, or the first enabled one by priority (the built-in
/// default when none is stored).
fn pick_campaign(campaigns: &[Campaign], id: Option<&str>) -> anyhow::Result<Campaign> {
    if let Some(id) = id {
        if let Some(found) = campaigns.iter().find(|c| c.id == id) {
            return Ok(found.clone());
        }
        if campaigns.is_empty() && id == "default" {
            return Ok(Campaign::default_campaign());
        }
        bail!("no campaign {id:?}; `cartback campaign list` shows the ids");
    }
    let mut enabled: Vec<&Campaign> = campaigns.iter().filter(|c| c.enabled).collect();
    enabled.sort_by_key(|c| std::cmp::Reverse(c.priority));
    Ok(enabled.first().map(|c| (*c).clone()).unwrap_or_else(Campaign::default_campaign))
}

/// A preview of the cart an events file builds, as its customer reads it.
fn cart_input(file: &Path, step: u32) -> anyhow::Result<PreviewInput> {
    let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed = cartback_core::event::parse_body(&body, chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut events = Vec::new();
    for (index, event) in parsed.into_iter().enumerate() {
        match event.result {
            Ok(event) => events.push(event),
            Err(e) => bail!("{}: events[{index}].{}: {}", file.display(), e.field, e.message),
        }
    }
    let Some(cart_id) = events.iter().find_map(|e| e.cart_id.clone()) else {
        bail!("{}: no event names a cart_id", file.display());
    };
    let ours: Vec<_> = events.iter().filter(|e| e.cart_id.as_ref().is_none_or(|id| *id == cart_id)).cloned().collect();
    let cart = Cart::from_events(cart_id, &ours);
    let mut input = PreviewInput::sample(step, None);
    let latest = |pick: fn(&cartback_core::event::CustomerPatch) -> Option<&String>| {
        ours.iter().rev().find_map(|e| e.customer.as_ref().and_then(pick).cloned())
    };
    // A real customer without a first name is greeted without one, as a send would.
    input.first_name = latest(|c| c.first_name.as_ref());
    let zone = match latest(|c| c.timezone.as_ref()) {
        Some(zone) => {
            let unknown = || anyhow::anyhow!("{}: customer.timezone {zone:?} is unknown", file.display());
            zone.parse().map_err(|_| unknown())?
        }
        None => input.time_zone,
    };
    input.read_by(latest(|c| c.locale.as_ref()), zone);
    input.cart = cart;
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_campaigns_when_steps_are_listed_then_each_names_its_template_by_campaign_and_step() {
        let stored = vec![Campaign::default_campaign()];
        let name = TemplateName::parse("reminder").unwrap();
        assert_eq!(users_of(&name, &stored), ["default step 1"]);
        assert_eq!(users_of(&name, &[]), ["default step 1"], "no campaign stored: the built-in default's steps");
        let none = TemplateName::parse("winter").unwrap();
        assert!(users_of(&none, &stored).is_empty());
    }

    #[test]
    fn given_a_folder_with_an_unparseable_brand_and_a_badly_named_set_when_read_then_both_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Bad Name")).unwrap();
        std::fs::write(dir.path().join(BRAND_FILE), "[brand]\nname = \"Shop\"\ncolour = \"#fff\"\n").unwrap();
        let problems = read_folder(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!((problems[0].file.as_str(), problems[0].field.as_str()), ("Bad Name/", "name"));
        assert_eq!(problems[1].file, BRAND_FILE);
        assert!(problems[1].message.contains("colour"), "{}", problems[1]);
    }

    #[test]
    fn given_an_empty_folder_when_read_then_it_is_refused_as_holding_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let problems = read_folder(dir.path()).unwrap_err();
        assert!(problems[0].message.contains("holds no set folder"), "{problems:?}");
    }

    /// GIVEN an events file whose customer reads German in Berlin
    /// WHEN previewed at step 2 (with the sample voucher), and then with `--locale fr`
    /// THEN the voucher's expiry is written in German and Berlin time, then in French, as a send writes it.
    #[test]
    fn given_a_cart_file_with_a_customer_locale_and_zone_when_previewed_then_the_expiry_is_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cart.json");
        let event = serde_json::json!({
            "event_id": "e1", "type": "add_to_cart", "occurred_at": "2026-11-23T10:00:00Z", "cart_id": "c1",
            "currency": "EUR", "items": [{ "item_id": "mug", "item_name": "Becher", "price": "14.90" }],
            "customer": { "email": "ana@example.com", "locale": "de-DE", "timezone": "Europe/Berlin" }
        });
        std::fs::write(&file, event.to_string()).unwrap();
        let mut input = cart_input(&file, 2).unwrap();
        let set = template::shipped_set("reminder").unwrap();
        let preview = template::preview(&set, &Brand::sample(), &input).unwrap();
        assert!(preview.email_text.contains("Gültig bis 26. November 2026 um 11:00 (CET)"), "{}", preview.email_text);
        input.read_by(Some("fr".into()), input.time_zone);
        let preview = template::preview(&set, &Brand::sample(), &input).unwrap();
        assert!(preview.email_text.contains("26 novembre 2026 à 11:00 (CET)"), "{}", preview.email_text);
    }
}
