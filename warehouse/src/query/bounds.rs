//! Bounds inside the engine, for work the time and memory limits cannot see on their own:
//!
//! - **Yield points everywhere.** Every operator's output spends tokio's cooperative budget
//!   ([`YieldEverywhere`]), so a query that computes without waiting on input (a cross join
//!   feeding an aggregate) still returns to the runtime often, and a time limit or a client that
//!   went away stops it at once.
//! - **A cap on one function's result.** The functions whose result can be far larger than their
//!   arguments (`repeat`, `lpad`, `replace`, `range`, `array_repeat`, concatenation, …) are
//!   wrapped ([`bounded_functions`]): before they run, the size of their result is bounded from
//!   their arguments and refused past the cap; after they run, the result is measured. Without
//!   it, `repeat('x', 2000000000)` takes gigabytes inside one call, past the memory pool's reach.
//!   String `||` is planned as the same bounded concatenation ([`BoundedConcatRewrite`]).
//! - **A cap on one call's work.** A function whose time grows with the product of its
//!   arguments' lengths (`levenshtein`: one step per pair of characters; `array_has_all`,
//!   `array_has_any`: one per pair of elements) is refused before it
//!   runs past [`MAX_CALL_STEPS`] for a batch. Constant arguments are folded while the query is
//!   planned, where no time limit can interrupt a running call: the cap is what bounds it there.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::{cast, kernels};
use datafusion::arrow::datatypes::{DataType, FieldRef, IntervalUnit, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Documentation, Expr, ExprSchemable, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;

type DfResult<T> = Result<T, DataFusionError>;

/// The most one call of a function that grows text or arrays may make, for one batch of rows.
pub const MAX_CALL_BYTES: usize = 32 * 1024 * 1024;

/// The most steps one call of a function whose work is the product of its arguments' lengths
/// may take, for one batch of rows (about a tenth of a second of `levenshtein`).
pub const MAX_CALL_STEPS: u128 = 50_000_000;

/// Whether a function (by its name, lower case) can make a result far larger than its arguments.
pub fn grows(name: &str) -> bool {
    Growth::of(name).is_some()
}

/// Wraps the output of every operator that has inputs in a [`CooperativeExec`]: each batch it
/// passes spends a unit of tokio's budget, so the task yields at least every 128 batches.
#[derive(Debug, Default)]
pub struct YieldEverywhere;

impl PhysicalOptimizerRule for YieldEverywhere {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let wrapped = node.is::<CooperativeExec>() || node.children().is_empty();
            Ok(match wrapped {
                true => Transformed::no(node),
                false => Transformed::yes(Arc::new(CooperativeExec::new(node)) as Arc<dyn ExecutionPlan>),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "khoso_yield_everywhere"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// How a function's result can outgrow its arguments, and so how its size is bounded before it
/// runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's length times n.
    Repeat,
    /// `lpad(text, n[, fill])`, `rpad`: n characters.
    Pad,
    /// `replace(text, from, to)`: `to` at every place of the text, at worst.
    Replace,
    /// `regexp_replace(text, pattern, replacement[, flags])`: the replacement, with its `$n`
    /// groups filled in, at every place of the text.
    RegexpReplace,
    /// Concatenations (`concat`, `concat_ws`, `array_concat`, `||`): the sum of the arguments.
    Sum,
    /// `array_repeat(element, n)`: the element's size times n.
    ArrayRepeat,
    /// `array_resize(array, n[, fill])`: n elements.
    ArrayResize,
    /// `range(start, stop[, step])`, `generate_series` as a function: one element per step.
    Range,
    /// `levenshtein(a, b)`, `array_has_all(a, b)`, `array_has_any(a, b)`: not a large result
    /// but a long call — a step per pair of characters or elements, bounded by
    /// [`MAX_CALL_STEPS`] rather than by bytes.
    Quadratic,
}

impl Growth {
    fn of(name: &str) -> Option<Growth> {
        Some(match name {
            "repeat" => Growth::Repeat,
            "array_cat" | "list_cat" | "list_concat" => Growth::Sum,
            "list_repeat" => Growth::ArrayRepeat,
            "list_resize" | "array_extend" | "list_extend" => Growth::ArrayResize,
            "lpad" | "rpad" => Growth::Pad,
            "replace" => Growth::Replace,
            "regexp_replace" => Growth::RegexpReplace,
            "concat" | "concat_ws" | "array_concat" => Growth::Sum,
            "array_repeat" => Growth::ArrayRepeat,
            "array_resize" => Growth::ArrayResize,
            "range" | "generate_series" => Growth::Range,
            "map" | "make_map" => Growth::Sum,
            "levenshtein" | "array_has_all" | "array_has_any" => Growth::Quadratic,
            _ => return None,
        })
    }

    /// An upper bound on the bytes of the result of `args` over `rows` rows.
    fn bound(self, args: &[ColumnarValue], rows: usize) -> DfResult<u128> {
        let arg = |i: usize| args.get(i);
        let rows = rows as u128;
        Ok(match self {
            Growth::Repeat => match (arg(0), arg(1)) {
                (Some(text), Some(n)) => PerRow::byte_lengths(text)?.sum_product(&PerRow::integers(n)?, rows),
                _ => 0,
            },
            Growth::Pad => match (arg(0), arg(1)) {
                (Some(text), Some(n)) => PerRow::byte_lengths(text)?.sum(rows) + 4 * PerRow::integers(n)?.sum(rows),
                _ => 0,
            },
            Growth::Replace => match (arg(0), arg(2)) {
                (Some(text), Some(to)) => {
                    let text = PerRow::byte_lengths(text)?.sum(rows);
                    text + (text + rows) * PerRow::byte_lengths(to)?.max()
                }
                _ => 0,
            },
            Growth::RegexpReplace => match (arg(0), arg(2)) {
                (Some(text), Some(replacement)) => {
                    let lengths = PerRow::byte_lengths(text)?;
                    let total = lengths.sum(rows);
                    let groups = dollars(replacement);
                    total + (total + rows) * (PerRow::byte_lengths(replacement)?.max() + groups * lengths.max())
                }
                _ => 0,
            },
            Growth::Sum => args.iter().map(|a| byte_size(a, rows)).sum::<u128>() * args.len().max(1) as u128,
            Growth::ArrayRepeat => match (arg(0), arg(1)) {
                (Some(element), Some(n)) => {
                    let each = byte_size(element, rows) / rows.max(1);
                    each.max(8) * PerRow::integers(n)?.sum(rows)
                }
                _ => 0,
            },
            Growth::ArrayResize => match arg(1) {
                Some(n) => 16 * PerRow::integers(n)?.sum(rows),
                None => 0,
            },
            Growth::Range => range_elements(args, rows as usize)? * 16,
            Growth::Quadratic => match (arg(0), arg(1)) {
                (Some(a), Some(b)) => PerRow::lengths(a)?.sum_product(&PerRow::lengths(b)?, rows),
                _ => 0,
            },
        })
    }
}

/// `$` signs in a replacement (each may bring in a whole group of the text); for a column of
/// replacements, their longest length.
fn dollars(replacement: &ColumnarValue) -> u128 {
    match replacement {
        ColumnarValue::Scalar(value) => value
            .try_as_str()
            .flatten()
            .map_or(0, |s| s.matches('$').count() as u128),
        ColumnarValue::Array(array) => array.get_array_memory_size() as u128,
    }
}

/// The bytes a value takes over `rows` rows (a constant counts once per row).
fn byte_size(value: &ColumnarValue, rows: u128) -> u128 {
    match value {
        ColumnarValue::Scalar(value) => value.size() as u128 * rows,
        ColumnarValue::Array(array) => array.get_array_memory_size() as u128,
    }
}

/// Elements `range` / `generate_series` would make: for each row, the distance from start to
/// stop over the step (dates and timestamps in nanoseconds, an interval's month counted as 28
/// days — the shortest — so the count is never underestimated).
fn range_elements(args: &[ColumnarValue], rows: usize) -> DfResult<u128> {
    let (start, stop, step) = match args {
        [stop] => (None, stop, None),
        [start, stop] => (Some(start), stop, None),
        [start, stop, step, ..] => (Some(start), stop, Some(step)),
        [] => return Ok(0),
    };
    let stop = PerRow::points(stop)?;
    let start = match start {
        Some(start) => PerRow::points(start)?,
        None => PerRow::Same(0),
    };
    let step = match step {
        Some(step) => PerRow::steps(step)?,
        None => PerRow::Same(1),
    };
    let constant = [&start, &stop, &step].iter().all(|p| matches!(p, PerRow::Same(_)));
    let each_row = |row: usize| {
        let span = (i128::from(stop.get(row)) - i128::from(start.get(row))).unsigned_abs();
        span / i128::from(step.get(row)).unsigned_abs().max(1) + 1
    };
    Ok(match constant {
        true => each_row(0).saturating_mul(rows as u128),
        false => (0..rows).map(each_row).fold(0u128, u128::saturating_add),
    })
}

/// A number for each row of an argument: one for all rows, or one each.
enum PerRow {
    Same(i64),
    Each(Int64Array),
}

impl PerRow {
    /// The byte length of each text (or binary) value; null counts as 0.
    fn byte_lengths(value: &ColumnarValue) -> DfResult<PerRow> {
        Ok(match value {
            ColumnarValue::Scalar(value) => PerRow::Same(match value.try_as_str() {
                Some(text) => text.map_or(0, str::len) as i64,
                None => value.size() as i64,
            }),
            ColumnarValue::Array(array) => match array.data_type() {
                DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView => PerRow::each(&kernels::length::length(array)?)?,
                _ => PerRow::Same((array.get_array_memory_size() / array.len().max(1)) as i64),
            },
        })
    }

    /// The length of each value: a list's elements, a text's bytes; null counts as 0.
    fn lengths(value: &ColumnarValue) -> DfResult<PerRow> {
        if !matches!(
            value.data_type(),
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
        ) {
            return PerRow::byte_lengths(value);
        }
        let lengths = PerRow::each(&kernels::length::length(&value.to_array(1)?)?)?;
        Ok(match value {
            ColumnarValue::Scalar(_) => PerRow::Same(lengths.get(0)),
            ColumnarValue::Array(_) => lengths,
        })
    }

    /// Each value as a whole number (counts); null counts as 0.
    fn integers(value: &ColumnarValue) -> DfResult<PerRow> {
        Ok(match value {
            ColumnarValue::Scalar(value) => match value.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(n) => PerRow::Same(n.unwrap_or(0)),
                _ => PerRow::Same(0),
            },
            ColumnarValue::Array(array) => PerRow::each(array)?,
        })
    }

    /// Each value as a point on a line: a number, or a date or time in nanoseconds.
    fn points(value: &ColumnarValue) -> DfResult<PerRow> {
        let data_type = value.data_type();
        if !matches!(data_type, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)) {
            return PerRow::integers(value);
        }
        let nanos = DataType::Timestamp(TimeUnit::Nanosecond, None);
        let array = value.to_array(1)?;
        let array = cast(&cast(&array, &nanos)?, &DataType::Int64)?;
        match value {
            ColumnarValue::Scalar(_) => Ok(PerRow::Same(
                array.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0),
            )),
            ColumnarValue::Array(_) => PerRow::each(&array),
        }
    }

    /// Each step: a number, or an interval in nanoseconds (a month as 28 days).
    fn steps(value: &ColumnarValue) -> DfResult<PerRow> {
        if !matches!(value.data_type(), DataType::Interval(_)) {
            return PerRow::integers(value);
        }
        let array = cast(&value.to_array(1)?, &DataType::Interval(IntervalUnit::MonthDayNano))?;
        const DAY: i64 = 86_400_000_000_000;
        let nanos: Int64Array = array
            .as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>()
            .iter()
            .map(|step| {
                step.map(|step| {
                    i64::from(step.months)
                        .saturating_mul(28 * DAY)
                        .saturating_add(i64::from(step.days).saturating_mul(DAY))
                        .saturating_add(step.nanoseconds)
                })
            })
            .collect();
        Ok(match value {
            ColumnarValue::Scalar(_) => PerRow::Same(nanos.value(0)),
            ColumnarValue::Array(_) => PerRow::Each(nanos),
        })
    }

    fn each(array: &ArrayRef) -> DfResult<PerRow> {
        let array = cast(array, &DataType::Int64)?;
        Ok(PerRow::Each(
            array.as_primitive::<datafusion::arrow::datatypes::Int64Type>().clone(),
        ))
    }

    fn get(&self, row: usize) -> i64 {
        match self {
            PerRow::Same(n) => *n,
            PerRow::Each(values) if row < values.len() && values.is_valid(row) => values.value(row),
            PerRow::Each(_) => 0,
        }
    }

    fn max(&self) -> u128 {
        match self {
            PerRow::Same(n) => (*n).max(0) as u128,
            PerRow::Each(values) => values.iter().flatten().max().unwrap_or(0).max(0) as u128,
        }
    }

    fn sum(&self, rows: u128) -> u128 {
        match self {
            PerRow::Same(n) => (*n).max(0) as u128 * rows,
            PerRow::Each(values) => values.iter().flatten().map(|n| n.max(0) as u128).sum(),
        }
    }

    /// The sum over the rows of this value times the other's.
    fn sum_product(&self, other: &PerRow, rows: u128) -> u128 {
        match (self, other) {
            (PerRow::Same(a), PerRow::Same(b)) => (*a).max(0) as u128 * (*b).max(0) as u128 * rows,
            _ => (0..rows as usize)
                .map(|row| self.get(row).max(0) as u128 * other.get(row).max(0) as u128)
                .sum(),
        }
    }
}

/// A function whose result is bounded before and measured after it runs.
#[derive(Debug)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    max_bytes: usize,
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.growth == other.growth && self.max_bytes == other.max_bytes
    }
}

impl Eq for Bounded {}

impl Hash for Bounded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.max_bytes.hash(state);
    }
}

impl Bounded {
    fn too_large(&self, bytes: u128) -> DataFusionError {
        DataFusionError::Execution(format!(
            "{} would make {} MB of values in one batch; the limit is {} MB: shorten the text or the count",
            self.inner.name(),
            bytes / (1024 * 1024),
            self.max_bytes / (1024 * 1024)
        ))
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let bound = self.growth.bound(&args.args, args.number_rows)?;
        if self.growth == Growth::Quadratic && bound > MAX_CALL_STEPS {
            return Err(DataFusionError::Execution(format!(
                "{} would take {} million steps in one batch; the limit is {} million: compare shorter texts or \
                 arrays",
                self.inner.name(),
                bound / 1_000_000,
                MAX_CALL_STEPS / 1_000_000
            )));
        }
        if bound > self.max_bytes as u128 {
            return Err(self.too_large(bound));
        }
        let result = self.inner.invoke_with_args(args)?;
        let made = match &result {
            ColumnarValue::Scalar(value) => value.size(),
            ColumnarValue::Array(array) => array.get_array_memory_size(),
        };
        if made > self.max_bytes {
            return Err(self.too_large(made as u128));
        }
        Ok(result)
    }
}

/// The functions of `functions` whose result can outgrow their arguments, each wrapped so
/// that one call makes at most `max_bytes`; register them in place of the originals.
pub fn bounded_functions<'a>(
    functions: impl IntoIterator<Item = &'a Arc<ScalarUDF>>,
    max_bytes: usize,
) -> Vec<ScalarUDF> {
    functions
        .into_iter()
        .filter_map(|inner| {
            let growth = Growth::of(inner.name())?;
            Some(ScalarUDF::new_from_impl(Bounded {
                inner: Arc::clone(inner),
                growth,
                max_bytes,
            }))
        })
        .collect()
}

/// `text || text` with the result bounded like [`bounded_functions`]: the sum of both sides, at
/// most the cap. Null on either side gives null, as `||` does.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BoundedConcatOperator {
    signature: Signature,
    max_bytes: usize,
}

impl ScalarUDFImpl for BoundedConcatOperator {
    fn name(&self) -> &str {
        "khoso_string_concat"
    }

    fn display_name(&self, args: &[Expr]) -> DfResult<String> {
        self.schema_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        match args {
            [left, right] => Ok(format!("{} || {}", left.schema_name(), right.schema_name())),
            _ => plan_err!("|| takes two sides"),
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        Ok(vec![DataType::Utf8; arg_types.len()])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let bound = Growth::Sum.bound(&args.args, rows)? / 2;
        if bound > self.max_bytes as u128 {
            return exec_err!(
                "|| would make {} MB of text in one batch; the limit is {} MB: shorten the text",
                bound / (1024 * 1024),
                self.max_bytes / (1024 * 1024)
            );
        }
        let [left, right] = args.args.as_slice() else {
            return exec_err!("|| takes two sides");
        };
        let scalars = matches!((left, right), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let (left, right) = (left.to_array(rows)?, right.to_array(rows)?);
        let joined = kernels::concat_elements::concat_elements_dyn(&left, &right)?;
        Ok(match scalars {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&joined, 0)?),
            false => ColumnarValue::Array(joined),
        })
    }
}

/// Plans `text || text` as [`BoundedConcatOperator`] (arrays' `||` is planned as
/// `array_concat`, which [`bounded_functions`] covers).
#[derive(Debug)]
pub struct BoundedConcatRewrite {
    function: Arc<ScalarUDF>,
}

impl BoundedConcatRewrite {
    /// The rewrite, with one call's result at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        let operator = BoundedConcatOperator {
            signature: Signature::user_defined(Volatility::Immutable),
            max_bytes,
        };
        Self {
            function: Arc::new(ScalarUDF::new_from_impl(operator)),
        }
    }

    /// The function `||` is planned as, for a process that runs plans another planned.
    pub fn function(&self) -> Arc<ScalarUDF> {
        Arc::clone(&self.function)
    }
}

impl FunctionRewrite for BoundedConcatRewrite {
    fn name(&self) -> &str {
        "khoso_bounded_string_concat"
    }

    fn rewrite(&self, expr: Expr, schema: &DFSchema, _config: &ConfigOptions) -> DfResult<Transformed<Expr>> {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::StringConcat,
            right,
        }) = expr
        else {
            return Ok(Transformed::no(expr));
        };
        let textual = |side: &Expr| {
            side.get_type(schema).is_ok_and(|t| {
                !matches!(
                    t,
                    DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) | DataType::ListView(_)
                )
            })
        };
        if !(textual(&left) && textual(&right)) {
            return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::StringConcat,
                right,
            })));
        }
        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::clone(&self.function),
            vec![*left, *right],
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_string())))
    }

    fn number(value: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(value)))
    }

    #[test]
    fn results_are_bounded_from_the_arguments() {
        let bound = |growth: Growth, args: &[ColumnarValue], rows: usize| growth.bound(args, rows).expect("bound");
        assert_eq!(bound(Growth::Repeat, &[text("ab"), number(3)], 1), 6);
        assert_eq!(
            bound(Growth::Repeat, &[text("ab"), number(3)], 10),
            60,
            "a constant counts once per row"
        );
        assert_eq!(bound(Growth::Repeat, &[text("ab"), number(-5)], 1), 0);
        let names: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(vec!["a", "bcd", "ef"]));
        let counts: ArrayRef = Arc::new(Int64Array::from(vec![10, 1, 0]));
        assert_eq!(
            bound(
                Growth::Repeat,
                &[ColumnarValue::Array(names), ColumnarValue::Array(counts)],
                3
            ),
            10 + 3,
            "row by row"
        );
        assert_eq!(bound(Growth::Pad, &[text("x"), number(5)], 1), 1 + 4 * 5);
        // Every place of a 4-byte text, and its end, may take the 3-byte replacement.
        assert_eq!(
            bound(Growth::Replace, &[text("aaaa"), text("a"), text("bbb")], 1),
            4 + 5 * 3
        );
        assert_eq!(bound(Growth::Range, &[number(1), number(101)], 1), 101 * 16);
        assert_eq!(
            bound(Growth::Range, &[number(0), number(100), number(10)], 2),
            2 * 11 * 16
        );
        let day = ColumnarValue::Scalar(ScalarValue::new_interval_mdn(0, 1, 0));
        let (start, stop) = (
            ColumnarValue::Scalar(ScalarValue::Date32(Some(0))),
            ColumnarValue::Scalar(ScalarValue::Date32(Some(364))),
        );
        assert_eq!(bound(Growth::Range, &[start, stop, day], 1), 365 * 16, "a year of days");
        assert!(bound(Growth::Repeat, &[text("x"), number(2_000_000_000)], 1) > MAX_CALL_BYTES as u128);
    }

    #[test]
    fn growing_functions_are_known_by_name() {
        for name in [
            "repeat",
            "lpad",
            "rpad",
            "replace",
            "regexp_replace",
            "concat",
            "range",
            "array_repeat",
        ] {
            assert!(grows(name), "{name}");
        }
        for name in ["upper", "length", "sum", "substr"] {
            assert!(!grows(name), "{name}");
        }
    }
}
