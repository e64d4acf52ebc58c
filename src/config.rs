//! Settings from three places, each winning over the one before: a file (`--config FILE`, or
//! `KHOSO_CONFIG`, or `./khoso.toml` when there is one), `KHOSO_*` variables (every setting's
//! name in capitals: `KHOSO_QUERY_TIMEOUT_S`), and flags. The file holds the global settings at
//! its top and those of `khoso serve` under `[serve]`, named as their flags (`max-upload-mb` or
//! `max_upload_mb`); a name it does not know is an error, not ignored.
//!
//! ```toml
//! data = "/srv/khoso/data"
//! metrics = "/etc/khoso/metrics.toml"
//! log-format = "json"
//!
//! [serve]
//! addr = "127.0.0.1:8080"
//! private = true
//! require-approval = true
//! ```

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// The file read when neither `--config` nor `KHOSO_CONFIG` names one.
const DEFAULT_FILE: &str = "khoso.toml";

/// The section of the file for `khoso serve`.
const SERVE: &str = "serve";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// A `KHOSO_*` variable.
    Variable(String),
    /// A flag on the command line.
    Flag,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Variable(name) => write!(f, "variable {name}"),
            Source::Flag => f.write_str("flag"),
        }
    }
}

/// One setting as it takes effect.
#[derive(Debug, Clone)]
pub struct Setting {
    /// `name` for a global setting, `serve.name` for one of `khoso serve`.
    pub key: String,
    /// Its value, a secret's masked; none when unset.
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
}

/// The command line with the file's and the variables' settings under it.
pub fn parse() -> Cli {
    match parse_from(std::env::args_os().collect()) {
        Ok((cli, _)) => cli,
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(e) => e.exit(),
            Err(e) => {
                eprintln!("khoso: {e:#}");
                std::process::exit(2);
            }
        },
    }
}

/// The settings `khoso serve` would run with, given the same file, variables and global
/// flags as this command line (`khoso … config check`).
pub fn effective_serve() -> anyhow::Result<Vec<Setting>> {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let at = args
        .iter()
        .position(|a| a == "config")
        .context("`config` is not on the command line")?;
    args.splice(at..(at + 2).min(args.len()), [OsString::from(SERVE)]);
    Ok(parse_from(args)?.1)
}

/// The command with a `KHOSO_*` variable for every setting of its own and of `serve` that
/// has none yet; a switch's variable takes `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`.
fn command() -> clap::Command {
    let with_variables = |arg: clap::Arg| {
        let named = arg.get_long().is_some() && !matches!(arg.get_id().as_str(), "help" | "version" | "config");
        let arg = match (named, arg.get_action()) {
            (true, ArgAction::SetTrue) => arg.value_parser(clap::builder::BoolishValueParser::new()),
            _ => arg,
        };
        match (named, arg.get_env()) {
            (true, None) => {
                // `--help` names the variable, never its value (a storage option may be a secret).
                let name = format!("KHOSO_{}", arg.get_id().as_str().to_uppercase());
                arg.env(name).hide_env_values(true)
            }
            _ => arg,
        }
    };
    Cli::command()
        .mut_args(with_variables)
        .mut_subcommand(SERVE, |serve| serve.mut_args(with_variables))
}

fn parse_from(args: Vec<OsString>) -> anyhow::Result<(Cli, Vec<Setting>)> {
    let first = command().try_get_matches_from(&args)?;
    let (file, explicit) = match first.get_one::<PathBuf>("config") {
        Some(path) => (Some(path.clone()), true),
        None => {
            let here = PathBuf::from(DEFAULT_FILE);
            (here.is_file().then_some(here), false)
        }
    };
    let mut args = args;
    let mut from_file = HashSet::new();
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).with_context(|| match explicit {
            true => format!("reading the configuration {}", path.display()),
            false => format!("reading {}", path.display()),
        })?;
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
        let serving = first.subcommand_name() == Some(SERVE);
        let (globals, serve) = file_flags(path, &table)?;
        for (id, flags) in globals {
            if unset(&first, &id) {
                args.splice(1..1, flags);
                from_file.insert(id);
            }
        }
        if serving {
            let matches = first.subcommand_matches(SERVE).expect("serve");
            for (id, flags) in serve {
                if unset(matches, &id) {
                    args.extend(flags);
                    from_file.insert(format!("{SERVE}.{id}"));
                }
            }
        }
    }
    let matches = command().try_get_matches_from(&args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let mut settings = settings_of(&command(), &matches, "", &from_file, file.as_deref());
    // The file found in the current folder is named too.
    if let (Some(found), false) = (&file, explicit)
        && let Some(setting) = settings.iter_mut().find(|s| s.key == "config")
    {
        setting.value = Some(found.display().to_string());
    }
    if let Some((SERVE, serve)) = matches.subcommand() {
        let command = command();
        let serve_command = command.find_subcommand(SERVE).expect("serve");
        settings.extend(settings_of(serve_command, serve, "serve.", &from_file, file.as_deref()));
    }
    Ok((cli, settings))
}

/// Whether a setting was left to its default (so the file's value applies).
fn unset(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), None | Some(ValueSource::DefaultValue))
}

/// The file's settings as flags: `(argument id, flags)` for the global settings and for
/// `[serve]`'s; a name no setting has is an error naming those there are.
type Flags = Vec<(String, Vec<OsString>)>;

fn file_flags(path: &Path, table: &toml::Table) -> anyhow::Result<(Flags, Flags)> {
    let root = command();
    let serve = root.find_subcommand(SERVE).expect("serve").clone();
    let mut globals = Vec::new();
    let mut serving = Vec::new();
    for (key, value) in table {
        if key == SERVE {
            let section = value
                .as_table()
                .with_context(|| format!("{}: [serve] must be a table of settings", path.display()))?;
            for (key, value) in section {
                serving.push(flags_for(path, &serve, &format!("[serve] {key}"), key, value)?);
            }
        } else {
            globals.push(flags_for(path, &root, key, key, value)?);
        }
    }
    Ok((globals, serving))
}

/// The flags that say `key = value` to `command`.
fn flags_for(
    path: &Path,
    command: &clap::Command,
    shown: &str,
    key: &str,
    value: &toml::Value,
) -> anyhow::Result<(String, Vec<OsString>)> {
    let long = key.replace('_', "-");
    let known =
        |arg: &&clap::Arg| arg.get_long().is_some() && !matches!(arg.get_id().as_str(), "help" | "version" | "config");
    let Some(arg) = command
        .get_arguments()
        .filter(known)
        .find(|arg| arg.get_long() == Some(long.as_str()))
    else {
        let names: Vec<&str> = command
            .get_arguments()
            .filter(known)
            .filter_map(|a| a.get_long())
            .collect();
        bail!(
            "{}: unknown setting `{shown}` (the settings there: {})",
            path.display(),
            names.join(", ")
        );
    };
    let flag = OsString::from(format!("--{long}"));
    let flags = match (value, arg.get_action()) {
        (toml::Value::Boolean(true), ArgAction::SetTrue) => vec![flag],
        (toml::Value::Boolean(false), ArgAction::SetTrue) => Vec::new(),
        (toml::Value::Array(items), _) => items
            .iter()
            .flat_map(|item| [flag.clone(), OsString::from(scalar(item))])
            .collect(),
        (toml::Value::Table(_), _) => bail!("{}: `{shown}` takes a value, not a table", path.display()),
        (value, _) => vec![flag, OsString::from(scalar(value))],
    };
    Ok((arg.get_id().to_string(), flags))
}

fn scalar(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Each setting of `command` as `matches` took it, with where it came from.
fn settings_of(
    command: &clap::Command,
    matches: &ArgMatches,
    prefix: &str,
    from_file: &HashSet<String>,
    file: Option<&Path>,
) -> Vec<Setting> {
    command
        .get_arguments()
        .filter(|arg| arg.get_long().is_some() && !matches!(arg.get_id().as_str(), "help" | "version"))
        .map(|arg| {
            let id = arg.get_id().as_str();
            let key = format!("{prefix}{}", arg.get_long().unwrap_or(id));
            let values: Option<Vec<String>> = matches
                .get_raw(id)
                .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect());
            let value = values.map(|values| values.iter().map(|v| mask(&key, v)).collect::<Vec<_>>().join(", "));
            let source = match matches.value_source(id) {
                _ if from_file.contains(&format!("{prefix}{id}")) => {
                    Source::File(file.map(Path::to_path_buf).unwrap_or_default())
                }
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Variable(
                    arg.get_env()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                _ => Source::Default,
            };
            Setting { key, value, source }
        })
        .collect()
}

/// A value with its secret hidden: a key's or a password's, a storage option's whose name says
/// it is one.
fn mask(key: &str, value: &str) -> String {
    let secret = |name: &str| {
        let name = name.to_ascii_lowercase();
        ["key", "secret", "token", "password"]
            .iter()
            .any(|word| name.contains(word))
            && !name.ends_with("key_id")
    };
    match value.split_once('=') {
        Some((name, _)) if key.ends_with("storage-option") && secret(name) => format!("{name}=****"),
        _ if secret(key) => "****".to_string(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_other_values_shown() {
        assert_eq!(mask("serve.session-key", "abc"), "****");
        assert_eq!(
            mask("storage-option", "aws_secret_access_key=abc"),
            "aws_secret_access_key=****"
        );
        assert_eq!(
            mask("storage-option", "aws_access_key_id=AKIA"),
            "aws_access_key_id=AKIA"
        );
        assert_eq!(mask("storage-option", "aws_region=us-east-1"), "aws_region=us-east-1");
        assert_eq!(mask("serve.addr", "127.0.0.1:8080"), "127.0.0.1:8080");
    }
}
