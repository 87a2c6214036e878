//! The portal's data: generation, mutation, rendering and search.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::{ByType, Dataset, MutateReport, MutateSpec, ObjectType, SimConfig};

const DAY_MS: i64 = 86_400_000;
const FIRST: [&str; 12] =
    ["Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jon", "Kemi", "Lena"];
const LAST: [&str; 10] = ["Smith", "Okafor", "Novak", "Garcia", "Chen", "Muller", "Rossi", "Tanaka", "Haddad", "Berg"];
const WORDS: [&str; 10] =
    ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne"];
const STAGES: [&str; 5] =
    ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "closedwon", "closedlost"];
const LIFECYCLE: [&str; 4] = ["subscriber", "lead", "marketingqualifiedlead", "customer"];
const INDUSTRIES: [&str; 4] = ["COMPUTER_SOFTWARE", "RETAIL", "FINANCIAL_SERVICES", "HOSPITAL_HEALTH_CARE"];

/// A property definition: name, label, type, fieldType.
pub(crate) type PropDef = (&'static str, &'static str, &'static str, &'static str);

const CONTACT_PROPS: &[PropDef] = &[
    ("email", "Email", "string", "text"),
    ("firstname", "First Name", "string", "text"),
    ("lastname", "Last Name", "string", "text"),
    ("phone", "Phone Number", "string", "phonenumber"),
    ("company", "Company Name", "string", "text"),
    ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio"),
    ("hubspot_owner_id", "Contact owner", "enumeration", "select"),
    ("createdate", "Create Date", "datetime", "date"),
    ("lastmodifieddate", "Last Modified Date", "datetime", "date"),
    ("hs_object_id", "Record ID", "number", "number"),
];
const COMPANY_PROPS: &[PropDef] = &[
    ("name", "Company name", "string", "text"),
    ("domain", "Company Domain Name", "string", "text"),
    ("industry", "Industry", "enumeration", "select"),
    ("city", "City", "string", "text"),
    ("numberofemployees", "Number of Employees", "number", "number"),
    ("annualrevenue", "Annual Revenue", "number", "number"),
    ("hubspot_owner_id", "Company owner", "enumeration", "select"),
    ("createdate", "Create Date", "datetime", "date"),
    ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date"),
    ("hs_object_id", "Record ID", "number", "number"),
];
const DEAL_PROPS: &[PropDef] = &[
    ("dealname", "Deal Name", "string", "text"),
    ("amount", "Amount", "number", "number"),
    ("closedate", "Close Date", "datetime", "date"),
    ("pipeline", "Pipeline", "enumeration", "select"),
    ("dealstage", "Deal Stage", "enumeration", "select"),
    ("hubspot_owner_id", "Deal owner", "enumeration", "select"),
    ("createdate", "Create Date", "datetime", "date"),
    ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date"),
    ("hs_object_id", "Record ID", "number", "number"),
];

/// Names of the simulator's custom properties start with this (`custom_001`, ...).
pub(crate) const CUSTOM_PREFIX: &str = "custom_";

/// The name of custom property `k` (from 1).
pub(crate) fn custom_name(k: usize) -> String {
    format!("{CUSTOM_PREFIX}{k:03}")
}

/// The property definitions of a type.
pub(crate) fn prop_defs(t: ObjectType) -> &'static [PropDef] {
    match t {
        ObjectType::Contacts => CONTACT_PROPS,
        ObjectType::Companies => COMPANY_PROPS,
        ObjectType::Deals => DEAL_PROPS,
    }
}

/// The properties returned when a request names none.
fn default_props(t: ObjectType) -> &'static [&'static str] {
    match t {
        ObjectType::Contacts => &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
        ObjectType::Companies => &["name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"],
        ObjectType::Deals => &[
            "dealname",
            "amount",
            "closedate",
            "pipeline",
            "dealstage",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ],
    }
}

fn prop_type(t: ObjectType, name: &str) -> Option<&'static str> {
    prop_defs(t).iter().find(|d| d.0 == name).map(|d| d.2)
}

pub(crate) fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn iso(ms: i64) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Epoch milliseconds from epoch-ms digits, RFC 3339 or a `YYYY-MM-DD` date.
fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.timestamp_millis());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp_millis())
}

#[derive(Clone, Debug)]
pub(crate) struct Obj {
    pub id: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived_ms: Option<i64>,
    /// Every property but `createdate`, the last-modified one and `hs_object_id`.
    pub props: Map<String, Value>,
}

impl Obj {
    fn prop(&self, t: ObjectType, name: &str) -> Option<String> {
        match name {
            "createdate" => Some(iso(self.created_ms)),
            "hs_object_id" => Some(self.id.to_string()),
            n if n == t.modified_property() => Some(iso(self.updated_ms)),
            n => self.props.get(n).and_then(Value::as_str).map(str::to_owned),
        }
    }

    /// Whether the object has property `name` (built in, or one of the custom ones).
    fn has_property(&self, t: ObjectType, name: &str) -> bool {
        prop_type(t, name).is_some() || (name.starts_with(CUSTOM_PREFIX) && self.props.contains_key(name))
    }

    /// The API shape, with the named properties (unknown names ignored).
    pub(crate) fn render(&self, t: ObjectType, wanted: Option<&[String]>) -> Value {
        let mut props = Map::new();
        let mut put = |name: &str| {
            if self.has_property(t, name) {
                props.insert(name.to_owned(), self.prop(t, name).map_or(Value::Null, Value::String));
            }
        };
        match wanted {
            None => default_props(t).iter().for_each(|p| put(p)),
            Some(list) => {
                list.iter().for_each(|p| put(p));
                ["createdate", t.modified_property(), "hs_object_id"].iter().for_each(|p| put(p));
            }
        }
        let mut v = json!({
            "id": self.id.to_string(),
            "properties": props,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "archived": self.archived_ms.is_some(),
        });
        if let Some(ms) = self.archived_ms {
            v["archivedAt"] = Value::String(iso(ms));
        }
        v
    }

    fn render_all(&self, t: ObjectType) -> Value {
        let mut all: Vec<String> = prop_defs(t).iter().map(|d| d.0.to_owned()).collect();
        all.extend(self.props.keys().filter(|k| k.starts_with(CUSTOM_PREFIX)).cloned());
        self.render(t, Some(&all))
    }
}

pub(crate) struct Store {
    pub now_ms: i64,
    pub objects: ByType<Vec<Obj>>,
    next_id: ByType<u64>,
    pub owners: Vec<Value>,
    owner_ids: Vec<String>,
    rng: StdRng,
    seq: u64,
    custom: usize,
}

impl Store {
    pub(crate) fn generate(cfg: &SimConfig, now_ms: i64) -> Store {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let owners: Vec<Value> = (0..cfg.owners)
            .map(|i| {
                let (first, last) = (FIRST[i % FIRST.len()], LAST[(i * 3) % LAST.len()]);
                let created = now_ms - 400 * DAY_MS + i as i64 * DAY_MS;
                json!({
                    "id": (70_000_000 + i * 17).to_string(),
                    "email": format!("{}.{}@sim-portal.example", first.to_lowercase(), last.to_lowercase()),
                    "firstName": first,
                    "lastName": last,
                    "userId": 9_000_000 + i,
                    "createdAt": iso(created),
                    "updatedAt": iso(created + DAY_MS),
                    "archived": false,
                })
            })
            .collect();
        let owner_ids = owners.iter().filter_map(|o| o["id"].as_str().map(str::to_owned)).collect();
        let mut s = Store {
            now_ms,
            objects: ByType::default(),
            next_id: ByType { contacts: 100_001, companies: 5_000_001, deals: 9_000_001 },
            owners,
            owner_ids,
            rng: StdRng::seed_from_u64(0),
            seq: 0,
            custom: cfg.custom_properties,
        };
        let span = 365 * DAY_MS;
        for t in ObjectType::ALL {
            let n = *ByType { contacts: cfg.contacts, companies: cfg.companies, deals: cfg.deals }.get(t);
            let buckets = if cfg.distinct_modified_times > 0 { cfg.distinct_modified_times } else { (n / 4).max(1) };
            // Whole seconds with a fixed millisecond part, like real timestamps.
            let times: Vec<i64> = (0..buckets as i64)
                .map(|k| now_ms - span + (k + 1) * span / (buckets as i64 + 1) / 1000 * 1000 + 356)
                .collect();
            let mut objs = Vec::with_capacity(n);
            for _ in 0..n {
                let updated = times[rng.random_range(0..times.len())];
                let created = updated - rng.random_range(0..60 * DAY_MS);
                let id = s.take_id(t, &mut rng);
                let props = s.fresh_props(t, id, created, &mut rng);
                objs.push(Obj { id, created_ms: created, updated_ms: updated, archived_ms: None, props });
            }
            *s.objects.get_mut(t) = objs;
        }
        s.rng = rng;
        s
    }

    fn take_id(&mut self, t: ObjectType, rng: &mut StdRng) -> u64 {
        let id = self.next_id.get_mut(t);
        let out = *id;
        *id += rng.random_range(1..=3);
        out
    }

    fn fresh_props(&mut self, t: ObjectType, id: u64, created: i64, rng: &mut StdRng) -> Map<String, Value> {
        self.seq += 1;
        let (first, last) = (FIRST[rng.random_range(0..FIRST.len())], LAST[rng.random_range(0..LAST.len())]);
        let word = WORDS[rng.random_range(0..WORDS.len())];
        let owner = if self.owner_ids.is_empty() || rng.random_bool(0.2) {
            Value::Null
        } else {
            Value::String(self.owner_ids[rng.random_range(0..self.owner_ids.len())].clone())
        };
        let s = |v: String| Value::String(v);
        let mut m = Map::new();
        match t {
            ObjectType::Contacts => {
                m.insert("email".into(), s(format!("{}.{}{id}@{}.example", first, last, word).to_lowercase()));
                m.insert("firstname".into(), s(first.into()));
                m.insert("lastname".into(), s(last.into()));
                let phone = rng.random_bool(0.7).then(|| s(format!("+1 555 {:04}", rng.random_range(0..10_000))));
                m.insert("phone".into(), phone.unwrap_or(Value::Null));
                m.insert("company".into(), if rng.random_bool(0.8) { s(format!("{word} Inc")) } else { Value::Null });
                m.insert("lifecyclestage".into(), s(LIFECYCLE[rng.random_range(0..LIFECYCLE.len())].into()));
            }
            ObjectType::Companies => {
                m.insert("name".into(), s(format!("{word} {}", self.seq)));
                m.insert("domain".into(), s(format!("{}{}.example", word.to_lowercase(), self.seq)));
                m.insert("industry".into(), s(INDUSTRIES[rng.random_range(0..INDUSTRIES.len())].into()));
                m.insert("city".into(), if rng.random_bool(0.7) { s("Berlin".into()) } else { Value::Null });
                m.insert("numberofemployees".into(), s(rng.random_range(1..5000).to_string()));
                let revenue = rng.random_bool(0.6).then(|| s(format!("{}.5", rng.random_range(10_000..9_000_000))));
                m.insert("annualrevenue".into(), revenue.unwrap_or(Value::Null));
            }
            ObjectType::Deals => {
                m.insert("dealname".into(), s(format!("{word} deal {}", self.seq)));
                let amount = rng
                    .random_bool(0.9)
                    .then(|| s(format!("{}.{:02}", rng.random_range(100..200_000), rng.random_range(0..100))));
                m.insert("amount".into(), amount.unwrap_or(Value::Null));
                m.insert("closedate".into(), s(iso(created + rng.random_range(1..90) * DAY_MS)));
                m.insert("pipeline".into(), s("default".into()));
                m.insert("dealstage".into(), s(STAGES[rng.random_range(0..STAGES.len())].into()));
            }
        }
        m.insert("hubspot_owner_id".into(), owner);
        // Custom values come from the id, not the generator, so that the built-in values
        // of a seed do not depend on how many custom properties there are.
        for k in 1..=self.custom {
            m.insert(custom_name(k), s(format!("{t} {id} value {k}")));
        }
        m
    }

    /// Indices of up to `n` live objects of `t` not in `taken`, ascending.
    fn pick(&mut self, t: ObjectType, n: usize, taken: &[u64]) -> Vec<usize> {
        let mut pool: Vec<usize> = (0..self.objects.get(t).len())
            .filter(|&i| {
                let o = &self.objects.get(t)[i];
                o.archived_ms.is_none() && !taken.contains(&o.id)
            })
            .collect();
        let mut out = Vec::new();
        while out.len() < n && !pool.is_empty() {
            out.push(pool.swap_remove(self.rng.random_range(0..pool.len())));
        }
        out.sort_unstable();
        out
    }

    pub(crate) fn mutate(&mut self, spec: &MutateSpec) -> MutateReport {
        let mut report = MutateReport::default();
        self.now_ms += i64::try_from(spec.advance_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let mut touched: ByType<Vec<u64>> = ByType::default();
        if spec.same_timestamp_contacts > 0 {
            let t = ObjectType::Contacts;
            let at = self.now_ms;
            for i in self.pick(t, spec.same_timestamp_contacts, &[]) {
                let o = &mut self.objects.contacts[i];
                o.updated_ms = at;
                o.props.insert("lifecyclestage".into(), Value::String("customer".into()));
                touched.contacts.push(o.id);
            }
            report.same_timestamp = Some(to_datetime(at));
            report.updated_ids.contacts = touched.contacts.iter().map(u64::to_string).collect();
        }
        let counts = [
            (ObjectType::Contacts, spec.new_contacts, spec.update_contacts, spec.archive_contacts),
            (ObjectType::Companies, spec.new_companies, spec.update_companies, spec.archive_companies),
            (ObjectType::Deals, spec.new_deals, spec.update_deals, spec.archive_deals),
        ];
        for (t, new, update, archive) in counts {
            let updates = self.pick(t, update, touched.get(t));
            touched.get_mut(t).extend(updates.iter().map(|&i| self.objects.get(t)[i].id));
            let archives = self.pick(t, archive, touched.get(t));
            for _ in 0..new {
                self.now_ms += 1;
                let mut rng = StdRng::seed_from_u64(self.rng.random());
                let id = self.take_id(t, &mut rng);
                let props = self.fresh_props(t, id, self.now_ms, &mut rng);
                let obj = Obj { id, created_ms: self.now_ms, updated_ms: self.now_ms, archived_ms: None, props };
                self.objects.get_mut(t).push(obj);
                report.new_ids.get_mut(t).push(id.to_string());
            }
            for i in updates {
                self.now_ms += 1;
                let now = self.now_ms;
                let bump = self.rng.random_range(1..1000);
                let o = &mut self.objects.get_mut(t)[i];
                o.updated_ms = now;
                let (key, val) = match t {
                    ObjectType::Contacts => ("phone", format!("+1 555 {bump:04}")),
                    ObjectType::Companies => ("numberofemployees", bump.to_string()),
                    ObjectType::Deals => ("amount", format!("{bump}.00")),
                };
                o.props.insert(key.into(), Value::String(val));
                report.updated_ids.get_mut(t).push(o.id.to_string());
            }
            for i in archives {
                self.now_ms += 1;
                let o = &mut self.objects.get_mut(t)[i];
                o.archived_ms = Some(self.now_ms);
                o.updated_ms = self.now_ms;
                report.archived_ids.get_mut(t).push(o.id.to_string());
            }
            report.updated_ids.get_mut(t).sort_by_key(|id| id.parse::<u64>().unwrap_or(0));
        }
        report.now = to_datetime(self.now_ms);
        report
    }

    pub(crate) fn dataset(&self) -> Dataset {
        let mut d = Dataset { now: to_datetime(self.now_ms), owners: self.owners.clone(), ..Dataset::default() };
        for t in ObjectType::ALL {
            for o in self.objects.get(t) {
                match o.archived_ms {
                    None => d.objects.get_mut(t).push(o.render_all(t)),
                    Some(_) => {
                        d.archived_ids.get_mut(t).push(o.id.to_string());
                        d.archived.get_mut(t).push(o.render_all(t));
                    }
                }
            }
        }
        d
    }
}

/// A search filter, validated.
#[derive(Debug)]
pub(crate) struct Filter {
    prop: String,
    kind: &'static str,
    op: String,
    value: Option<String>,
    values: Vec<String>,
    high: Option<String>,
}

const OPERATORS: [&str; 13] = [
    "EQ",
    "NEQ",
    "GT",
    "GTE",
    "LT",
    "LTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Filter {
    /// Parses one filter object; `Err` is the 400 message.
    pub(crate) fn parse(t: ObjectType, v: &Value) -> Result<Filter, String> {
        let prop = v.get("propertyName").and_then(Value::as_str).ok_or("filter without propertyName")?;
        let kind = prop_type(t, prop).ok_or_else(|| format!("Property {prop} does not exist on {t}"))?;
        let op = v.get("operator").and_then(Value::as_str).unwrap_or("EQ").to_ascii_uppercase();
        if !OPERATORS.contains(&op.as_str()) {
            return Err(format!("Invalid operator {op}"));
        }
        let value = v.get("value").and_then(scalar);
        let values: Vec<String> = v
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(scalar).collect())
            .unwrap_or_default();
        let high = v.get("highValue").and_then(scalar);
        let needs_value = !matches!(op.as_str(), "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "IN" | "NOT_IN");
        if needs_value && value.is_none() {
            return Err(format!("filter on {prop} with operator {op} needs a value"));
        }
        if op == "BETWEEN" && high.is_none() {
            return Err(format!("BETWEEN filter on {prop} needs a highValue"));
        }
        Ok(Filter { prop: prop.to_owned(), kind, op, value, values, high })
    }

    pub(crate) fn matches(&self, t: ObjectType, o: &Obj) -> bool {
        let Some(have) = o.prop(t, &self.prop) else {
            return matches!(self.op.as_str(), "NOT_HAS_PROPERTY" | "NEQ" | "NOT_IN" | "NOT_CONTAINS_TOKEN");
        };
        let cmp = |want: &Option<String>| want.as_deref().and_then(|w| compare(self.kind, &have, w));
        let token = || {
            let w = self.value.as_deref().unwrap_or_default().trim_matches('*').to_lowercase();
            have.to_lowercase().contains(&w)
        };
        let among = || self.values.iter().any(|w| compare(self.kind, &have, w) == Some(Ordering::Equal));
        match self.op.as_str() {
            "EQ" => cmp(&self.value) == Some(Ordering::Equal),
            "NEQ" => cmp(&self.value) != Some(Ordering::Equal),
            "GT" => cmp(&self.value) == Some(Ordering::Greater),
            "GTE" => matches!(cmp(&self.value), Some(Ordering::Greater | Ordering::Equal)),
            "LT" => cmp(&self.value) == Some(Ordering::Less),
            "LTE" => matches!(cmp(&self.value), Some(Ordering::Less | Ordering::Equal)),
            "BETWEEN" => {
                matches!(cmp(&self.value), Some(Ordering::Greater | Ordering::Equal))
                    && matches!(cmp(&self.high), Some(Ordering::Less | Ordering::Equal))
            }
            "IN" => among(),
            "NOT_IN" => !among(),
            "HAS_PROPERTY" => true,
            "NOT_HAS_PROPERTY" => false,
            "CONTAINS_TOKEN" => token(),
            _ => !token(),
        }
    }
}

/// Compares a stored value with a filter value by the property's type.
fn compare(kind: &str, have: &str, want: &str) -> Option<Ordering> {
    match kind {
        "datetime" => Some(parse_ms(have)?.cmp(&parse_ms(want)?)),
        "number" => have.trim().parse::<f64>().ok()?.partial_cmp(&want.trim().parse::<f64>().ok()?),
        _ => Some(have.to_lowercase().cmp(&want.to_lowercase())),
    }
}

/// A sort key: missing values sort last.
#[derive(Debug, PartialEq, PartialOrd)]
pub(crate) enum Key {
    Num(f64),
    Text(String),
    Missing,
}

pub(crate) fn sort_key(t: ObjectType, o: &Obj, prop: &str) -> Key {
    if prop == t.modified_property() {
        return Key::Num(o.updated_ms as f64);
    }
    if prop == "createdate" {
        return Key::Num(o.created_ms as f64);
    }
    let Some(v) = o.prop(t, prop) else { return Key::Missing };
    match prop_type(t, prop) {
        Some("datetime") => parse_ms(&v).map_or(Key::Missing, |ms| Key::Num(ms as f64)),
        Some("number") => v.parse::<f64>().map_or(Key::Missing, Key::Num),
        _ => Key::Text(v.to_lowercase()),
    }
}

pub(crate) fn is_property(t: ObjectType, name: &str) -> bool {
    prop_type(t, name).is_some()
}
