//! JSON as clients write it, read as the API's contract (its JSON Schemas) reads it.

/// Reads an optional whole number from JSON as JSON Schema counts one: `12` and `12.0` alike
/// (`"type": "integer"` admits both, and clients written in JavaScript cannot tell them apart),
/// but not `12.5`, nor one outside `T`'s range. For `#[serde(deserialize_with)]` on `Option<T>`.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i128>,
{
    use serde::Deserialize;
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    let whole = if let Some(i) = n.as_i64() {
        Some(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Some(i128::from(u))
    } else {
        // Within ±2^53 every whole f64 is exact; beyond, no field here has a valid value.
        n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0).map(|f| f as i128)
    };
    whole
        .and_then(|i| T::try_from(i).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number in range")))
}
