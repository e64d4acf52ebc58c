//! Explanations of flags: an admin, or the province a flag is in, says why a figure that looks
//! wrong is right ("the school merged with another"), as a row of `quality_explanations`. An
//! explanation covers the flag with the values it was given for: a figure sent again with other
//! values is flagged afresh.

use chrono::Utc;

use crate::quality::flags::Flag;
use crate::store::Warehouse;
use crate::tables::rows::{Explanation, QUALITY_EXPLANATIONS};
use crate::tables::stored::StoredRow;
use crate::{Error, Result};

/// The longest comment kept.
pub const MAX_COMMENT: usize = 2_000;

/// An explanation of `flag` made now; the comment is trimmed and must say something.
pub fn explanation_of(flag: &Flag, comment: &str, by: &str) -> Result<Explanation> {
    let comment = comment.trim();
    if comment.is_empty() {
        return Err(Error::Refused(
            "say why the figure is right: the comment is empty / hãy ghi lý do số liệu là đúng: lời giải thích \
             đang trống"
                .into(),
        ));
    }
    if comment.chars().count() > MAX_COMMENT {
        return Err(Error::Refused(format!(
            "the comment is longer than {MAX_COMMENT} characters / lời giải thích dài quá {MAX_COMMENT} ký tự"
        )));
    }
    Ok(Explanation {
        check_id: flag.check_id.clone(),
        school_year: flag.school_year,
        province_code: flag.province_code.clone(),
        unit: flag.unit.clone(),
        flag_values: flag.values(),
        comment: comment.to_string(),
        explained_by: by.to_string(),
        explained_at: Utc::now().timestamp_micros(),
    })
}

impl Warehouse {
    /// Records an explanation.
    pub async fn explain(&self, explanation: &Explanation) -> Result<()> {
        let _lock = self.storage().lock("quality_explanations.lock").await?;
        self.create_table(QUALITY_EXPLANATIONS, Explanation::schema(), Vec::new())
            .await?;
        let batch = Explanation::to_batch(std::slice::from_ref(explanation))?;
        self.table(QUALITY_EXPLANATIONS, None)
            .await?
            .write(vec![batch])
            .with_save_mode(deltalake::protocol::SaveMode::Append)
            .await?;
        Ok(())
    }

    /// Every explanation, oldest first.
    pub async fn explanations(&self) -> Result<Vec<Explanation>> {
        self.create_table(QUALITY_EXPLANATIONS, Explanation::schema(), Vec::new())
            .await?;
        self.read_rows(QUALITY_EXPLANATIONS, None, None, &["explained_at"])
            .await
    }

    /// The version of the explanations (none before the first): flags listed with their
    /// explanations are read again when it changes.
    pub async fn explanations_version(&self) -> Result<Option<u64>> {
        self.latest_version(QUALITY_EXPLANATIONS).await
    }
}
