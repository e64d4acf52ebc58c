//! `khoso check`: the flags of the plausibility checks, as `/quality` lists them.

use std::process::ExitCode;

use ingest::ProvinceCode;
use warehouse::Warehouse;

use super::common::INVALID_INPUT;
use crate::cli::CheckArgs;

pub(super) async fn check(warehouse: &Warehouse, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let province: Option<ProvinceCode> = match args.province.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(code) => match code.parse() {
            Ok(code) => Some(code),
            Err(_) => {
                eprintln!("khoso: {code:?} is not a province code such as 01 or 79");
                return Ok(ExitCode::from(INVALID_INPUT));
            }
        },
    };
    let mut flags = warehouse.flags(args.year, province.as_ref()).await?;
    let total = flags.len();
    let explained = flags.iter().filter(|f| f.explanation.is_some()).count();
    if args.unexplained {
        flags.retain(|f| f.explanation.is_none());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&flags)?);
        return Ok(ExitCode::SUCCESS);
    }
    for flag in &flags {
        println!(
            "{} [{}] {}: {}",
            flag.province_code,
            flag.check_id,
            flag.named_unit(),
            flag.message_en
        );
        println!("      {}", flag.message_vi);
        if let Some(explanation) = &flag.explanation {
            println!(
                "      explained by {}: {}",
                explanation.explained_by, explanation.comment
            );
        }
    }
    let place = province
        .map(|p| format!(", province {}", p.as_str()))
        .unwrap_or_default();
    println!(
        "{}{place}: {total} flags, {} unexplained, {explained} explained",
        args.year,
        total - explained
    );
    Ok(ExitCode::SUCCESS)
}
