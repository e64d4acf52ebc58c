//! `khoso users`, `khoso maintain`, `khoso backup`, `khoso restore`, `khoso verify`, `khoso config`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use warehouse::people::accounts::Accounts;
use warehouse::place::storage::Storage;

use super::common::{INVALID_INPUT, Place, metrics_source};
use crate::cli::{MaintainArgs, UsersCommand};

pub(super) async fn users(data: &Place, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let warehouse = data.open().await?;
    match manage_accounts(&Accounts::new(warehouse.layout()), command).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is_input_error() => {
            eprintln!("khoso: {e}");
            Ok(ExitCode::from(INVALID_INPUT))
        }
        Err(e) => Err(e.into()),
    }
}

async fn manage_accounts(accounts: &Accounts, command: UsersCommand) -> warehouse::Result<()> {
    match command {
        UsersCommand::Add { name, role, province } => {
            let (account, token) = accounts.add(&name, role.parse()?, province.as_deref()).await?;
            println!(
                "account {} ({}{}) made; its token, shown this once:",
                account.name,
                account.role.as_str(),
                account
                    .province
                    .as_deref()
                    .map(|p| format!(", province {p}"))
                    .unwrap_or_default()
            );
            println!("{token}");
        }
        UsersCommand::List => {
            println!("{:<24} {:<9} {:<8} {:<20} revoked", "name", "role", "province", "made");
            for account in accounts.list().await? {
                println!(
                    "{:<24} {:<9} {:<8} {:<20} {}",
                    account.name,
                    account.role.as_str(),
                    account.province.as_deref().unwrap_or("-"),
                    account.created_at.format("%Y-%m-%d %H:%M UTC"),
                    account
                        .revoked_at
                        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_else(|| "-".to_string())
                );
            }
        }
        UsersCommand::Revoke { name } => {
            let account = accounts.revoke(&name).await?;
            println!("account {} revoked: its token no longer works", account.name);
        }
    }
    Ok(())
}

/// `khoso maintain`: upkeep of every table, with each table's files before and after.
pub(super) async fn maintain(data: &Place, args: MaintainArgs) -> anyhow::Result<ExitCode> {
    let warehouse = data.open().await?;
    let upkeep = warehouse::ops::upkeep::Upkeep {
        target_bytes: std::num::NonZeroU64::new(args.target_mb.saturating_mul(1024 * 1024))
            .context("--target-mb must be at least 1")?,
        retain: args.retain_days.map(|days| chrono::Duration::days(days.into())),
    };
    let started = std::time::Instant::now();
    let done = warehouse.maintain(&upkeep).await?;
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "{:<20} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "table", "version", "files", "→ files", "MB", "→ MB", "stored", "→ stored", "stored MB"
    );
    for table in &done {
        println!(
            "{:<20} {:>8} {:>8} {:>10} {:>10.1} {:>9.1} {:>9} {:>10} {:>10.1}",
            table.table,
            table.version,
            table.active_before.count,
            table.active_after.count,
            mb(table.active_before.bytes),
            mb(table.active_after.bytes),
            table.stored_before.count,
            table.stored_after.count,
            mb(table.stored_after.bytes),
        );
    }
    let (before, after): (usize, usize) = done.iter().fold((0, 0), |(b, a), t| {
        (b + t.active_before.count, a + t.active_after.count)
    });
    let removed: usize = done
        .iter()
        .map(|t| t.stored_before.count.saturating_sub(t.stored_after.count))
        .sum();
    println!(
        "upkeep done in {:.1} s: {before} data files read by queries before, {after} now; {removed} files removed from storage{}",
        started.elapsed().as_secs_f64(),
        match args.retain_days {
            Some(days) => format!(" (replaced more than {days} days ago)"),
            None => " (every version kept: --retain-days to remove old ones)".to_string(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `khoso backup --to`.
pub(super) async fn backup(data: &Place, metrics_file: Option<&Path>, to: &str) -> anyhow::Result<ExitCode> {
    let warehouse = data.open().await?;
    let (metrics, _) = metrics_source(metrics_file)?;
    let target = Storage::new(to, &data.options, true)?;
    let started = std::time::Instant::now();
    let done = warehouse.backup(&target, &metrics).await?;
    println!(
        "backup in {to}: {} files; {} copied ({:.1} MB), {} unchanged since the last backup there; {:.1} s",
        done.manifest.files.len(),
        done.copied.0,
        done.copied.1 as f64 / (1024.0 * 1024.0),
        done.kept,
        started.elapsed().as_secs_f64()
    );
    println!(
        "versions: {}",
        warehouse::ops::backup::versions_text(&done.manifest.versions)
    );
    Ok(ExitCode::SUCCESS)
}

/// `khoso restore --from`.
pub(super) async fn restore(data: &Place, from: &str) -> anyhow::Result<ExitCode> {
    let backup = Storage::new(from, &data.options, false)?;
    let target = data.storage(true)?;
    let manifest = warehouse::ops::backup::restore(&backup, &target).await?;
    // The warehouse opens, and what a process stopped mid-commit left is repaired.
    data.open().await?.recover().await?;
    println!(
        "restored {} files of the backup made {} into {data}",
        manifest.files.len(),
        manifest.made_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    println!(
        "versions: {}",
        warehouse::ops::backup::versions_text(&manifest.versions)
    );
    println!(
        "the metrics in force then are {from}/{}: start the server with --metrics pointing at a copy of it if yours differ",
        warehouse::ops::backup::METRICS
    );
    Ok(ExitCode::SUCCESS)
}

/// `khoso verify`.
pub(super) async fn verify(data: &Place, backup: Option<&str>) -> anyhow::Result<ExitCode> {
    let (what, findings) = match backup {
        Some(location) => {
            let storage = Storage::new(location, &data.options, false)?;
            let (manifest, findings) = warehouse::ops::backup::verify_backup(&storage).await?;
            let what = format!(
                "the backup in {location} ({} files, made {})",
                manifest.files.len(),
                manifest.made_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            (what, findings)
        }
        None => (format!("the warehouse in {data}"), data.open().await?.verify().await?),
    };
    for finding in &findings {
        println!("{finding}");
    }
    match findings.len() {
        0 => {
            println!("{what}: no problem found");
            Ok(ExitCode::SUCCESS)
        }
        n => {
            println!("{what}: {n} problems");
            Ok(ExitCode::from(1))
        }
    }
}

/// `khoso config check`.
pub(super) fn config_check() -> anyhow::Result<ExitCode> {
    let settings = crate::config::effective_serve()?;
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or_default();
    for setting in settings {
        println!(
            "{:<width$} = {:<40} ({})",
            setting.key,
            setting.value.as_deref().unwrap_or("(unset)"),
            setting.source
        );
    }
    Ok(ExitCode::SUCCESS)
}
