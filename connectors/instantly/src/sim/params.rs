//! Request parsing and validation with the messages the real API's Fastify
//! server (ajv, type coercion on) produces, and the error bodies the
//! documents give.

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// An error reply: status, body, content type and extra headers.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    /// The Retry-After value sent, for the request log.
    pub retry_after: Option<u64>,
}

pub(crate) const JSON: &str = "application/json; charset=utf-8";
pub(crate) const HTML: &str = "text/html; charset=UTF-8";

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error")
}

impl ApiError {
    fn with_body(status: u16, body: Value) -> Self {
        ApiError { status, body: body.to_string(), content_type: JSON, headers: Vec::new(), retry_after: None }
    }

    /// The Fastify error shape `{"statusCode", "error", "message"}`.
    pub(crate) fn fastify(status: u16, message: &str) -> Self {
        Self::fastify_code(status, None, message)
    }

    /// The Fastify error shape with Fastify's own error `code`, as its body
    /// parser sends (`FST_ERR_CTP_INVALID_JSON_BODY`, ...).
    pub(crate) fn fastify_code(status: u16, code: Option<&str>, message: &str) -> Self {
        // A struct, not `json!`, so the keys keep Fastify's order whatever
        // serde_json's map type is.
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "statusCode")]
            status_code: u16,
            #[serde(skip_serializing_if = "Option::is_none")]
            code: Option<&'a str>,
            error: &'a str,
            message: &'a str,
        }
        let body = Body { status_code: status, code, error: reason(status), message };
        ApiError {
            status,
            body: serde_json::to_string(&body).unwrap_or_default(),
            content_type: JSON,
            headers: Vec::new(),
            retry_after: None,
        }
    }

    pub(crate) fn bad_request(message: impl AsRef<str>) -> Self {
        Self::fastify(400, message.as_ref())
    }

    /// The analytics endpoints' 400 shape: `{"message"}` only.
    pub(crate) fn analytics(message: &str) -> Self {
        Self::with_body(400, json!({"message": message}))
    }

    /// 401 with the documented body.
    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::fastify(401, message)
    }

    /// Fastify's default 404 for an unknown route.
    pub(crate) fn no_route(method: &str, path: &str) -> Self {
        Self::fastify(404, &format!("Route {method}:{path} not found"))
    }

    /// 429 with the documented body and, when given, a `Retry-After` header.
    pub(crate) fn too_many(retry_after: Option<u64>) -> Self {
        let mut e = Self::fastify(429, "Rate limit exceeded");
        if let Some(secs) = retry_after {
            e.headers.push(("retry-after", secs.to_string()));
            e.retry_after = Some(secs);
        }
        e
    }

    /// A non-JSON body (gateway and proxy pages).
    pub(crate) fn html(status: u16, body: String, headers: Vec<(&'static str, String)>) -> Self {
        ApiError { status, body, content_type: HTML, headers, retry_after: None }
    }
}

/// Parsed query string; keys may repeat (`ids=a&ids=b`).
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = raw.map(|r| form_urlencoded::parse(r.as_bytes()).into_owned().collect()).unwrap_or_default();
        Query { pairs }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }
}

/// The schema of one query parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param {
    Int { min: i64, max: Option<i64> },
    Num(Option<&'static [i64]>),
    Bool,
    Str(Option<&'static [&'static str]>),
}

pub(crate) const LIMIT: Param = Param::Int { min: 1, max: Some(100) };
pub(crate) const CAMPAIGN_STATUS: Param = Param::Num(Some(&[-99, -1, -2, 0, 1, 2, 3, 4]));
pub(crate) const SORT_ORDER: Param = Param::Str(Some(&["asc", "desc"]));

fn check_scalar(place: &str, name: &str, raw: &str, p: Param) -> Result<(), ApiError> {
    let fail = |what: &str| Err(ApiError::bad_request(format!("{place}/{name} {what}")));
    match p {
        Param::Int { min, max } => {
            let Ok(v) = raw.trim().parse::<i64>() else {
                // ajv coerces "10.0" to 10 but rejects "10.5" and "abc".
                return match raw.trim().parse::<f64>() {
                    Ok(f) if f.fract() == 0.0 && f.is_finite() => check_scalar(place, name, &(f as i64).to_string(), p),
                    _ => fail("must be integer"),
                };
            };
            if v < min {
                return fail(&format!("must be >= {min}"));
            }
            if let Some(max) = max.filter(|m| v > *m) {
                return fail(&format!("must be <= {max}"));
            }
        }
        Param::Num(allowed) => {
            let Ok(v) = raw.trim().parse::<f64>() else { return fail("must be number") };
            if let Some(list) = allowed
                && !list.iter().any(|a| *a as f64 == v)
            {
                return fail("must be equal to one of the allowed values");
            }
        }
        Param::Bool => {
            if !matches!(raw, "true" | "false") {
                return fail("must be boolean");
            }
        }
        Param::Str(allowed) => {
            if let Some(list) = allowed
                && !list.contains(&raw)
            {
                return fail("must be equal to one of the allowed values");
            }
        }
    }
    Ok(())
}

/// Validates the parameters named in `specs`; others pass through (Fastify
/// query schemas do not forbid unknown keys).
pub(crate) fn validate_query(q: &Query, specs: &[(&str, Param)]) -> Result<(), ApiError> {
    for (name, p) in specs {
        if let Some(raw) = q.get(name) {
            check_scalar("querystring", name, raw, *p)?;
        }
    }
    Ok(())
}

/// Leads filter values accepted by `POST /leads/list` (`filter`).
pub(crate) const LEAD_FILTERS: &[&str] = &[
    "FILTER_VAL_CONTACTED",
    "FILTER_VAL_NOT_CONTACTED",
    "FILTER_VAL_COMPLETED",
    "FILTER_VAL_UNSUBSCRIBED",
    "FILTER_VAL_ACTIVE",
    "FILTER_LEAD_INTERESTED",
    "FILTER_LEAD_NOT_INTERESTED",
    "FILTER_LEAD_MEETING_BOOKED",
    "FILTER_LEAD_MEETING_COMPLETED",
    "FILTER_LEAD_CLOSED",
    "FILTER_LEAD_OUT_OF_OFFICE",
    "FILTER_LEAD_WRONG_PERSON",
    "FILTER_LEAD_LOST",
    "FILTER_LEAD_NO_SHOW",
    "FILTER_LEAD_CUSTOM_LABEL_POSITIVE",
    "FILTER_LEAD_CUSTOM_LABEL_NEGATIVE",
    "FILTER_VAL_BOUNCED",
    "FILTER_VAL_SKIPPED",
    "FILTER_VAL_RISKY",
    "FILTER_VAL_INVALID",
    "FILTER_VAL_VALID",
    "FILTER_VAL_IN_SUBSEQUENCE",
    "FILTER_VAL_OPENED_NO_REPLY",
    "FILTER_VAL_COMPLETED_NO_REPLY",
    "FILTER_VAL_NO_OPENS",
    "FILTER_VAL_REPLIED",
    "FILTER_VAL_LINK_CLICKED",
];

/// The body of `POST /leads/list`, validated.
#[derive(Debug, Default)]
pub(crate) struct LeadsBody {
    pub limit: Option<i64>,
    pub starting_after: Option<String>,
    pub campaign: Option<String>,
    pub list_id: Option<String>,
    pub in_campaign: Option<bool>,
    pub in_list: Option<bool>,
    pub ids: Option<Vec<String>>,
    pub excluded_ids: Option<Vec<String>>,
    pub contacts: Option<Vec<String>>,
    pub search: Option<String>,
    pub filter: Option<String>,
}

fn body_err(name: &str, what: &str) -> ApiError {
    ApiError::bad_request(format!("body/{name} {what}"))
}

fn coerce_str(name: &str, v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err(body_err(name, "must be string")),
    }
}

fn coerce_bool(name: &str, v: &Value) -> Result<Option<bool>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s == "true" => Ok(Some(true)),
        Value::String(s) if s == "false" => Ok(Some(false)),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(Some(true)),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Some(false)),
        _ => Err(body_err(name, "must be boolean")),
    }
}

fn coerce_strings(name: &str, v: &Value) -> Result<Option<Vec<String>>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, it)| {
                coerce_str(&format!("{name}/{i}"), it)?
                    .ok_or_else(|| body_err(&format!("{name}/{i}"), "must be string"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        // ajv's coerceTypes: "array" wraps a scalar.
        other => Ok(coerce_str(name, other)?.map(|s| vec![s])),
    }
}

impl LeadsBody {
    /// Validates a request body (`None` when the request had none).
    pub(crate) fn parse(body: Option<&Value>) -> Result<LeadsBody, ApiError> {
        let empty = Map::new();
        let obj = match body {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(_) => return Err(ApiError::bad_request("body must be object")),
        };
        let mut out = LeadsBody::default();
        for (k, v) in obj {
            match k.as_str() {
                "limit" => {
                    let raw = match v {
                        Value::Null => continue,
                        Value::Number(n) => n.to_string(),
                        Value::String(s) => s.clone(),
                        _ => return Err(body_err("limit", "must be integer")),
                    };
                    check_scalar("body", "limit", &raw, LIMIT)?;
                    out.limit = raw.trim().parse::<f64>().ok().map(|f| f as i64);
                }
                "starting_after" => out.starting_after = coerce_str(k, v)?,
                "campaign" => out.campaign = coerce_str(k, v)?,
                "list_id" => out.list_id = coerce_str(k, v)?,
                "search" => out.search = coerce_str(k, v)?,
                "smart_view_id" => {
                    coerce_str(k, v)?;
                }
                "in_campaign" => out.in_campaign = coerce_bool(k, v)?,
                "in_list" => out.in_list = coerce_bool(k, v)?,
                "is_website_visitor" | "distinct_contacts" => {
                    coerce_bool(k, v)?;
                }
                "ids" => out.ids = coerce_strings(k, v)?,
                "excluded_ids" => out.excluded_ids = coerce_strings(k, v)?,
                "contacts" => out.contacts = coerce_strings(k, v)?,
                "organization_user_ids" => {
                    coerce_strings(k, v)?;
                }
                "filter" => {
                    let f = coerce_str(k, v)?;
                    if let Some(f) = &f
                        && !LEAD_FILTERS.contains(&f.as_str())
                    {
                        return Err(body_err(k, "must be equal to one of the allowed values"));
                    }
                    out.filter = f;
                }
                "queries" if !matches!(v, Value::Array(_) | Value::Null) => {
                    return Err(body_err(k, "must be array"));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_messages_match_fastify() {
        let q = Query::parse(Some("limit=101"));
        let e = validate_query(&q, &[("limit", LIMIT)]).err().map(|e| e.body);
        assert_eq!(
            e.as_deref(),
            Some(r#"{"statusCode":400,"error":"Bad Request","message":"querystring/limit must be <= 100"}"#)
        );
        let q = Query::parse(Some("limit=0"));
        assert!(validate_query(&q, &[("limit", LIMIT)]).is_err());
        let q = Query::parse(Some("limit=abc"));
        let e = validate_query(&q, &[("limit", LIMIT)]).err().map(|e| e.body).unwrap_or_default();
        assert!(e.contains("must be integer"));
        let q = Query::parse(Some("limit=100"));
        assert!(validate_query(&q, &[("limit", LIMIT)]).is_ok());
    }

    #[test]
    fn leads_body_validation() {
        let b = json!({"limit": 500});
        let e = LeadsBody::parse(Some(&b)).err().map(|e| e.body).unwrap_or_default();
        assert!(e.contains("body/limit must be <= 100"), "{e}");
        let b = json!({"limit": "50", "in_campaign": false, "campaign": "x"});
        let p = LeadsBody::parse(Some(&b)).ok().unwrap_or_default();
        assert_eq!(p.limit, Some(50));
        assert_eq!(p.in_campaign, Some(false));
        assert!(LeadsBody::parse(Some(&json!([1]))).is_err());
    }

    #[test]
    fn repeated_keys_and_encoding() {
        let q = Query::parse(Some("ids=a&ids=b&starting_after=2026-01-01T00%3A00%3A00.000Z%26jon%40doe.com"));
        assert_eq!(q.all("ids"), vec!["a", "b"]);
        assert_eq!(q.get("starting_after"), Some("2026-01-01T00:00:00.000Z&jon@doe.com"));
    }
}
