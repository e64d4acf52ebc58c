//! Vietnamese first, English second: labels, status words and number formats.

use ingest::ReportKind;
use warehouse::tables::rows::Status;

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The language of pages, messages and templates: one type, [`ingest::Lang`].
pub use ingest::Lang;

/// What a page says in its language beyond [`Lang::pick`]: numbers, dates, statuses, units and
/// the names of report kinds.
pub trait Words {
    /// A number with `decimals` decimals and grouped thousands: 1.234,5 (vi) or 1,234.5 (en).
    fn number(self, value: f64, decimals: usize) -> String;
    /// A percentage with one decimal; a dash when there is no value.
    fn percent(self, value: Option<f64>) -> String;
    /// The word for a status.
    fn status(self, status: Option<Status>) -> &'static str;
    /// A date.
    fn date(self, date: chrono::NaiveDate) -> String;
    /// A moment, in Vietnam's time.
    fn date_time(self, at: chrono::DateTime<chrono::Utc>) -> String;
    /// A value in a KPI's unit.
    fn value(self, unit: warehouse::kpi::metrics::Unit, value: Option<f64>) -> String;
    /// A KPI's value in a unit and year: [`Words::value`], or "< 10" when it describes too few
    /// people to be shown.
    fn figure(self, unit: warehouse::kpi::metrics::Unit, row: Option<&warehouse::tables::rows::KpiRow>) -> String;
    /// The name of a KPI's unit.
    fn unit(self, unit: warehouse::kpi::metrics::Unit) -> &'static str;
    /// The name of a report kind.
    fn report_kind(self, kind: ReportKind) -> &'static str;
    /// The name of a breakdown's unit.
    fn breakdown_unit(self, unit: &str) -> String;
}

impl Words for Lang {
    /// A number with `decimals` decimals and grouped thousands: 1.234,5 (vi) or 1,234.5 (en).
    fn number(self, value: f64, decimals: usize) -> String {
        let (group, decimal) = match self {
            Lang::Vi => ('.', ','),
            Lang::En => (',', '.'),
        };
        let text = format!("{:.*}", decimals, value.abs());
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let mut out = String::new();
        if value < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
            out.push('-');
        }
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                out.push(group);
            }
            out.push(digit);
        }
        if !fraction.is_empty() {
            out.push(decimal);
            out.push_str(fraction);
        }
        out
    }

    /// A percentage with one decimal: "56,0%" or "56.0%"; a dash when there is no value.
    fn percent(self, value: Option<f64>) -> String {
        value.map_or_else(|| "—".to_string(), |v| format!("{}%", self.number(v, 1)))
    }

    /// The word for a status.
    fn status(self, status: Option<Status>) -> &'static str {
        let (vi, en) = match status {
            Some(Status::Met) => ("Đạt", "Met"),
            Some(Status::OnTrack) => ("Đúng tiến độ", "On track"),
            Some(Status::AtRisk) => ("Có nguy cơ", "At risk"),
            Some(Status::OffTrack) => ("Chậm tiến độ", "Off track"),
            Some(Status::Missed) => ("Không đạt", "Missed"),
            Some(Status::NoBaseline) => ("Chưa có mốc", "No baseline"),
            None => ("Theo dõi", "Tracked"),
        };
        self.pick(vi, en)
    }
    /// A date with the month's name: "29 tháng 11 năm 2026" or "29 November 2026".
    fn date(self, date: chrono::NaiveDate) -> String {
        use chrono::Datelike;
        match self {
            Lang::Vi => format!("{} tháng {} năm {}", date.day(), date.month(), date.year()),
            Lang::En => format!("{} {} {}", date.day(), MONTHS_EN[date.month0() as usize], date.year()),
        }
    }

    /// A moment in Vietnam's time (UTC+7 all year), to the minute, saying so: "29 tháng 11 năm
    /// 2026, 16:59 giờ Việt Nam (UTC+7)".
    fn date_time(self, at: chrono::DateTime<chrono::Utc>) -> String {
        let local = at.naive_utc() + chrono::TimeDelta::hours(7);
        let zone = self.pick("giờ Việt Nam (UTC+7)", "Vietnam time (UTC+7)");
        format!("{}, {} {zone}", self.date(local.date()), local.format("%H:%M"))
    }

    /// A KPI value in its unit: "56,0%", "0,42" or "1.234"; a dash when there is no value.
    fn value(self, unit: warehouse::kpi::metrics::Unit, value: Option<f64>) -> String {
        use warehouse::kpi::metrics::Unit;
        match (unit, value) {
            (_, None) => "—".to_string(),
            (Unit::Percent, v) => self.percent(v),
            (Unit::Ratio, Some(v)) => self.number(v, 2),
            (Unit::Count, Some(v)) => self.number(v, 0),
        }
    }

    fn figure(self, unit: warehouse::kpi::metrics::Unit, row: Option<&warehouse::tables::rows::KpiRow>) -> String {
        match row {
            Some(row) if row.withheld => format!("< {}", warehouse::kpi::compute::MIN_GROUP),
            row => self.value(unit, row.and_then(|r| r.value)),
        }
    }

    /// The name of a KPI's unit.
    fn unit(self, unit: warehouse::kpi::metrics::Unit) -> &'static str {
        use warehouse::kpi::metrics::Unit;
        match (unit, self) {
            (Unit::Percent, Lang::Vi) => "phần trăm (100 × tử số ÷ mẫu số)",
            (Unit::Percent, Lang::En) => "percent (100 × numerator ÷ denominator)",
            (Unit::Ratio, Lang::Vi) => "tỷ số (tử số ÷ mẫu số)",
            (Unit::Ratio, Lang::En) => "ratio (numerator ÷ denominator)",
            (Unit::Count, Lang::Vi) => "số đếm",
            (Unit::Count, Lang::En) => "count",
        }
    }

    /// The name of a report kind.
    fn report_kind(self, kind: ReportKind) -> &'static str {
        match kind {
            ReportKind::School => self.pick("Trường phổ thông", "Schools"),
            ReportKind::University => self.pick("Đại học", "Universities"),
            ReportKind::Content => self.pick("Kho học liệu (toàn quốc)", "Learning materials (national)"),
            ReportKind::Learner => self.pick("Hồ sơ người học", "Learner records"),
            ReportKind::Teacher => self.pick("Hồ sơ giáo viên", "Teacher records"),
        }
    }

    /// The name of a unit of the `level`, `ownership`, `grade` or `gender` dimension.
    fn breakdown_unit(self, unit: &str) -> String {
        match (unit, self) {
            ("public", Lang::Vi) => return "Công lập".to_string(),
            ("public", Lang::En) => return "Public".to_string(),
            ("private", Lang::Vi) => return "Ngoài công lập".to_string(),
            ("private", Lang::En) => return "Private".to_string(),
            ("male", Lang::Vi) => return "Nam".to_string(),
            ("male", Lang::En) => return "Male".to_string(),
            ("female", Lang::Vi) => return "Nữ".to_string(),
            ("female", Lang::En) => return "Female".to_string(),
            _ => {}
        }
        // Grades are stored with two digits, so that they sort.
        if let Ok(grade) = unit.parse::<u8>() {
            return format!("{} {grade}", self.pick("Lớp", "Grade"));
        }
        ingest::provinces::files::LEVELS
            .lines()
            .skip(1)
            .map(|line| line.split(',').collect::<Vec<_>>())
            .find(|fields| fields.first() == Some(&unit))
            .and_then(|fields| fields.get(if self == Lang::Vi { 1 } else { 2 }).map(|n| n.to_string()))
            .unwrap_or_else(|| unit.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_the_language() {
        assert_eq!(Lang::Vi.number(1234.5, 1), "1.234,5");
        assert_eq!(Lang::En.number(1234.5, 1), "1,234.5");
        assert_eq!(Lang::Vi.number(56.04, 1), "56,0");
        assert_eq!(Lang::En.number(1_234_567.0, 0), "1,234,567");
        assert_eq!(Lang::En.number(-3.25, 1), "-3.2");
        assert_eq!(Lang::En.number(-0.01, 1), "0.0");
        assert_eq!(Lang::Vi.percent(Some(49.95)), "50,0%");
        assert_eq!(Lang::En.percent(None), "—");
    }

    #[test]
    fn dates_name_the_month() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T09:59:13Z")
            .expect("date")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            Lang::Vi.date_time(at),
            "29 tháng 11 năm 2026, 16:59 giờ Việt Nam (UTC+7)"
        );
        assert_eq!(Lang::En.date_time(at), "29 November 2026, 16:59 Vietnam time (UTC+7)");
        // Late in the evening UTC is the next day in Vietnam.
        let late = chrono::DateTime::parse_from_rfc3339("2026-11-29T22:55:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(Lang::En.date_time(late), "30 November 2026, 05:55 Vietnam time (UTC+7)");
        assert_eq!(Lang::En.breakdown_unit("lower_secondary"), "Lower secondary");
        assert_eq!(Lang::Vi.breakdown_unit("private"), "Ngoài công lập");
        assert_eq!(Lang::Vi.breakdown_unit("07"), "Lớp 7");
        assert_eq!(Lang::En.breakdown_unit("female"), "Female");
    }
}
